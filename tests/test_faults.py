"""Fault tests on the daemon in process, against a moto server over HTTP.

- a throttling storm on every API (LookupEvents throttled by moto, EC2/ELBv2 by a FaultProxy),
  with the daemon on its real scheduler and web server;
- hostile CloudTrail input through the live LookupEvents path (hypothesis-generated, truncated,
  huge, wrong types, unknown names), and a non-gzip object through the S3 backfill path;
- the Kubernetes API forbidden or unreachable while AWS monitoring goes on.

The subprocess faults (endpoint outage, kill -9, state file) are in tests/test_faults_process.py.
"""

from __future__ import annotations

import copy
import gzip
import json
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from exporter.config import load_settings
from exporter.daemon.assemble import Assembly, build_daemon
from exporter.engine.changes import Rejection
from exporter.engine.records import MAX_RECORD_BYTES, parse_record
from exporter.metrics import build_registry
from exporter.sources.cloudtrail import LookupEventsPoller
from exporter.sources.envelopes import iter_raw_records
from exporter.web import WebServer
from tests import cloudtrail_samples as samples
from tests.awsworld import (
    CloudTrailRecorder,
    IncidentWorld,
    LookupSink,
    ManualClock,
    MotoServer,
    S3TrailSink,
    build_incident_world,
)
from tests.kube_emulator import KubeEmulator
from tests.support import wait_for
from tests.test_faults_support import (
    FaultProxy,
    Scraper,
    WallClock,
    by_label,
    matching,
    total,
    value,
)

PERMISSION = [
    {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
]
FLOWS = ("traffic", "health_check")


def _settings(state: Path, **overrides: Any) -> Any:
    base: dict[str, Any] = {
        "cluster_name": "demo",
        "targets": [{"region": "us-east-1"}],
        "state": {"path": str(state)},
        "kubernetes": {"enabled": "false"},
        "intervals": {"inventory": 2, "cloudtrail": 2, "evaluate": 1, "kubernetes": 60},
        "cloudtrail": {"overlap_seconds": 600, "settle_seconds": 120},
    }
    base.update(overrides)
    return load_settings(None, environ={}, overrides=base)


@pytest.fixture
def proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto_server.url) as running:
        yield running


@dataclass
class Running:
    """A daemon on its real scheduler with its web server."""

    assembly: Assembly
    web: WebServer

    @property
    def url(self) -> str:
        return self.web.url

    def metrics(self) -> str:
        import requests

        response = requests.get(self.url + "/metrics", timeout=5)
        assert response.status_code == 200
        return response.text


def _up(text: str, source: str) -> float | None:
    found = [v for k, v in by_label(text, "sgchurn_up", "source").items() if k == source]
    return found[0] if found else None


# --- 2. a throttling storm on every API ---------------------------------------------------------------


