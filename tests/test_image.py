"""The container image, built from the project's Dockerfile and run (tests/image_builder.py).

No registry is reachable, so the official Python base cannot be pulled: the image is built on a
Debian bookworm base with Debian's python3 (debootstrap, cached in .tools/cache/) through the
BASE_IMAGE build argument, with buildah, and run with `buildah run --isolation chroot` on the host
network: as uid 10001 it prints its version, accepts the chart's rendered config, and serves /metrics
from a moto server with the gap of a scripted revoke. The tests FAIL when buildah or debootstrap are
missing: run `make tools` (scripts/install-tools.sh).
"""

from __future__ import annotations

import os
import signal
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.awsworld import MotoServer, build_incident_world
from tests.image_builder import (
    ROOT,
    BuiltImage,
    Container,
    build_image,
    debian_python_base,
    inspect_image,
    missing_tools,
    remove_image,
)
from tests.support import free_port, wait_for
from tests.test_dockerfile import DOCKERFILE, _healthcheck_cmd, parse_dockerfile, stages
from tests.test_faults_support import value
from tests.test_helm_chart import render, rendered_config

pytestmark = pytest.mark.e2e

UID = "10001"
STATE_DIR = "/var/lib/sg-churn-exporter"
CONFIG_PATH = "/etc/sg-churn-exporter/config.yaml"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


@pytest.fixture(scope="module")
def image() -> Iterator[BuiltImage]:
    missing = missing_tools()
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: run `make tools` (scripts/install-tools.sh)")
    base = debian_python_base()
    built = build_image(base, f"localhost/sg-churn-exporter:test-{os.getpid()}")
    try:
        yield built
    finally:
        remove_image(built.tag)


@pytest.fixture
def box(image: BuiltImage) -> Iterator[Container]:
    with Container(image.tag) as container:
        yield container


def test_image_config(image: BuiltImage) -> None:
    """User, entrypoint, command, port, volumes and healthcheck as the Dockerfile declares them."""
    data = inspect_image(image.tag)
    config = data["OCIv1"]["config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["sg-churn-exporter"]
    assert config["Cmd"] == ["run", "--config", CONFIG_PATH]
    assert set(config["ExposedPorts"]) == {"9877/tcp"}
    assert set(config["Volumes"]) == {STATE_DIR, "/tmp"}
    assert "HOME=/tmp" in config["Env"] and not [e for e in config["Env"] if e.startswith("SGCHURN_")]
    final_stage = stages(parse_dockerfile(DOCKERFILE.read_text()))[-1]
    healthcheck = data["Docker"]["config"]["Healthcheck"]
    assert healthcheck["Test"] == ["CMD", *_healthcheck_cmd(final_stage)]
    assert (healthcheck["Interval"], healthcheck["Timeout"], healthcheck["Retries"]) == (
        30 * 10**9,
        5 * 10**9,
        3,
    )


def test_runs_as_10001_and_prints_its_version(box: Container) -> None:
    ids = box.run(["id", "-u"])
    assert ids.returncode == 0 and ids.stdout.strip() == UID, ids.stderr
    version = box.run(["sg-churn-exporter", "--version"])
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"sg-churn-exporter {VERSION}"


def test_only_the_volumes_are_writable(box: Container) -> None:
    walk = (
        "import os\n"
        "for top, dirs, files in os.walk('/'):\n"
        "    if top in ('/proc', '/sys', '/dev'):\n"
        "        dirs[:] = []\n"
        "        continue\n"
        "    for name in dirs + files:\n"
        "        path = os.path.join(top, name)\n"
        "        if not os.path.islink(path) and os.access(path, os.W_OK):\n"
        "            print(path)\n"
    )
    proc = box.run(["python", "-c", walk])
    assert proc.returncode == 0, proc.stderr
    writable = set(proc.stdout.split())
    assert writable == {STATE_DIR, "/tmp"}, writable
    # The same as root would see nothing new: the check runs as the image's user.
    assert box.run(["python", "-c", "import os; print(os.getuid())"]).stdout.strip() == UID


def test_check_config_accepts_the_charts_config(box: Container, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(rendered_config(render({"config": {"cluster_name": "prod"}}, tmp_path / "v")))
    )
    # On EKS the pod identity webhook sets AWS_REGION; the chart's config takes its region from it.
    region = {"AWS_REGION": "us-east-1"}
    ok = box.run(
        ["sg-churn-exporter", "check-config", CONFIG_PATH], env=region, volumes={str(config): CONFIG_PATH}
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "prod" in ok.stdout
    config.write_text("listen_port: 99999\n")
    bad = box.run(
        ["sg-churn-exporter", "check-config", CONFIG_PATH], env=region, volumes={str(config): CONFIG_PATH}
    )
    assert bad.returncode == 2 and "listen_port" in bad.stderr


def test_run_serves_the_gap_of_a_scripted_revoke(
    box: Container, clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "listen_address": "127.0.0.1",
                "listen_port": port,
                "cluster_name": "demo",
                "targets": [{"region": "us-east-1"}],
                "intervals": {"inventory": 2, "cloudtrail": 60, "evaluate": 1, "kubernetes": 60},
                "kubernetes": {"enabled": "false"},
            }
        )
    )
    env = {
        "AWS_ENDPOINT_URL": clean_moto.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    entrypoint = inspect_image(box.image)["OCIv1"]["config"]["Entrypoint"]
    argv = box.argv(
        [*entrypoint, "run", "--config", CONFIG_PATH], env=env, volumes={str(config): CONFIG_PATH}
    )
    log = tmp_path / "exporter.log"
    with log.open("wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/metrics"

    def metrics() -> str | None:
        if process.poll() is not None:
            raise AssertionError(f"exporter exited {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            response = requests.get(url, timeout=2)
        except requests.RequestException:
            return None
        return response.text if response.status_code == 200 else None

    try:
        first = wait_for(
            lambda: (
                (t := metrics())
                and value(t, "sgchurn_target_group_reachability_ratio", flow="traffic") == 1.0
                and t
            ),
            timeout=90,
            what="the first inventory served from the image",
        )
        assert value(first, "sgchurn_build_info", version=VERSION) == 1.0
        permission = [
            {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
        ]
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=permission)
        text = wait_for(
            lambda: (
                (t := metrics())
                and value(t, "sgchurn_rule_gap_open", flow="traffic", service="web") == 1.0
                and t
            ),
            timeout=60,
            what="the open gap of the revoke",
        )
        assert value(text, "sgchurn_target_group_reachability_ratio", flow="traffic") == 0.0
        # The pages come from the templates packaged in the wheel (exporter/templates/).
        landing = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert landing.status_code == 200 and "open rule gap" in landing.text, landing.text[-2000:]
        assert "<style>\n:root" in landing.text  # the page's stylesheet, templates/page.css
        # ...rendered by the page worker (forkserver: its socket in TMPDIR, the /tmp volume under
        # the read-only root), not by the fallback in the server's process.
        assert "page worker unavailable" not in log.read_text(), log.read_text()[-3000:]
        # The image's own HEALTHCHECK command, run in the image beside the exporter, passes.
        healthcheck = inspect_image(box.image)["Docker"]["config"]["Healthcheck"]["Test"]
        assert healthcheck[0] == "CMD"
        probe = box.run(healthcheck[1:], env={"SGCHURN_LISTEN_PORT": str(port)})
        assert probe.returncode == 0, probe.stdout + probe.stderr
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
