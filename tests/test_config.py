"""Configuration: file, then SGCHURN_* environment, then flags; every error names its field."""

from __future__ import annotations

from pathlib import Path

import pytest

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
