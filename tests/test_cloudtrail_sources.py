"""CloudTrail sources against a moto server over HTTP: LookupEvents, EventBridge->SQS, S3 trails.

Records come from real EC2/ELBv2 calls on the test's own clients (CloudTrailRecorder), at times
from a ManualClock, delivered to the server's LookupEvents store, a queue or a bucket.
"""

from __future__ import annotations

import fnmatch
import gzip
import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from exporter.cli import main
from exporter.engine.changes import AttributeChange, RuleChange
from exporter.engine.records import parse_record
from exporter.engine.rules import Source
from exporter.sources.aws import ApiCallCounter, AwsClients, AwsTarget, ReadOnlyGuard
from exporter.sources.cloudtrail import LookupCursor, LookupEventsPoller, S3TrailBackfill, SqsConsumer
from exporter.sources.inventory import inventory_for
from exporter.sources.ratelimit import LOOKUP_EVENTS_RATE, RateLimiters, TokenBucket, full_jitter
from exporter.sources.seen import SeenEvents
from tests import cloudtrail_samples as samples
from tests.awsworld import (
    MOTO_ACCOUNT,
    REGION,
    CloudTrailRecorder,
    EventBridgeSink,
    LookupSink,
    ManualClock,
    MotoServer,
    S3TrailSink,
    SqsSink,
    build_incident_world,
)
from tests.support import wait_for

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
AUTHORIZE, REVOKE = "AuthorizeSecurityGroupIngress", "RevokeSecurityGroupIngress"
POLICY = Path(__file__).resolve().parents[1] / "docs" / "iam-policy.json"


def exporter_clients(server: MotoServer, **kwargs: Any) -> AwsClients:
    return AwsClients(AwsTarget(REGION, **kwargs), endpoint_url=server.url)


def lookup_requests(server: MotoServer, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in server.requests()[since:] if e["operation"] == "LookupEvents"]


def max_in_one_second(times: list[float]) -> int:
    """The most requests inside any window [t, t + 1 s)."""
    times = sorted(times)
    return max((sum(1 for u in times if t <= u < t + 1.0) for t in times), default=0)


def flip_rules(server: MotoServer, clock: ManualClock, count: int) -> tuple[CloudTrailRecorder, str]:
    """`count` revoke+authorize pairs of 0.0.0.0/0 on a node group, 10 s apart, recorded to LookupEvents."""
    ec2 = server.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="node", Description="node", VpcId=vpc)["GroupId"]
    perm = [{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=perm)
    recorder = CloudTrailRecorder(LookupSink(server), clock)
    recorder.attach(ec2)
    for _ in range(count):
        ec2.revoke_security_group_ingress(GroupId=group, IpPermissions=perm)
        clock.advance(5)
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=perm)
        clock.advance(5)
    return recorder, group


def ids(records: list[dict[str, Any]]) -> list[str]:
    return sorted(r["eventID"] for r in records)


# --- LookupEvents ----------------------------------------------------------------------------