def test_throttling_storm_backs_off_keeps_serving_and_loses_nothing(
    clean_moto: MotoServer, proxy: FaultProxy, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    recorder = CloudTrailRecorder(LookupSink(clean_moto), WallClock())
    recorder.attach(ec2, elbv2)
    # The targeted rules poll is off: the EC2/ELBv2 storm below counts its 10 refusals out for the
    # inventory runs (a rules poll would take some of them, and the inventory might not fail).
    intervals = {"inventory": 2, "rules": 0, "cloudtrail": 2, "evaluate": 1, "kubernetes": 60}
    assembly = build_daemon(
        _settings(tmp_path / "state.sqlite3", intervals=intervals), endpoint_url=proxy.url
    )
    # The production backoff (0.5 s doubling to 20 s, 8 retries) would make this test minutes
    # long; the same code path runs with a shorter scale. The rate limit is not scaled.
    poller = assembly.daemon.feeds[0].poller
    assert isinstance(poller, LookupEventsPoller)
    poller.backoff_base, poller.backoff_cap = 0.05, 0.5
    backoffs: list[float] = []

    def sleep(seconds: float) -> None:
        backoffs.append(seconds)
        time.sleep(seconds)

    poller._sleep = sleep
    web = WebServer(assembly.daemon.snapshot, "127.0.0.1", 0)
    web.start()
    assembly.daemon.start()
    running = Running(assembly, web)
    try:
        wait_for(lambda: _up(running.metrics(), "inventory") == 1, timeout=20, what="the first inventory")
        # The next 14 LookupEvents answer ThrottlingException: the first event name gives up after
        # 9 attempts (and is read again next poll), the second gets through on its 6th.
        storm = 14
        # The scraper sees every state of sgchurn_up{source="inventory"} (every 0.25 s): the storm's
        # down spell (two failed runs, 2 s apart) may be over before this test's own polls start.
        with Scraper(running.url + "/metrics", watch=lambda text: _up(text, "inventory")) as scraper:
            clean_moto.throttle(storm)
            # EC2/ELBv2 answer RequestLimitExceeded / Throttling to the next 10 requests: botocore's
            # 5 attempts per call run out twice, so two inventory runs fail.
            proxy.throttle({"ec2", "elbv2"}, count=10)
            ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
            threading.Event().wait(2)
            ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)

            def settled() -> str | None:
                text = running.metrics()
                throttled = [
                    r
                    for r in clean_moto.requests()
                    if r["operation"] == "LookupEvents" and r["status"] == 400
                ]
                refused = [e.time for e in proxy.entries() if e.outcome == "throttled"]
                inventory = [h for h in assembly.daemon.snapshot().sources if h.source == "inventory"]
                done = (
                    len(throttled) >= storm
                    and len(refused) == 10  # EC2/ELBv2 storm over, and an inventory succeeded since
                    and inventory[0].last_success is not None
                    and inventory[0].last_success.timestamp() > max(refused)
                    and _up(text, "inventory") == 1
                    and _up(text, "lookup_events") == 1
                    and total(text, "sgchurn_cloudtrail_events_total") >= 2
                    and all(total(text, "sgchurn_rule_gaps_total", flow=f) >= 1 for f in FLOWS)
                )
                return text if done else None

            wait_for(settled, timeout=60, what="the storm to pass and the records to be ingested")
            text = running.metrics()
        lookups = [r for r in clean_moto.requests() if r["operation"] == "LookupEvents"]
    finally:
        assembly.daemon.stop(timeout=7)
        web.stop()
        assembly.store.close()

    assert scraper.failures() == [] and len(scraper.results) > 10
    # Server side, never more than 2 LookupEvents in any 1 s window, throttled ones included.
    times = sorted(float(r["time"]) for r in lookups)
    busiest = max(sum(1 for t in times[i:] if t - start < 1.0) for i, start in enumerate(times))
    assert busiest <= 2, busiest
    assert sum(1 for r in lookups if r["status"] == 400) == storm
    # One backoff per throttled answer, except where an event name gave up (after 9 attempts;
    # it is read again on the next poll): 8 + 5 for 14 throttles.
    gave_up = storm // (poller.max_retries + 1)
    assert len(backoffs) == storm - gave_up and all(0 <= b <= 0.5 for b in backoffs)
    errors = {
        (s.labels["operation"], s.labels["code"]): s.value
        for s in matching(text, "sgchurn_aws_api_errors_total")
    }
    assert errors[("LookupEvents", "ThrottlingException")] == storm  # each attempt is one call
    assert sum(1 for e in proxy.entries() if e.outcome == "throttled") == 10
    assert sum(v for (op, code), v in errors.items() if code in ("Throttling", "RequestLimitExceeded")) >= 1
    inventory_up = scraper.watched
    assert 0.0 in inventory_up and _up(text, "inventory") == 1.0  # down while throttled, then back
    # Nothing lost, nothing doubled.
    assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
        "RevokeSecurityGroupIngress": 1.0,
        "AuthorizeSecurityGroupIngress": 1.0,
    }
    for flow in FLOWS:
        assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
        assert total(text, "sgchurn_rule_gaps_total", flow=flow) == 1
    assert total(text, "sgchurn_cloudtrail_records_rejected_total") == 0


