"""Configuration: file, then SGCHURN_* environment, then flags; every error names its field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.config import ConfigError, load_settings


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_defaults_file_env_and_flags_layer_in_that_order(tmp_path: Path) -> None:
    path = _file(
        tmp_path, "listen_port: 9000\nintervals:\n  inventory: 10\ntargets:\n  - region: eu-west-1\n"
    )
    settings = load_settings(
        path,
        environ={"SGCHURN_LISTEN_PORT": "9100", "SGCHURN_STATE__PATH": "/tmp/s.db"},
        overrides={"listen_port": 9200},
    )
    assert settings.listen_port == 9200
    assert settings.state.path == "/tmp/s.db"
    assert settings.intervals.inventory == 10.0 and settings.intervals.evaluate == 15.0
    assert [t.region for t in settings.targets] == ["eu-west-1"]


@pytest.mark.parametrize(
    ("text", "environ", "field"),
    [
        ("intervals:\n  inventory: abc\n", {}, "intervals.inventory"),
        ("intervals:\n  inventory: 0\n", {}, "intervals.inventory"),
        ("bogus: 1\n", {}, "bogus"),
        ("targets:\n  - region: mars-1\n", {}, "targets[0].region"),
        ("targets:\n  - region: us-east-1\n    role_arn: nope\n", {}, "targets[0].role_arn"),
        ("log_format: xml\n", {}, "log_format"),
        ("sharding:\n  shard: 3\n  total_shards: 2\n", {}, "sharding.shard"),
        ("web:\n  tls_cert_file: /a.pem\n", {}, "web.tls_key_file"),
        ("", {"SGCHURN_LISTEN_PORT": "http"}, "listen_port"),
        ("", {"SGCHURN_SHARD_FROM_HOSTNAME": "true", "HOSTNAME": "exporter"}, "sharding.shard_from_hostname"),
        ("- a list\n", {}, "config"),
        ("a: [unclosed\n", {}, "config"),
    ],
)
def test_errors_name_the_field(tmp_path: Path, text: str, environ: dict[str, str], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_file(tmp_path, text), environ=environ)
    assert caught.value.field == field
    assert str(caught.value).startswith(field)


def test_shard_comes_from_the_statefulset_ordinal(tmp_path: Path) -> None:
    settings = load_settings(
        _file(tmp_path, "sharding:\n  total_shards: 3\n"),
        environ={
            "SGCHURN_SHARD_FROM_HOSTNAME": "true",
            "HOSTNAME": "sg-churn-exporter-2",
            "AWS_REGION": "eu-west-1",
        },
    )
    assert settings.sharding.shard == 2


def test_yaml_booleans_are_accepted_for_kubernetes_enabled(tmp_path: Path) -> None:
    assert (
        load_settings(
            _file(tmp_path, "kubernetes:\n  enabled: false\n"), environ={"AWS_REGION": "eu-west-1"}
        ).kubernetes.enabled
        == "false"
    )


def test_check_config_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    assert main(["check-config", str(_file(tmp_path, "listen_port: 70000\n"))]) == 2
    assert "listen_port" in capsys.readouterr().err
    assert main(["check-config", str(_file(tmp_path, "listen_port: 9000\n"))]) == 0
    assert "listen_port = 9000" in capsys.readouterr().out


def test_check_config_prints_each_value_as_the_file_would_spell_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every `field = value` line's value reads back (as JSON, which YAML reads too) as the setting
    it shows: null and true, not Python's None and True."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    config = "cloudtrail:\n  lookup_events: true\ntargets:\n  - region: eu-west-1\n    role_arn: arn:aws:iam::111122223333:role/reader\n"
    assert main(["check-config", str(_file(tmp_path, config))]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    shown = {path: yaml.safe_load(value) for path, value in (line.split(" = ", 1) for line in lines)}
    assert shown["cloudtrail.lookup_events"] is True
    assert shown["cloudtrail.sqs_queue_url"] is None
    assert shown["targets"] == [{"region": "eu-west-1", "role_arn": "arn:aws:iam::111122223333:role/reader"}]
    assert not any(word in line for line in lines for word in ("None", "True", "False"))


def test_run_with_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(_file(tmp_path, "intervals:\n  evaluate: -1\n"))]) == 2
    assert "intervals.evaluate" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ("listen_port: 9000\nintervals: [1, 2\nlog_level: info\n", ":3:10", "expected ',' or ']'"),
        ("intervals:\n  inventory: 10\n evaluate: 5\n", ":3:2", "expected <block end>"),
        ("cluster_name: prod\n\tlog_level: info\n", ":2:1", "character '\\t' that cannot start any token"),
    ],
)
def test_yaml_errors_name_the_line_and_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, problem: str
) -> None:
    path = _file(tmp_path, text)
    code = main(["check-config", str(path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{path}{where} is not valid YAML" in err and problem in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("environ", "region"),
    [
        ({"AWS_REGION": "eu-central-1", "AWS_DEFAULT_REGION": "us-west-2"}, "eu-central-1"),
        ({"AWS_DEFAULT_REGION": "us-west-2"}, "us-west-2"),
    ],
)
def test_without_targets_the_region_comes_from_the_environment(
    tmp_path: Path, environ: dict[str, str], region: str
) -> None:
    settings = load_settings(_file(tmp_path, "cluster_name: prod\n"), environ=environ)
    assert [(t.region, t.role_arn) for t in settings.targets] == [(region, None)]
    # Listed targets win over the environment.
    listed = load_settings(_file(tmp_path, "targets:\n  - region: ap-south-1\n"), environ=environ)
    assert [t.region for t in listed.targets] == ["ap-south-1"]


@pytest.mark.parametrize(
    ("text", "environ", "message"),
    [
        ("cluster_name: prod\n", {}, "no target to watch"),
        ("targets: []\n", {}, "no target to watch"),
        ("cluster_name: prod\n", {"AWS_REGION": "moon"}, "'moon' is not an AWS region"),
    ],
)
def test_no_targets_and_no_region_is_an_error_naming_targets(
    tmp_path: Path,
    text: str,
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(_file(tmp_path, text), environ=environ)
    assert caught.value.field == "targets" and message in str(caught.value)
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert main(["check-config", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err
    assert "targets" in err and message in err and len(err.strip().splitlines()) == 1


def test_environment_strings_are_converted_by_the_declared_schema() -> None:
    settings = load_settings(
        None,
        environ={
            "AWS_REGION": "eu-west-1",
            "SGCHURN_INTERVALS__INVENTORY": "10",
            "SGCHURN_CLOUDTRAIL__LOOKUP_EVENTS": "false",
            "SGCHURN_SHARDING__TOTAL_SHARDS": "3",
            "SGCHURN_KUBERNETES__ENABLED": "true",
        },
    )
    assert settings.intervals.inventory == 10.0
    assert settings.cloudtrail.lookup_events is False
    assert settings.sharding.total_shards == 3
    assert settings.kubernetes.enabled == "true"


def test_yaml_scalars_where_text_is_declared_stay_text_and_null_means_the_default(tmp_path: Path) -> None:
    settings = load_settings(
        _file(
            tmp_path,
            "cluster_name: 123\nlisten_port: null\nintervals:\nweb: ~\n"
            "targets:\n  - region: us-east-1\n    account_id: 123456789012\n    external_id: 42\n",
        ),
        environ={},
    )
    assert settings.cluster_name == "123" and settings.listen_port == 9877
    assert settings.intervals.inventory == 30.0 and settings.web.basic_auth_users == {}
    assert (settings.targets[0].account_id, settings.targets[0].external_id) == ("123456789012", "42")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"listen_port": 70000}, "listen_port: must be <= 65535, not 70000"),
        ({"listen_port": "http"}, "listen_port: must be a whole number, not 'http'"),
        ({"log_format": "xml"}, "log_format: must be one of auto, json, console, not 'xml'"),
        ({"intervals": {"inventory": float("nan")}}, "intervals.inventory: must be a finite number, not nan"),
        ({"intervals": {"evaluate": 0.5}}, "intervals.evaluate: must be >= 1, not 0.5"),
        (
            {"cloudtrail": {"settle_seconds": 1e7}},
            "cloudtrail.settle_seconds: must be <= 604800, not 10000000.0",
        ),
        (
            {"cloudtrail": {"lookup_events": "maybe"}},
            "cloudtrail.lookup_events: must be true or false, not 'maybe'",
        ),
        ({"targets": [{"role_arn": "x"}]}, "targets[0].region: is required"),
        ({"targets": [{"region": "us-east-1", "zone": "a"}]}, "targets[0].zone: unknown field (known: "),
        (
            {"web": {"basic_auth_users": {"alice": ["x"]}}},
            "web.basic_auth_users.alice: must be a string, not a list",
        ),
        ({"intervals": {"a\nb": 1}}, "intervals.a\\nb: unknown field"),
        ({"sharding": 3}, "sharding: must be a mapping, not 3"),
    ],
)
def test_schema_errors_name_the_field_on_one_line(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"AWS_REGION": "eu-west-1"}, overrides=overrides)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(caught.value.field + ": ")


@pytest.mark.parametrize(("text", "expected"), [("yes", True), ("No", False), ("1", True), ("false", False)])
def test_a_boolean_from_the_environment_reads_as_yaml_would(text: str, expected: bool) -> None:
    settings = load_settings(
        None, environ={"AWS_REGION": "eu-west-1", "SGCHURN_CLOUDTRAIL__LOOKUP_EVENTS": text}
    )
    assert settings.cloudtrail.lookup_events is expected


ROLE = "arn:aws:iam::111122223333:role/sg-churn-read"


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        (
            [{"region": "us-east-1"}, {"region": "us-east-1"}],
            "targets[1]: the same region (us-east-1) with the same credentials (the ambient "
            "credentials) as targets[0]: list each once",
        ),
        (  # account_id is informative: both entries use the ambient credentials
            [{"region": "eu-west-1"}, {"region": "us-east-1"}, {"region": "eu-west-1", "account_id": "1"}],
            "targets[2]: the same region (eu-west-1) with the same credentials (the ambient credentials) as targets[0]",
        ),
        (
            [
                {"region": "eu-west-1", "role_arn": ROLE},
                {"region": "eu-west-1", "role_arn": ROLE, "external_id": "x"},
            ],
            f"targets[1]: the same region (eu-west-1) with the same credentials (role {ROLE}) as targets[0]",
        ),
    ],
)
def test_a_target_listed_twice_is_refused(targets: list[dict[str, str]], message: str) -> None:
    """Two entries with one (role, region) watched it twice, and the second's sources never
    reported (sgchurn_up 0 for ever, SGChurnSourceDown) without a line saying why."""
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={}, overrides={"targets": targets})
    assert str(caught.value).startswith(message)


def test_the_same_region_through_other_credentials_is_two_targets() -> None:
    targets = [
        {"region": "eu-west-1"},
        {"region": "eu-west-1", "role_arn": ROLE},
        {"region": "us-east-1", "role_arn": ROLE},
    ]
    settings = load_settings(None, environ={}, overrides={"targets": targets})
    assert [(t.region, t.role_arn) for t in settings.targets] == [
        ("eu-west-1", None),
        ("eu-west-1", ROLE),
        ("us-east-1", ROLE),
    ]


@pytest.mark.parametrize("url", ["foo", "sqs.eu-west-1.amazonaws.com/111122223333/q", "https://"])
def test_an_sqs_queue_url_that_is_no_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            None, environ={"AWS_REGION": "eu-west-1"}, overrides={"cloudtrail": {"sqs_queue_url": url}}
        )
    assert caught.value.field == "cloudtrail.sqs_queue_url"
    assert f"not {url!r}" in str(caught.value)


def test_an_sqs_queue_url_is_accepted() -> None:
    url = "https://sqs.eu-west-1.amazonaws.com/111122223333/sgchurn-events"
    settings = load_settings(
        None, environ={"AWS_REGION": "eu-west-1"}, overrides={"cloudtrail": {"sqs_queue_url": url}}
    )
    assert settings.cloudtrail.sqs_queue_url == url


def test_a_kubeconfig_that_cannot_be_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` turned Kubernetes correlation off with one warning line for a typo in the path."""
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    missing = tmp_path / "nope" / "kubeconfig"
    for enabled in ("auto", "true"):
        path = _file(tmp_path, f"kubernetes:\n  enabled: {enabled}\n  kubeconfig: {missing}\n")
        assert main(["check-config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"kubernetes.kubeconfig: cannot read {missing}: No such file or directory" in err
        assert len(err.strip().splitlines()) == 1
    path = _file(tmp_path, f"kubernetes:\n  kubeconfig: {tmp_path}\n")
    assert main(["check-config", str(path)]) == 2
    assert f"kubernetes.kubeconfig: {tmp_path} is a folder" in capsys.readouterr().err
    # off: the file is not read, so it need not exist
    path = _file(tmp_path, f"kubernetes:\n  enabled: false\n  kubeconfig: {missing}\n")
    assert main(["check-config", str(path)]) == 0
    capsys.readouterr()
    present = tmp_path / "kubeconfig"
    present.write_text("apiVersion: v1\nkind: Config\n")
    path = _file(tmp_path, f"kubernetes:\n  kubeconfig: {present}\n")
    assert main(["check-config", str(path)]) == 0
    assert f'kubernetes.kubeconfig = "{present}"' in capsys.readouterr().out


def test_kubernetes_enabled_true_without_a_cluster_exits_2(tmp_path: Path) -> None:
    """`true` is not `auto`: run used to log one warning and go on without Kubernetes, exporting no
    sgchurn_up series for it (so no alert); now it stops at start naming the field, before it
    opens the state file or the port. A subprocess: the old behaviour served until killed."""
    env = {k: v for k, v in os.environ.items() if k not in ("KUBERNETES_SERVICE_HOST", "KUBECONFIG")}
    env |= {"HOME": str(tmp_path), "AWS_REGION": "eu-west-1"}  # no ~/.kube/config
    state = tmp_path / "state.sqlite3"
    path = _file(tmp_path, f"kubernetes:\n  enabled: true\nstate:\n  path: {state}\nlisten_port: 0\n")
    proc = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,  # a hang guard, not a performance figure
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("config error: kubernetes.enabled: is true, but "), proc.stderr
    assert "not in a cluster and no kubeconfig found" in proc.stderr and "set it to auto" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not state.exists()