def test_poller_reads_every_page_once_and_rereads_the_overlap(clean_moto: MotoServer) -> None:
    clock = ManualClock(T0)
    recorder, group = flip_rules(clean_moto, clock, 60)  # 60 of each name: two pages each
    now = clock.advance(1)
    clients = exporter_clients(clean_moto)
    poller = LookupEventsPoller(
        clients.client("cloudtrail"), TokenBucket(LOOKUP_EVENTS_RATE), event_names=[AUTHORIZE, REVOKE]
    )
    start = len(clean_moto.requests())

    first = poller.poll(now)
    assert ids(first.records) == ids(recorder.records) and len(first.records) == 120
    assert first.counts["pages"] == 4 and first.counts["requests"] == 4 and first.complete
    assert len(lookup_requests(clean_moto, start)) == 4
    assert {r["eventName"] for r in first.records} == {AUTHORIZE, REVOKE}
    assert all(r["requestParameters"]["groupId"] == group for r in first.records)

    again = poller.poll(now)  # the first batch was never committed: delivered again
    assert ids(again.records) == ids(first.records)
    again.commit()
    assert poller.cursor.positions == {AUTHORIZE: now, REVOKE: now}
    assert poller.lag_seconds(now) == 6.0  # the last authorize was 6 s before `now`

    # A record delivered late, its time inside the overlap window of the next poll.
    late_clock = ManualClock(now - timedelta(seconds=120))
    late = CloudTrailRecorder(None, late_clock)
    ec2 = clean_moto.client("ec2")
    late.attach(ec2)
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "IpRanges": [{"CidrIp": "10.9.0.0/16"}]}
        ],
    )
    clean_moto.add_records(late.records)

    # Restore cursor and seen ids from their persisted forms into a new poller.
    later = now + timedelta(seconds=60)
    restored = LookupEventsPoller(
        clients.client("cloudtrail"),
        TokenBucket(LOOKUP_EVENTS_RATE),
        event_names=[AUTHORIZE, REVOKE],
        cursor=LookupCursor.decode(poller.cursor.encode()),
        seen=SeenEvents.decode(poller.seen.encode()),
    )
    second = restored.poll(later)
    assert ids(second.records) == ids(late.records)
    in_overlap = [
        r for r in recorder.records if datetime.fromisoformat(r["eventTime"]) >= now - restored.overlap
    ]
    assert second.counts["duplicates"] == len(in_overlap) > 0
    # Without the seen ids, the overlap comes back: the seen-set is what de-duplicates.
    forgetful = LookupEventsPoller(
        clients.client("cloudtrail"),
        TokenBucket(LOOKUP_EVENTS_RATE),
        event_names=[AUTHORIZE, REVOKE],
        cursor=LookupCursor.decode(poller.cursor.encode()),
    )
    assert len(forgetful.poll(later).records) == len(in_overlap) + 1


def test_throttling_backs_off_retries_the_page_and_loses_nothing(clean_moto: MotoServer) -> None:
    records = [samples.authorize_record(time=T0 + timedelta(seconds=n), region=REGION) for n in range(70)]
    clean_moto.add_records(records)
    clean_moto.throttle(3)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        time.sleep(seconds)

    clients = exporter_clients(clean_moto)
    poller = LookupEventsPoller(
        clients.client("cloudtrail"),
        TokenBucket(LOOKUP_EVENTS_RATE),
        event_names=[AUTHORIZE],
        backoff_base=0.05,
        backoff_cap=0.2,
        sleep=sleep,
        rng=random.Random(7),
    )
    start = len(clean_moto.requests())
    now = T0 + timedelta(minutes=5)

    batch = poller.poll(now)

    assert ids(batch.records) == ids(records) and batch.complete
    assert batch.counts["throttled"] == 3 and batch.counts["pages"] == 2 and batch.counts["requests"] == 5
    assert len(sleeps) == 3 and all(0 <= s <= min(0.2, 0.05 * 2**n) for n, s in enumerate(sleeps))
    seen_by_server = lookup_requests(clean_moto, start)
    assert [e["status"] for e in seen_by_server] == [400, 400, 400, 200, 200]
    assert max_in_one_second([e["time"] for e in seen_by_server]) <= 2
    assert clients.counter.snapshot().errors == {("cloudtrail", "LookupEvents", "ThrottlingException"): 3}


def test_giving_up_keeps_the_position_so_the_next_poll_reads_it_all(clean_moto: MotoServer) -> None:
    records = [samples.revoke_record(time=T0 + timedelta(seconds=n), region=REGION) for n in range(10)]
    clean_moto.add_records(records)
    clean_moto.throttle(3)
    poller = LookupEventsPoller(
        exporter_clients(clean_moto).client("cloudtrail"),
        TokenBucket(50.0),
        event_names=[REVOKE],
        max_retries=2,
        backoff_base=0.01,
    )
    now = T0 + timedelta(minutes=5)
    failed = poller.poll(now)
    assert not failed.complete and failed.records == [] and failed.counts["throttled"] == 3
    assert "ThrottlingException" in failed.errors[0] or "throttled" in failed.errors[0]
    failed.commit()
    assert poller.cursor.positions == {}
    retried = poller.poll(now + timedelta(minutes=1))
    assert ids(retried.records) == ids(records) and retried.complete