# --- 5. hostile input through the live path ---------------------------------------------------------

NODE_FREE_GROUP = "sg-0f0f0f0f0f0f0f0f0"  # a group no target uses: hostile changes touch nothing real
FOREIGN_TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/k8s-other/0123456789abcdef"


@dataclass
class InProcess:
    """A daemon run by hand on a manual clock, reading AWS through a FaultProxy."""

    moto: MotoServer
    proxy: FaultProxy
    clock: ManualClock
    world: IncidentWorld
    ec2: Any
    assembly: Assembly

    def metrics(self) -> str:
        return generate_latest(build_registry(self.assembly.daemon.snapshot)).decode()

    def incident(self, seconds: float = 5) -> None:
        """The controller's revoke, `seconds` of gap, and the authorize, each with its record."""
        self.ec2.revoke_security_group_ingress(GroupId=self.world.node_sg_id, IpPermissions=PERMISSION)
        self.clock.advance(seconds)
        self.ec2.authorize_security_group_ingress(GroupId=self.world.node_sg_id, IpPermissions=PERMISSION)

    def hostile(self, bodies: list[Any]) -> list[tuple[str, str, Any]]:
        """Serve each body as the CloudTrailEvent of one LookupEvents result; (id, name, body)."""
        served = []
        for body in bodies:
            event_id = f"hostile-{uuid.uuid4()}"
            name = _lookup_name(body)
            self.moto.add_records(
                [
                    {
                        "eventID": event_id,
                        "eventName": name,
                        "eventTime": self.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "eventSource": "ec2.amazonaws.com",
                        "awsRegion": "us-east-1",
                    }
                ]
            )
            self.proxy.replace_event(event_id, body)
            served.append((event_id, name, body))
        return served


def _lookup_name(body: Any) -> str:
    """The event name LookupEvents files a body under (its own when it names a watched one)."""
    from exporter.engine.records import WATCHED_EVENT_NAMES

    try:
        name = json.loads(body).get("eventName") if isinstance(body, str) else None
    except (ValueError, AttributeError):
        name = None
    return name if name in WATCHED_EVENT_NAMES else "AuthorizeSecurityGroupIngress"


@pytest.fixture
def inproc(clean_moto: MotoServer, proxy: FaultProxy, tmp_path: Path) -> Iterator[InProcess]:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    clock = ManualClock(datetime.now(tz=UTC).replace(microsecond=0))
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)
    assembly = build_daemon(_settings(tmp_path / "state.sqlite3"), endpoint_url=proxy.url, clock=clock.now)
    assembly.daemon.run_all_once()
    try:
        yield InProcess(clean_moto, proxy, clock, world, ec2, assembly)
    finally:
        assembly.store.close()


def _expected(store: Any, served: list[tuple[str, str, Any]]) -> tuple[Counter[str], set[str]]:
    """What the live path must count for these results: rejections by reason, new event ids.

    Computed with the pure parser on the very bodies served, so the test checks the live path
    (HTTP, poller, de-duplication, store, counters) loses, doubles and crashes on nothing.
    """
    reasons: Counter[str] = Counter()
    new: set[str] = set()
    for event_id, name, body in served:
        event: dict[str, Any] = {"EventId": event_id, "EventName": name}
        if body is not None:  # botocore drops a member that is JSON null
            event["CloudTrailEvent"] = body
        for item in iter_raw_records(event):
            parsed = item if isinstance(item, Rejection) else parse_record(item)
            if isinstance(parsed, Rejection):
                reasons[parsed.reason] += 1
            elif parsed is not None and not store.has_record(parsed.meta.event_id):
                new.add(parsed.meta.event_id)
    return reasons, new


def _rejected(text: str) -> Counter[str]:
    return Counter(
        {k: int(v) for k, v in by_label(text, "sgchurn_cloudtrail_records_rejected_total", "reason").items()}
    )


