"""`sg-churn-exporter demo`: the whole demo as a user runs it, plus its CloudTrail records.

The end-to-end test starts `python -m exporter demo --port 0 --speed 4` in a subprocess, reads the
printed URL, polls /metrics until the scripted break-before-make flip of shop/web is counted as
a revoke_before_authorize gap (bounded), checks the landing page names the target group, then
sends SIGINT and expects exit code 0 within 10 s.
"""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter.cli import main
from exporter.demo.app import DemoOptions, demo_settings
from exporter.demo.controller import ScriptedController
from exporter.demo.motoworld import TRAIL, EmbeddedMoto
from exporter.demo.timing import CLOUDTRAIL_INTERVAL, first_gap_after, first_gap_text
from exporter.demo.trail import Permission, Principal, attributes_record, ingress_record
from exporter.demo.world import REGION, seed
from exporter.engine.changes import AttributeChange, RuleChange
from exporter.engine.records import WATCHED_EVENT_NAMES, parse_record
from exporter.engine.rules import Source
from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 60.0
GAP_TIMEOUT = 90.0


def _reader(stream: object, lines: queue.Queue[str], log: list[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        log.append(line.rstrip("\n"))
        lines.put(line.rstrip("\n"))


def _wait_for_line(lines: queue.Queue[str], pattern: str, timeout: float) -> re.Match[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            break
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r} within {timeout} s")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode("utf-8"))


def _web_samples(metrics_text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """shop/web's samples by sample name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.labels.get("namespace") == "shop" and sample.labels.get("service") == "web":
                found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return found


def test_demo_shows_the_break_before_make_gap_and_stops_on_sigint(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    stderr_path = tmp_path / "demo.stderr"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "exporter",
                "demo",
                "--port",
                "0",
                "--speed",
                "4",
                "--seed",
                "7",
                "--state-dir",
                str(state_dir),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=_reader, args=(proc.stdout, lines, log), daemon=True).start()
    try:
        target_group = _wait_for_line(lines, r"shop/web .* target group (\S+)", STARTUP_TIMEOUT).group(1)
        url = _wait_for_line(lines, r"landing page: (http://127\.0\.0\.1:\d+)/", 5).group(1)
        started = time.monotonic()
        counted = 0.0
        seen_open = False
        while time.monotonic() - started < GAP_TIMEOUT and proc.poll() is None:
            samples = _web_samples(_get(f"{url}/metrics"))
            seen_open = seen_open or any(v == 1 for _l, v in samples.get("sgchurn_rule_gap_open", []))
            counted = sum(
                v
                for labels, v in samples.get("sgchurn_rule_gaps_total", [])
                if labels.get("cause") == "revoke_before_authorize"
            )
            if counted > 0:
                break
            time.sleep(1.0)
        output = "\n".join(log)
        assert proc.poll() is None, f"the demo exited early:\n{output}\n{stderr_path.read_text()}"
        assert counted > 0, (
            f"no revoke_before_authorize gap for shop/web within {GAP_TIMEOUT} s "
            f"(an open gap was {'seen' if seen_open else 'never seen'}):\n{output}"
        )
        assert "break-before-make flip of shop/web" in output
        assert first_gap_text(4.0) in output  # the banner's timings, at this run's speed
        assert "RevokeSecurityGroupIngress" in output and "AuthorizeSecurityGroupIngress" in output

        landing = _get(f"{url}/")
        assert target_group in landing
        assert (state_dir / "state.sqlite3").exists()

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, stderr_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


ACCOUNT = "123456789012"
GROUP = "sg-0123456789abcdef0"
TG_ARN = (
    f"arn:aws:elasticloadbalancing:us-east-1:{ACCOUNT}:targetgroup/k8s-shop-web-0123456789/0123456789abcdef"
)
CONTROLLER = Principal(
    "eks-aws-load-balancer-controller",
    "1764100000000000000",
    "elbv2.k8s.aws/v2.7.1 aws-sdk-go/1.50.0 (go1.21.6; linux; amd64)",
    "10.0.1.11",
    ACCOUNT,
    oidc_issuer="oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE",
)
OPERATOR = Principal("platform-admin", "alice", "aws-cli/2.15.0", "198.51.100.7", ACCOUNT)
WHEN = datetime(2026, 11, 25, 12, 0, 0, 750000, tzinfo=UTC)


def test_demo_records_parse_as_the_changes_they_describe() -> None:
    subnets = Permission("tcp", 31080, 31080, cidrs=("10.0.1.0/24", "10.0.2.0/24"))
    rules = [
        {
            "SecurityGroupRuleId": f"sgr-0000000000000000{i}",
            "GroupId": GROUP,
            "IsEgress": False,
            "IpProtocol": "tcp",
            "FromPort": 31080,
            "ToPort": 31080,
            "CidrIpv4": cidr,
            "Description": "elbv2.k8s.aws/targetGroupBinding=shared",
        }
        for i, cidr in enumerate(subnets.cidrs)
    ]
    record = ingress_record(
        "authorize",
        group_id=GROUP,
        permissions=[subnets],
        rules=rules,
        when=WHEN,
        who=CONTROLLER,
        region="us-east-1",
    )
    assert record["eventTime"] == "2026-11-25T12:00:00Z"
    assert (
        record["userIdentity"]["sessionContext"]["sessionIssuer"]["userName"]
        == "eks-aws-load-balancer-controller"
    )
    change = parse_record(record)
    assert isinstance(change, RuleChange)
    assert change.action == "authorize" and change.group_id == GROUP
    assert {(r.source, r.rule_id) for r in change.rules} == {
        (Source.cidr("10.0.1.0/24"), "sgr-00000000000000000"),
        (Source.cidr("10.0.2.0/24"), "sgr-00000000000000001"),
    }
    assert change.meta.actor.is_controller

    revoke = parse_record(
        ingress_record(
            "revoke",
            group_id=GROUP,
            permissions=[Permission("tcp", 31080, 31080, cidrs=("0.0.0.0/0",))],
            rules=[],
            when=WHEN,
            who=CONTROLLER,
            region="us-east-1",
        )
    )
    assert isinstance(revoke, RuleChange) and revoke.action == "revoke"
    assert [r.source for r in revoke.rules] == [Source.cidr("0.0.0.0/0")]

    failed = parse_record(
        ingress_record(
            "authorize",
            group_id=GROUP,
            permissions=[subnets],
            rules=[],
            when=WHEN,
            who=CONTROLLER,
            region="us-east-1",
            error=("InvalidPermission.Duplicate", "the rule already exists"),
        )
    )
    assert isinstance(failed, RuleChange) and failed.meta.failed

    flip = parse_record(
        attributes_record(
            target_group_arn=TG_ARN,
            attributes={"preserve_client_ip.enabled": "false"},
            when=WHEN,
            who=OPERATOR,
            region="us-east-1",
        )
    )
    assert isinstance(flip, AttributeChange)
    assert flip.target_group_arn == TG_ARN
    assert flip.attributes == (("preserve_client_ip.enabled", "false"),)
    assert not flip.meta.actor.is_controller


def test_ingress_record_refuses_an_unknown_action() -> None:
    with pytest.raises(ValueError):
        ingress_record(
            "modify", group_id=GROUP, permissions=[], rules=[], when=WHEN, who=CONTROLLER, region="us-east-1"
        )


def test_banner_help_and_readme_agree_on_the_timings(capsys: pytest.CaptureFixture[str]) -> None:
    """One sentence, from exporter/demo/timing.py, in `demo --help` and the README (the banner: above)."""
    sentence = first_gap_text()
    assert f"~{first_gap_after():.0f} s after the banner" in sentence and "20-40 s" in sentence
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert sentence in help_text
    readme = " ".join((REPO / "README.md").read_text().split())
    assert sentence in readme


class _VirtualWaits(ScriptedController):
    """The scripted controller, its calls to a real (embedded) moto as in the demo; only its
    pauses pass on a virtual clock, which stamps its lines, and it stops after `until` seconds."""

    def __init__(self, *args: Any, until: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.elapsed = 0.0
        self.until = until

    def _wait(self, seconds: float) -> None:
        self.elapsed += seconds
        if self.elapsed > self.until:
            self.stop()
        super()._wait(0)

    def _stamp(self) -> str:
        return f"[{self.elapsed:7.1f}s]"


@pytest.mark.parametrize("speed", [1.0, 4.0])
def test_the_first_gap_opens_when_the_banner_says(speed: float) -> None:
    """The banner said '~4 s after start' while the demo's own lines stamped the revoke that
    opens the gap 1.5 s after the flip (and counted the set-up before the banner too)."""
    moto = EmbeddedMoto().start()
    try:  # moto's backends are the process's: start from an empty account
        urllib.request.urlopen(urllib.request.Request(f"{moto.endpoint_url}/moto-api/reset", method="POST"))
        where: dict[str, Any] = {
            "endpoint_url": moto.endpoint_url,
            "region_name": REGION,
            "aws_access_key_id": "demo",
            "aws_secret_access_key": "demo",
        }
        ec2, elbv2 = boto3.client("ec2", **where), boto3.client("elbv2", **where)
        world = seed(ec2, elbv2, str(boto3.client("sts", **where).get_caller_identity()["Account"]))
        TRAIL.reset()
        lines: list[str] = []
        controller = _VirtualWaits(ec2, elbv2, world, TRAIL, speed=speed, say=lines.append, until=30.0)
        controller.run()
    finally:
        moto.stop()
        TRAIL.reset()
    assert controller.error is None and controller.failures == 0, lines
    revoke = next(line for line in lines if "RevokeSecurityGroupIngress" in line)
    stamp = float(re.match(r"\[\s*([\d.]+)s\]", revoke).group(1))  # type: ignore[union-attr]
    claimed = re.search(r"opens ~(\d+) s after the banner", first_gap_text(speed))
    assert claimed is not None
    assert abs(stamp - int(claimed.group(1))) <= 0.5, (first_gap_text(speed), lines)


def test_the_demo_cloudtrail_poll_fits_in_its_interval() -> None:
    """One LookupEvents poll asks for each watched event name at LOOKUP_EVENTS_RATE; at the
    former 5 s interval every other demo poll was skipped (the page's Jobs table: as many
    skipped as run)."""
    poll = (len(WATCHED_EVENT_NAMES) - 1) / LOOKUP_EVENTS_RATE  # the first request needs no wait
    settings = demo_settings(DemoOptions(), ":memory:", REGION)
    assert settings.intervals.cloudtrail == CLOUDTRAIL_INTERVAL >= poll + 1.0