def test_a_stored_newest_event_time_past_now_does_not_hold_the_lag_below_zero(clean_moto: MotoServer) -> None:
    """A cursor whose newest eventTime is in year 9999 (a corrupt state file, a clock set back):
    the lag is what the records read say (sgchurn_cloudtrail_lag_seconds, SGChurnCloudTrailLagging),
    not a negative number that no later record could ever replace."""
    records = [samples.revoke_record(time=T0 + timedelta(seconds=n), region=REGION) for n in range(3)]
    clean_moto.add_records(records)
    cursor = LookupCursor.decode('{"newest_event_time": "9999-12-31T23:59:59Z"}')
    poller = LookupEventsPoller(
        exporter_clients(clean_moto).client("cloudtrail"),
        TokenBucket(50.0),
        event_names=[REVOKE],
        cursor=cursor,
    )
    now = T0 + timedelta(minutes=5)
    assert poller.lag_seconds(now) is None  # nothing known until a record is read
    batch = poller.poll(now)
    assert len(batch.records) == 3 and batch.lag_seconds == 298.0
    batch.commit()
    assert poller.lag_seconds(now) == 298.0 and poller.cursor.newest_event_time == T0 + timedelta(seconds=2)


def test_pollers_sharing_a_bucket_stay_under_two_requests_per_second(clean_moto: MotoServer) -> None:
    names = [AUTHORIZE, REVOKE, "DeleteSecurityGroup", "ModifySecurityGroupRules"]
    clean_moto.add_records(
        [samples.authorize_record(time=T0 + timedelta(seconds=n)) for n in range(120)]
        + [samples.revoke_record(time=T0 + timedelta(seconds=n)) for n in range(60)]
    )
    limiters = RateLimiters()
    bucket = limiters.bucket((MOTO_ACCOUNT, REGION))
    assert limiters.bucket((MOTO_ACCOUNT, REGION)) is bucket
    clients = exporter_clients(clean_moto)
    pollers = [
        LookupEventsPoller(clients.client("cloudtrail"), bucket, event_names=names[:2]),
        LookupEventsPoller(clients.client("cloudtrail"), bucket, event_names=names[2:]),
    ]
    start = len(clean_moto.requests())
    batches: list[Any] = [None, None]

    def run(index: int) -> None:
        batches[index] = pollers[index].poll(T0 + timedelta(minutes=10))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(batches[0].records) == 180 and batches[1].records == []
    times = [e["time"] for e in lookup_requests(clean_moto, start)]
    assert len(times) == 3 + 2 + 1 + 1
    assert max_in_one_second(times) <= 2


def test_token_bucket_spaces_tokens_by_the_rate() -> None:
    clock = [100.0]
    bucket = TokenBucket(
        2.0, burst=1, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s)
    )
    stamps = []
    for _ in range(6):
        bucket.acquire()
        stamps.append(clock[0])
    assert stamps == pytest.approx([100.0, 100.5, 101.0, 101.5, 102.0, 102.5])
    clock[0] += 10  # idle: at most `burst` tokens saved up
    assert bucket.acquire() == 0.0 and bucket.acquire() == pytest.approx(0.5)


def test_bucket_requests_refill_from_when_each_request_ended() -> None:
    clock = [0.0]
    bucket = TokenBucket(2.0, clock=lambda: clock[0], sleep=lambda s: clock.__setitem__(0, clock[0] + s))
    starts = []
    for in_flight in (0.0, 0.4, 0.0, 0.0):
        with bucket.request():
            starts.append(clock[0])
            clock[0] += in_flight
    assert starts == pytest.approx([0.0, 0.5, 1.4, 1.9])  # the slow second request pushes the third


def test_full_jitter_stays_inside_its_ceiling() -> None:
    rng = random.Random(1)
    for attempt in range(12):
        for _ in range(50):
            assert 0.0 <= full_jitter(attempt, 0.5, 20.0, rng) <= min(20.0, 0.5 * 2**attempt)


def test_seen_events_expire_by_ttl_and_size_and_persist() -> None:
    seen = SeenEvents(ttl=timedelta(minutes=10), max_size=3)
    seen.add_all(["a", "b"], T0)
    seen.add_all(["c"], T0 + timedelta(minutes=5))
    assert seen.contains("a", T0 + timedelta(minutes=9)) and not seen.contains(
        "a", T0 + timedelta(minutes=10)
    )
    seen.add_all(["d"], T0 + timedelta(minutes=6))
    assert [e for e, _ in seen.items()] == ["b", "c", "d"]  # "a" went: over max_size
    seen.expire(T0 + timedelta(minutes=11))
    assert [e for e, _ in seen.items()] == ["c", "d"]
    copy = SeenEvents.decode(seen.encode())
    assert copy.items() == seen.items() and (copy.ttl, copy.max_size) == (seen.ttl, seen.max_size)
    with pytest.raises(ValueError):
        LookupEventsPoller(object(), TokenBucket(1.0), seen=SeenEvents(ttl=timedelta(minutes=1)))