def _base_records(event_id: str, when: datetime) -> list[dict[str, Any]]:
    perm = samples.permission(cidrs=["0.0.0.0/0"])
    return [
        samples.authorize_record(event_id, when, NODE_FREE_GROUP, [perm]),
        samples.revoke_record(event_id, when, NODE_FREE_GROUP, [perm]),
        samples.modify_tg_attributes_record(event_id, when, FOREIGN_TG),
        samples.delete_group_record(event_id, when, NODE_FREE_GROUP),
    ]


def _jobs_ok(daemon: Any) -> None:
    snap = daemon.snapshot()
    assert {j.job: j.last_error for j in snap.jobs if j.job != "kubernetes"} == {
        "inventory": None,
        "rules": None,
        "cloudtrail": None,
        "evaluate": None,
    }
    assert all(s.up for s in snap.sources), snap.sources


def test_hostile_records_through_lookup_events_are_rejected_by_reason_and_valid_ones_kept(
    inproc: InProcess,
) -> None:
    when = inproc.clock.now()
    base = samples.authorize_record(None, when, NODE_FREE_GROUP, [samples.permission(cidrs=["10.0.0.0/8"])])

    def variant(**changes: Any) -> str:
        record = {**copy.deepcopy(base), "eventID": str(uuid.uuid4()), **changes}
        return json.dumps({k: v for k, v in record.items() if v is not DROP})

    text = variant()
    bad_ports = copy.deepcopy(base["requestParameters"])
    bad_ports["ipPermissions"]["items"][0]["fromPort"] = "eighty"
    cases: list[tuple[Any, dict[str, int]]] = [
        (text[: len(text) // 2], {"not_json": 1}),  # truncated
        (variant(padding="x" * (300 * 1024)), {"too_large": 1}),  # over 256 KiB
        (42, {"wrong_type": 1}),  # CloudTrailEvent is not a string
        ("[1, 2]", {"not_a_record": 2}),
        (variant(eventName=7), {"wrong_type": 1}),
        (variant(eventTime="yesterday"), {"bad_time": 1}),
        (variant(eventID=DROP), {"missing_field": 1}),
        (variant(requestParameters=bad_ports), {"bad_rule": 1}),
        (variant(requestParameters={"groupId": NODE_FREE_GROUP, "ipPermissions": {}}), {"no_rule": 1}),
        (variant(eventName="DescribeInstances"), {}),  # unknown names are ignored, not rejected
        (variant(eventName="authorizesecuritygroupingress"), {}),
        (variant(eventName="CreateSecurityGroupRule"), {}),
    ]
    inproc.incident()  # the valid records of the same batch
    served = inproc.hostile([body for body, _ in cases])
    inproc.clock.advance(1)
    inproc.assembly.daemon.run_all_once()

    text = inproc.metrics()
    want: Counter[str] = Counter()
    for _, reasons in cases:
        want.update(reasons)
    assert _rejected(text) == want
    assert _expected(inproc.assembly.store, served)[0] == want  # the pure parser agrees
    assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
        "RevokeSecurityGroupIngress": 1.0,
        "AuthorizeSecurityGroupIngress": 1.0,
    }
    for flow in FLOWS:
        assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
    _jobs_ok(inproc.assembly.daemon)

    # The next poll re-reads the same window: nothing is counted again.
    inproc.clock.advance(5)
    inproc.assembly.daemon.run_all_once()
    again = inproc.metrics()
    assert _rejected(again) == want
    assert total(again, "sgchurn_cloudtrail_events_total") == 2


DROP = object()

_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, inner in value.items():
            yield (*prefix, key)
            yield from _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield (*prefix, index)
            yield from _paths(inner, (*prefix, index))


def _mutate(record: Any, path: tuple[Any, ...], new: Any) -> None:
    parent = record
    for step in path[:-1]:
        parent = parent[step]
    if new is DROP:
        del parent[path[-1]]
    else:
        parent[path[-1]] = new


@st.composite
def hostile_bodies(draw: st.DrawFn, when: datetime) -> Any:
    """A CloudTrailEvent body: a real record shape with fields replaced or dropped, maybe truncated."""
    event_id = str(draw(st.uuids()))
    record = copy.deepcopy(draw(st.sampled_from(_base_records(event_id, when))))
    for _ in range(draw(st.integers(min_value=0, max_value=3))):
        path = draw(st.sampled_from(list(_paths(record))))
        _mutate(record, path, draw(st.just(DROP) | _json))
    finish = draw(st.sampled_from(["as-is", "as-is", "truncated", "huge", "any-json"]))
    text = json.dumps(record)
    if finish == "truncated":
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    if finish == "huge":
        return json.dumps({**record, "padding": "x" * (MAX_RECORD_BYTES + 1)})
    if finish == "any-json":
        return draw(_json) if draw(st.booleans()) else json.dumps(draw(_json))
    return text


def test_generated_hostile_batches_lose_and_double_nothing(inproc: InProcess) -> None:
    daemon, store = inproc.assembly.daemon, inproc.assembly.store
    totals = {"examples": 0}

    @settings(
        max_examples=5,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: ~3 s per example
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def batch(data: st.DataObject) -> None:
        bodies = data.draw(st.lists(hostile_bodies(inproc.clock.now()), min_size=1, max_size=5))
        before = inproc.metrics()
        inproc.clock.advance(30)
        inproc.incident()
        served = inproc.hostile(bodies)
        reasons, new = _expected(store, served)
        inproc.clock.advance(1)
        daemon.run_all_once()
        after = inproc.metrics()
        assert _rejected(after) - _rejected(before) == reasons
        events = total(after, "sgchurn_cloudtrail_events_total") - total(
            before, "sgchurn_cloudtrail_events_total"
        )
        assert events == len(new) + 2  # + the valid revoke and authorize
        for flow in FLOWS:  # the valid incident of the batch: one more gap, counted once
            name = "sgchurn_rule_gaps_total"
            assert total(after, name, flow=flow) == total(before, name, flow=flow) + 1
        _jobs_ok(daemon)
        totals["examples"] += 1

    batch()
    assert totals["examples"] >= 3


def test_s3_backfill_reports_objects_that_are_not_gzip_and_keeps_the_good_files(
    clean_moto: MotoServer, capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    from exporter.cli import main

    ec2, elbv2, s3 = clean_moto.client("ec2"), clean_moto.client("elbv2"), clean_moto.client("s3")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    s3.create_bucket(Bucket="trail")
    sink = S3TrailSink(s3, "trail")
    recorder = CloudTrailRecorder(sink, WallClock())
    recorder.attach(ec2, elbv2)
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
    [good] = sink.flush()
    folder = good.rsplit("/", 1)[0]
    plain = samples.trail_file_bytes(recorder.records, compress=False)
    s3.put_object(Bucket="trail", Key=f"{folder}/plain.json.gz", Body=plain)  # named gzip, is not
    truncated = samples.trail_file_bytes(recorder.records)
    s3.put_object(Bucket="trail", Key=f"{folder}/truncated.json.gz", Body=truncated[: len(truncated) // 2])
    s3.put_object(Bucket="trail", Key=f"{folder}/garbage.json.gz", Body=gzip.compress(b"\x00not json"))

    code = main(["backfill", "--bucket", "trail", "--since", "1d", "--output", str(tmp_path / "out.jsonl")])
    err = capsysbinary.readouterr().err.decode()
    assert code == 0, err
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert sorted(line["event_id"] for line in lines) == sorted(r["eventID"] for r in recorder.records)
    assert "backfill: 3 rejected (not_gzip=2, not_json=1)" in err
    assert "files 4/4" in err


# --- 6. the Kubernetes API down or forbidden ---------------------------------------------------------


@pytest.mark.parametrize("failure", ["forbidden", "closed-port"])
def test_kubernetes_down_or_forbidden_aws_monitoring_goes_on_with_tag_mapping(
    failure: str, clean_moto: MotoServer, tmp_path: Path
) -> None:
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    clock = ManualClock(datetime.now(tz=UTC).replace(microsecond=0))
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)
    kubeconfig = tmp_path / "kubeconfig"
    with KubeEmulator() as kube:
        kube.write_kubeconfig(kubeconfig)
        if failure == "forbidden":
            kube.forbid("services")
            kube.forbid("targetgroupbindings")
            settings = _settings(
                tmp_path / "s.db", kubernetes={"enabled": "true", "kubeconfig": str(kubeconfig)}
            )
            assembly = build_daemon(settings, endpoint_url=clean_moto.url, clock=clock.now)
            _kube_down_scenario(assembly, clock, ec2, world, "ClusterForbidden")
            assert kube.seen_requests()  # it did ask
    if failure == "closed-port":  # the emulator is gone: nothing listens on its port
        settings = _settings(tmp_path / "s.db", kubernetes={"enabled": "true", "kubeconfig": str(kubeconfig)})
        assembly = build_daemon(settings, endpoint_url=clean_moto.url, clock=clock.now)
        _kube_down_scenario(assembly, clock, ec2, world, "ClusterUnreachable")


def _kube_down_scenario(
    assembly: Assembly, clock: ManualClock, ec2: Any, world: IncidentWorld, error: str
) -> None:
    """The controller's 30 s gap, then one pass of every job with the Kubernetes API failing."""
    daemon = assembly.daemon
    try:
        clock.advance(10)
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(30)
        ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(5)
        daemon.run_all_once()  # kubernetes (fails), inventory, cloudtrail, evaluate
        text = generate_latest(build_registry(daemon.snapshot)).decode()
        assert _up(text, "inventory") == 1 and _up(text, "lookup_events") == 1
        kube_health = [s for s in daemon.snapshot().sources if s.source == "kubernetes"]
        assert kube_health and (kube_health[0].last_error or "").startswith(error)
        [info] = matching(text, "sgchurn_target_group_info")
        assert (info.labels["namespace"], info.labels["service"], info.labels["mapped_by"]) == (
            "shop",
            "web",
            "tags",
        )
        for flow in FLOWS:
            assert total(text, "sgchurn_rule_gaps_total", flow=flow, namespace="shop", service="web") == 1
            assert total(text, "sgchurn_rule_gaps_total", flow=flow) == 1
            assert value(text, "sgchurn_rule_gap_last_duration_seconds", flow=flow) == 30
        assert _up(text, "kubernetes") == 0
        assert {j.job: j.last_error for j in daemon.snapshot().jobs}["evaluate"] is None
    finally:
        assembly.store.close()


def test_state_locked_mid_run_loses_and_doubles_nothing_once_released(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    """Another process takes the state file's write lock while the daemon runs, then lets go."""
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    world = build_incident_world(ec2, elbv2, cluster="demo")
    clock = ManualClock(datetime.now(tz=UTC).replace(microsecond=0))
    CloudTrailRecorder(LookupSink(clean_moto), clock).attach(ec2, elbv2)
    state = tmp_path / "state.sqlite3"
    assembly = build_daemon(_settings(state), endpoint_url=clean_moto.url, clock=clock.now)
    daemon = assembly.daemon
    try:
        daemon.run_all_once()
        clock.advance(10)
        ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(5)
        holder = sqlite3.connect(state, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            daemon.run_all_once()  # every write waits 2 s, then fails: nothing may be half-done
            assert daemon.snapshot().counters.get("cloudtrail_events", {}) == {}
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        clock.advance(30)
        ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=PERMISSION)
        clock.advance(5)
        daemon.run_all_once()
        text = generate_latest(build_registry(daemon.snapshot)).decode()
        assert by_label(text, "sgchurn_cloudtrail_events_total", "event_name") == {
            "RevokeSecurityGroupIngress": 1.0,
            "AuthorizeSecurityGroupIngress": 1.0,
        }
        for flow in FLOWS:
            assert value(text, "sgchurn_rule_gaps_total", flow=flow, cause="revoke_before_authorize") == 1
            assert total(text, "sgchurn_rule_gaps_total", flow=flow) == 1
            assert value(text, "sgchurn_rule_gap_last_duration_seconds", flow=flow) == 35
        _jobs_ok(daemon)
    finally:
        assembly.store.close()
