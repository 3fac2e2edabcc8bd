"""Fault tests for configuration: every value that used to crash `run` is refused up front.

Each case runs the real `run` command in a subprocess (AWS pointed at a closed loopback port, so
nothing leaves the machine) and checks: exit status 2, exactly one line on stderr, naming the
field, and no traceback. `check-config` is checked in process on files no loader should throw on.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.config import ConfigError, load_settings
from exporter.textsafe import printable
from tests.test_web import self_signed

ROOT = Path(__file__).resolve().parents[1]


def _run(config: Path, *flags: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "SGCHURN_KUBERNETES__ENABLED": "false",
    }
    return subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--config", str(config), *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _base(tmp_path: Path) -> dict[str, object]:
    return {
        "listen_address": "127.0.0.1",
        "listen_port": 0,
        "targets": [{"region": "us-east-1"}],
        "state": {"path": str(tmp_path / "state.sqlite3")},
    }


def _merge(base: dict[str, object], extra: dict[str, object]) -> dict[str, object]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}  # type: ignore[dict-item]
        else:
            out[key] = value
    return out


def _mismatched_tls(tmp_path: Path) -> dict[str, object]:
    cert, _ = self_signed(tmp_path / "a")
    _, other_key = self_signed(tmp_path / "b")
    return {"web": {"tls_cert_file": str(cert), "tls_key_file": str(other_key)}}


def _not_a_cert(tmp_path: Path) -> dict[str, object]:
    _, key = self_signed(tmp_path / "a")
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    return {"web": {"tls_cert_file": str(junk), "tls_key_file": str(key)}}


def _parent_is_a_file(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "plain").write_text("a file")
    return {"state": {"path": str(tmp_path / "plain" / "state.sqlite3")}}


def _prepare(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir(exist_ok=True)
    (tmp_path / "b").mkdir(exist_ok=True)


CASES: list[tuple[str, Callable[[Path], dict[str, object]], str]] = [
    ("nan interval", lambda _: {"intervals": {"inventory": float("nan")}}, "intervals.inventory"),
    ("inf interval", lambda _: {"intervals": {"evaluate": float("inf")}}, "intervals.evaluate"),
    ("huge interval", lambda _: {"intervals": {"cloudtrail": 1e300}}, "intervals.cloudtrail"),
    (
        "huge lookback",
        lambda _: {"cloudtrail": {"start_lookback_seconds": 1e12}},
        "cloudtrail.start_lookback_seconds",
    ),
    ("huge retention", lambda _: {"cloudtrail": {"retention_seconds": 1e15}}, "cloudtrail.retention_seconds"),
    (
        "missing cert",
        lambda p: {"web": {"tls_cert_file": str(p / "no.crt"), "tls_key_file": str(p / "no.key")}},
        "web.tls_cert_file",
    ),
    ("mismatched key", _mismatched_tls, "web.tls_key_file"),
    ("not a certificate", _not_a_cert, "web.tls_cert_file"),
    ("bad address", lambda _: {"listen_address": "999.1.1.1"}, "listen_address"),
    ("bracketed v6", lambda _: {"listen_address": "[::1]"}, "listen_address"),
    ("empty state path", lambda _: {"state": {"path": ""}}, "state.path"),
    ("state path is a folder", lambda p: {"state": {"path": str(p)}}, "state.path"),
    ("parent is a file", _parent_is_a_file, "state.path"),
]


def _one_clean_line(done: subprocess.CompletedProcess[str], field: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert "Traceback" not in done.stderr
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config error: {field}: "), lines[0]


@pytest.mark.parametrize(("name", "make", "field"), CASES, ids=[c[0] for c in CASES])
def test_run_refuses_what_would_crash_it_with_one_line_naming_the_field(
    name: str, make: Callable[[Path], dict[str, object]], field: str, tmp_path: Path
) -> None:
    _prepare(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(_merge(_base(tmp_path), make(tmp_path))))
    with pytest.raises(ConfigError) as caught:
        load_settings(config, environ={})
    assert caught.value.field == field
    _one_clean_line(_run(config), field)


def test_a_port_in_use_is_one_clear_line_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        config = tmp_path / "config.yaml"
        config.write_text(yaml.safe_dump(_merge(_base(tmp_path), {"listen_port": taken.getsockname()[1]})))
        done = _run(config)
    _one_clean_line(done, "listen_port")
    assert "in use" in done.stderr


def test_a_good_tls_pair_and_a_host_name_pass(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    settings_ = load_settings(
        None,
        environ={"AWS_REGION": "us-east-1"},
        overrides={
            "listen_address": "localhost",
            "targets": [{"region": "us-east-1"}],
            "web": {"tls_cert_file": str(cert), "tls_key_file": str(key)},
        },
    )
    assert settings_.web.tls_cert_file == str(cert)


@pytest.mark.parametrize(
    "content",
    [
        b"listen_port: " + b"[" * 20000 + b"]" * 20000 + b"\n",
        b"targets:\n" + b"".join(b"  " * i + b"- \n" for i in range(3000)),
        b"a: " + b"{x: " * 5000 + b"1" + b"}" * 5000 + b"\n",
        b"listen_port: 9000\ncluster_name: caf\xe9\n",
        b"\xff\xfe\x00l\x00i\x00s\x00t",
        b"listen_port: " + b"9" * 10000 + b"\n",
    ],
    ids=["deep list", "deep block list", "deep mapping", "latin-1", "utf-16", "huge int"],
)
def test_check_config_never_throws_on_deep_or_non_utf8_files(
    content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_bytes(content)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("config error: "), err


_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
)
_FIELDS = st.sampled_from(
    [
        "listen_address",
        "listen_port",
        "cluster_name",
        "log_format",
        "targets",
        "intervals",
        "cloudtrail",
        "state",
        "kubernetes",
        "web",
        "sharding",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.dictionaries(_FIELDS, _VALUES, max_size=4))
@example(document={"intervals": {"\n": None}})  # an unknown key's own newline: found by this test
@example(document={"web\x1b[2J": 1})
def test_any_yaml_document_is_settings_or_one_config_error(
    document: dict[str, object], tmp_path: Path
) -> None:
    path = tmp_path / "generated.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_settings(path, environ={})
    except ConfigError as exc:
        assert "\n" not in str(exc) and exc.field
        assert printable(str(exc)) == str(exc)  # no control character obeyed on a terminal


#: A billion laughs inside one field: each item nine aliases of the one before, 9**8 strings from
#: a few lines (PyYAML shares the aliased lists; what walks them expands them).
_ALIAS_BOMB = (
    "[" + ", ".join(f"&x{i} [{', '.join([f'*x{i - 1}' if i else 'lol'] * 9)}]" for i in range(9)) + "]"
)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (f"targets: {_ALIAS_BOMB}\n", "targets"),
        (f"web: {{basic_auth_users: {{a: {_ALIAS_BOMB}}}}}\n", "web.basic_auth_users.a"),
        ('state:\n  path: "/tmp/a\\0b"\n', "state.path"),
        ('kubernetes:\n  kubeconfig: "/tmp/k\\0"\n', "kubernetes.kubeconfig"),
        ('web:\n  tls_cert_file: "/tmp/c\\0"\n  tls_key_file: /tmp/k\n', "web.tls_cert_file"),
        (
            'targets:\n  - region: us-east-1\n    role_arn: "arn:aws:iam::111122223333:role/a\\0"\n',
            "targets[0].role_arn",
        ),
    ],
    ids=[
        "alias bomb in targets",
        "alias bomb in web",
        "nul in state.path",
        "nul in kubeconfig",
        "nul in tls file",
        "nul in role arn",
    ],
)
def test_aliases_that_expand_without_bound_and_nul_characters_are_one_error_naming_the_field(
    text: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"AWS_REGION": "us-east-1"})
    assert caught.value.field == field
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"config error: {field}: "), err


@pytest.mark.parametrize(
    ("environ", "field"),
    [
        ({"SGCHURN_INTERVALS": "5", "SGCHURN_INTERVALS__INVENTORY": "5"}, "intervals"),
        ({"SGCHURN_INTERVALS__INVENTORY": "5", "SGCHURN_INTERVALS": "5"}, "intervals"),
        ({"SGCHURN_WEB": "x", "SGCHURN_WEB__BASIC_AUTH_USERS__A": "x"}, "web"),
        ({"SGCHURN_SHARDING": "x", "SGCHURN_SHARD_FROM_HOSTNAME": "true", "HOSTNAME": "e-1"}, "sharding"),
        ({"SGCHURN_": "x"}, "SGCHURN_"),
        ({"SGCHURN_STATE____PATH": "x"}, "SGCHURN_STATE____PATH"),
        (
            {"SGCHURN_SHARD_FROM_HOSTNAME": "true", "HOSTNAME": "exporter-" + "9" * 5000},
            "sharding.shard_from_hostname",
        ),
        ({"SGCHURN_SHARD_FROM_HOSTNAME": "true", "HOSTNAME": "exporter-٣"}, "sharding.shard_from_hostname"),
    ],
    ids=[
        "value then section",
        "section then value",
        "deeper",
        "sharding",
        "prefix alone",
        "empty part",
        "long ordinal",
        "other digits",
    ],
)
def test_environment_variables_that_contradict_or_name_nothing_are_one_error_naming_them(
    environ: dict[str, str], field: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={**environ, "AWS_REGION": "us-east-1"})
    assert caught.value.field == field
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("listen_port: 9000\nlisten_port: 9100\n", "listen_port"),
        ("intervals:\n  inventory: 10\n  inventory: 20\n", "intervals.inventory"),
        ("targets:\n  - region: us-east-1\n    region: eu-west-1\n", "targets[0].region"),
        ("web:\n  basic_auth_users:\n    alice: a\n    alice: b\n", "web.basic_auth_users.alice"),
    ],
    ids=["top", "section", "list item", "mapping"],
)
def test_a_key_given_twice_is_an_error_naming_it(
    text: str, field: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """YAML says a mapping's keys are unique; PyYAML kept the last silently, so a setting's first
    value (a typo's victim) was dropped without a word."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={"AWS_REGION": "us-east-1"})
    assert caught.value.field == field and "given twice" in str(caught.value)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(f"config error: {field}: "), err


def test_a_config_that_never_ends_is_refused_after_its_first_mebibyte(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """/dev/zero has size 0 in stat(): the size check passed and read_bytes() read without end."""
    assert main(["check-config", "/dev/zero"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("config error: config: /dev/zero is over 1048576 bytes") and len(err.splitlines()) == 1
    )