def test_a_cursor_and_seen_ids_written_by_the_version_before_read_as_they_were_meant() -> None:
    # Exactly what the daemon stored before the declared shapes: json.dumps(to_dict(), sort_keys=True).
    cursor = LookupCursor.decode(
        '{"newest_event_time": "2026-11-25T12:00:12Z", "positions": {"AuthorizeSecurityGroupIngress": '
        '"2026-11-25T12:01:00.250000Z", "RevokeSecurityGroupIngress": "2026-11-25T12:01:00Z"}}'
    )
    assert cursor == LookupCursor(
        {AUTHORIZE: T0 + timedelta(seconds=60.25), REVOKE: T0 + timedelta(seconds=60)},
        T0 + timedelta(seconds=12),
    )
    assert LookupCursor.decode('{"newest_event_time": null, "positions": {}}') == LookupCursor()
    seen = SeenEvents.decode(
        '{"ttl_seconds": 600.0, "max_size": 3, "events": [["a", "2026-11-25T12:00:00Z"], ["b", "2026-11-25T12:05:00Z"]]}'
    )
    assert (seen.ttl, seen.max_size) == (timedelta(minutes=10), 3)
    assert seen.items() == [("a", T0), ("b", T0 + timedelta(minutes=5))]
    for bad in (
        '{"positions": {"x": "soon"}}',
        '{"newest_event_time": "2026-11-25T12:00:00"}',
        '{"positions": []}',
    ):
        with pytest.raises(ValueError, match=r"\$\.(positions|newest_event_time)"):
            LookupCursor.decode(bad)


# --- EventBridge -> SQS ----------------------------------------------------------------------


def event_queue(server: MotoServer) -> str:
    """A queue fed by an EventBridge rule for CloudTrail API calls of EC2 and ELBv2."""
    sqs, events = server.client("sqs"), server.client("events")
    url = sqs.create_queue(QueueName="sgchurn-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "source": ["aws.ec2", "aws.elasticloadbalancing"],
        "detail-type": ["AWS API Call via CloudTrail"],
    }
    events.put_rule(Name="sgchurn", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="sgchurn", Targets=[{"Id": "queue", "Arn": arn}])
    return str(url)


def queue_depth(server: MotoServer, url: str) -> tuple[int, int]:
    attrs = server.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]), int(attrs["ApproximateNumberOfMessagesNotVisible"])


def test_sqs_consumer_hands_records_over_then_deletes_and_drops_malformed(clean_moto: MotoServer) -> None:
    ec2, elbv2, sqs = clean_moto.client("ec2"), clean_moto.client("elbv2"), clean_moto.client("sqs")
    world = build_incident_world(ec2, elbv2)
    url = event_queue(clean_moto)
    clock = ManualClock(T0)
    recorder = CloudTrailRecorder(EventBridgeSink(clean_moto.client("events")), clock)
    recorder.attach(ec2, elbv2)
    elbv2.modify_target_group_attributes(
        TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}]
    )
    clock.advance(2)
    everyone = [
        {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=everyone)
    clock.advance(60)
    subnets = [{"CidrIp": c} for c in world.subnet_cidrs]
    ec2.authorize_security_group_ingress(
        GroupId=world.node_sg_id,
        IpPermissions=[{"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": subnets}],
    )
    sqs.send_message(QueueUrl=url, MessageBody="not json {")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))
    consumer = SqsConsumer.for_clients(exporter_clients(clean_moto), url, wait_seconds=1)
    handed: list[dict[str, Any]] = []
    totals: dict[str, int] = {}

    def handler(records: list[dict[str, Any]]) -> None:
        assert queue_depth(clean_moto, url)[1] >= len(records)  # still on the queue while handled
        handed.extend(records)

    def drained() -> bool:
        batch = consumer.consume(handler, T0)
        for key, value in batch.counts.items():
            totals[key] = totals.get(key, 0) + value
        return totals.get("messages", 0) >= 5

    assert wait_for(drained, timeout=20)
    assert ids(handed) == ids(recorder.records) and len(handed) == 3
    changes = sorted((parse_record(r) for r in handed), key=lambda c: c.meta.event_time)  # type: ignore[union-attr]
    assert isinstance(changes[0], AttributeChange) and changes[0].attributes == (
        ("preserve_client_ip.enabled", "false"),
    )
    assert isinstance(changes[1], RuleChange) and changes[1].action == "revoke"
    assert isinstance(changes[2], RuleChange) and changes[2].action == "authorize"
    assert {r.source for r in changes[2].rules} == {Source.cidr(c) for c in world.subnet_cidrs}
    assert totals["dropped_not_json"] == 1 and totals["dropped_not_a_record"] == 1 and totals["dropped"] == 2
    assert queue_depth(clean_moto, url) == (0, 0)


def test_sqs_message_stays_when_the_handler_fails(clean_moto: MotoServer) -> None:
    url = event_queue(clean_moto)
    ec2 = clean_moto.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    group = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
    recorder = CloudTrailRecorder(
        SqsSink(clean_moto.client("sqs"), url), ManualClock(T0)
    )  # envelope sent directly
    recorder.attach(ec2)
    ec2.authorize_security_group_ingress(
        GroupId=group,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
        ],
    )
    consumer = SqsConsumer.for_clients(
        exporter_clients(clean_moto), url, wait_seconds=1, visibility_timeout=1
    )

    def failing(records: list[dict[str, Any]]) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        consumer.consume(failing, T0)
    assert queue_depth(clean_moto, url) == (0, 1)  # received, not deleted
    assert wait_for(lambda: queue_depth(clean_moto, url) == (1, 0), timeout=10)  # visible again
    got: list[dict[str, Any]] = []
    assert wait_for(lambda: bool(consumer.consume(got.extend, T0).records), timeout=10)
    assert ids(got) == ids(recorder.records)
    assert queue_depth(clean_moto, url) == (0, 0)


# --- S3 trail backfill -----------------------------------------------------------------------


def trail_bucket(server: MotoServer, now: datetime) -> dict[str, Any]:
    """An org trail bucket under prefix `trails/`: two days of recorded calls, another account's
    file, a non-gzip object and a file older than the window. Returns what was put there."""
    ec2, elbv2, s3 = server.client("ec2"), server.client("elbv2"), server.client("s3")
    world = build_incident_world(ec2, elbv2, with_ip_targets=True)
    s3.create_bucket(Bucket="org-trail")
    sink = S3TrailSink(s3, "org-trail", prefix="trails", org_id="o-abcdef1234")
    clock = ManualClock(now - timedelta(hours=30))
    recorder = CloudTrailRecorder(sink, clock)
    recorder.attach(ec2, elbv2)
    everyone = [
        {"IpProtocol": "tcp", "FromPort": 31080, "ToPort": 31080, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
    ]
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=everyone)
    clock.advance(30)
    ec2.authorize_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=everyone)
    keys = sink.flush()
    clock.advance(26 * 3600)
    elbv2.modify_target_group_attributes(
        TargetGroupArn=world.tg_arn, Attributes=[{"Key": "preserve_client_ip.enabled", "Value": "false"}]
    )
    clock.advance(3)
    ec2.revoke_security_group_ingress(GroupId=world.node_sg_id, IpPermissions=everyone)
    keys += sink.flush()
    other = samples.authorize_record(
        time=now - timedelta(hours=1), group_id="sg-0ther0000000000000", account="210987654321"
    )
    other_key = f"trails/AWSLogs/210987654321/CloudTrail/{REGION}/{now:%Y/%m/%d}/other.json.gz"
    s3.put_object(Bucket="org-trail", Key=other_key, Body=samples.trail_file_bytes([other]))
    broken_key = sink.key_for(MOTO_ACCOUNT, REGION, now, "broken.json.gz")
    s3.put_object(Bucket="org-trail", Key=broken_key, Body=b'{"Records": []}')
    old = samples.revoke_record(time=now - timedelta(days=5))
    s3.put_object(
        Bucket="org-trail",
        Key=sink.key_for(MOTO_ACCOUNT, REGION, now - timedelta(days=5), "old.json.gz"),
        Body=gzip.compress(json.dumps({"Records": [old]}).encode()),
    )
    return {
        "world": world,
        "recorded": recorder.records,
        "keys": [*keys, other_key, broken_key],
        "other": other,
        "broken_key": broken_key,
    }


def test_s3_backfill_reads_org_and_account_prefixes_and_rejects_non_gzip(clean_moto: MotoServer) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    put = trail_bucket(clean_moto, now)
    clients = exporter_clients(clean_moto)
    backfill = S3TrailBackfill(
        clients.client("s3"), "org-trail", since=now - timedelta(days=2), now=now, prefix="/trails/"
    )
    progress: list[tuple[int, int, int]] = []

    assert sorted(backfill.region_prefixes()) == [
        f"trails/AWSLogs/210987654321/CloudTrail/{REGION}/",
        f"trails/AWSLogs/o-abcdef1234/{MOTO_ACCOUNT}/CloudTrail/{REGION}/",
    ]
    results = list(backfill.run(lambda p: progress.append((p.files_done, p.files_total, p.records))))

    assert sorted(o.key for o, _ in results) == sorted(put["keys"])
    found = sorted(c.meta.event_id for _, r in results for c in r.changes)
    assert found == sorted([*(r["eventID"] for r in put["recorded"]), put["other"]["eventID"]])
    rejections = [(o.key, rej.reason) for o, r in results for rej in r.rejections]
    assert rejections == [(put["broken_key"], "not_gzip")]
    assert progress[0] == (0, len(results), 0) and progress[-1] == (
        len(results),
        len(results),
        len(found) + 1,
    )
    assert [p[0] for p in progress] == list(range(len(results) + 1))


def test_backfill_command_prints_changes_as_json_lines(
    clean_moto: MotoServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    put = trail_bucket(clean_moto, now)
    inventory_file = tmp_path / "inventory.json"
    assert main(["snapshot", "--output", str(inventory_file)]) == 0
    out = tmp_path / "changes.jsonl"

    code = main(
        [
            "backfill",
            "--bucket",
            "org-trail",
            "--prefix",
            "trails",
            "--since",
            "2d",
            "--inventory",
            str(inventory_file),
            "--output",
            str(out),
        ]
    )

    assert code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    by_id = {line["event_id"]: line for line in lines}
    assert set(by_id) == {r["eventID"] for r in put["recorded"]} | {put["other"]["eventID"]}
    world = put["world"]
    for record in put["recorded"]:
        line = by_id[record["eventID"]]
        assert line["event_name"] == record["eventName"] and line["in_inventory"] is True
        assert line.get("group_id", line.get("target_group_arn")) in (world.node_sg_id, world.tg_arn)
    assert by_id[put["other"]["eventID"]]["in_inventory"] is False
    err = capsys.readouterr().err
    assert f"backfill: files {len(put['keys'])}/{len(put['keys'])}" in err and "not_gzip=1" in err
    assert main(["backfill", "--bucket", "org-trail", "--since", "soon"]) == 2


# --- read-only promise and the IAM policy ----------------------------------------------------


@pytest.fixture(scope="module")
def exporter_operations(moto_server: MotoServer) -> Iterator[set[tuple[str, str]]]:
    """Every (service, operation) the exporter sends in inventory + LookupEvents + SQS + backfill,
    as the server logged them, with an assumed role so AssumeRole is among them."""
    server = moto_server
    server.reset()
    now = datetime.now(UTC).replace(microsecond=0)
    put = trail_bucket(server, now)
    ec2 = server.client("ec2")
    office = ec2.create_managed_prefix_list(
        PrefixListName="office", AddressFamily="IPv4", MaxEntries=5, Entries=[{"Cidr": "192.0.2.0/24"}]
    )["PrefixList"]["PrefixListId"]
    ec2.authorize_security_group_ingress(  # a rule referencing a prefix list: its entries are read
        GroupId=put["world"].node_sg_id,
        IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "PrefixListIds": [{"PrefixListId": office}]}
        ],
    )
    url = event_queue(server)
    server.add_records(put["recorded"])
    server.client("sqs").send_message(
        QueueUrl=url, MessageBody=json.dumps(samples.eventbridge_envelope(put["other"]))
    )
    server.client("sqs").send_message(QueueUrl=url, MessageBody="garbage")
    server.client("logs").create_log_group(logGroupName="vpc-flow-logs")
    counter, guard = ApiCallCounter(), ReadOnlyGuard()
    clients = AwsClients(
        AwsTarget(REGION, role_arn=f"arn:aws:iam::{MOTO_ACCOUNT}:role/sg-churn-read"),
        counter=counter,
        guard=guard,
        endpoint_url=server.url,
    )
    start = len(server.requests())

    inventory = inventory_for(clients, now)
    poll = LookupEventsPoller(
        clients.client("cloudtrail"), TokenBucket(50.0), initial_lookback=timedelta(days=2)
    ).poll(now)
    poll.commit()
    consumer = SqsConsumer.for_clients(clients, url, wait_seconds=1)
    consumed = consumer.consume(lambda records: None, now)
    backfill = list(
        S3TrailBackfill(
            clients.client("s3"), "org-trail", since=now - timedelta(days=2), now=now, prefix="trails"
        ).run()
    )

    impact = impact_reads(clients, inventory, now)

    logged = server.requests()[start:]
    assert impact == (1, 0)
    assert inventory.load_balancers and len(poll.records) == len(put["recorded"]) and backfill
    assert inventory.prefix_lists[office].cidrs == ("192.0.2.0/24",)
    assert consumed.counts["messages"] >= 1
    assert counter.snapshot().total_attempts == len(logged)
    yield {(str(e["service"]), str(e["operation"])) for e in logged}


def impact_reads(clients: AwsClients, inventory: Any, now: datetime) -> tuple[int, int]:
    """The impact evidence of one gap: its NLB metrics (GetMetricData) and flow logs (FilterLogEvents)."""
    from exporter.engine.flowlogs import DEFAULT_FORMAT, FlowLogFormat
    from exporter.engine.impact import HealthCheck, window_for
    from exporter.sources.impact import FlowLogRequest, MetricRequest, read_flow_logs, read_metrics

    group = next(tg for tg in inventory.target_groups.values() if tg.load_balancer_arns)
    window = window_for(now - timedelta(minutes=5), now - timedelta(minutes=4), HealthCheck())
    metrics = read_metrics(
        clients.client("cloudwatch"), [MetricRequest(group.arn, group.load_balancer_arns[0], window)]
    )
    evidence, _ = read_flow_logs(
        clients.client("logs"),
        "vpc-flow-logs",
        FlowLogFormat.parse(DEFAULT_FORMAT),
        FlowLogRequest(frozenset({"10.0.0.1"}), frozenset(), frozenset({80}), window.start, window.end),
        now=now,
    )
    assert evidence is not None
    return len(metrics), evidence.rejected_flows


def test_exporter_only_reads(exporter_operations: set[tuple[str, str]]) -> None:
    def allowed(service: str, operation: str) -> bool:
        return (
            operation.startswith(("Describe", "List", "Get"))
            or operation in ("LookupEvents", "ReceiveMessage", "FilterLogEvents")
            or (service, operation)
            in {("sts", "AssumeRole"), ("sts", "GetCallerIdentity"), ("sqs", "DeleteMessage")}
        )

    print("operations:", sorted(exporter_operations))
    assert [op for op in sorted(exporter_operations) if not allowed(*op)] == []
    expected = {
        ("sts", "AssumeRole"),
        ("cloudtrail", "LookupEvents"),
        ("sqs", "DeleteMessage"),
        ("s3", "GetObject"),
    }
    assert expected <= exporter_operations


IAM_PREFIX = {"elbv2": "elasticloadbalancing"}
S3_ACTIONS = {"ListObjectsV2": "s3:ListBucket", "GetObject": "s3:GetObject"}


def iam_action(service: str, operation: str) -> str:
    if service == "s3":
        return S3_ACTIONS[operation]
    return f"{IAM_PREFIX.get(service, service)}:{operation}"


def test_iam_policy_allows_exactly_the_recorded_operations(exporter_operations: set[tuple[str, str]]) -> None:
    policy = json.loads(POLICY.read_text())
    statements = policy["Statement"]
    granted = [
        a
        for s in statements
        if s["Effect"] == "Allow"
        for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])
    ]
    needed = {iam_action(*op) for op in exporter_operations}
    missing = sorted(a for a in needed if not any(fnmatch.fnmatchcase(a, g) for g in granted))
    assert missing == []
    unused = sorted(g for g in granted if not any(fnmatch.fnmatchcase(a, g) for a in needed))
    assert unused == []
    assert all("*" not in a for a in granted)  # least privilege: exact actions only
    assert not any(s["Effect"] == "Allow" and s.get("NotAction") for s in statements)
