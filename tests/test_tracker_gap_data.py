"""A gap's facts in the state file: declared once (tracker.GapData), written and read through a
real StateStore, and read leniently field by field from a corrupt or older file."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.daemon.snapshot import GapView
from exporter.daemon.state import StateStore, StoredGap
from exporter.daemon.tracker import GapData, _stored_from_view, read_gap_data, view_from_stored

T0 = datetime(2026, 11, 20, 8, 0, 0, tzinfo=UTC)
TG_ARN = "arn:aws:elasticloadbalancing:us-east-1:111122223333:targetgroup/k8s-shop-web/0123456789abcdef"

texts = st.text(max_size=20)
moments = st.integers(0, 10**8).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def gap_views(draw: st.DrawFn) -> GapView:
    start = draw(moments)
    return GapView(
        key=draw(st.text(min_size=1, max_size=12)),
        aws_account_id=draw(texts),
        aws_region=draw(texts),
        target_group_arn=TG_ARN,
        target_group=draw(texts),
        namespace=draw(texts),
        service=draw(texts),
        flow=draw(st.sampled_from(["traffic", "health_check"])),
        start=start,
        end=draw(st.none() | st.just(start + timedelta(seconds=61))),
        cause=draw(st.sampled_from(["revoke_before_authorize", "undetermined"])),
        actor=draw(texts),
        actor_arn=draw(texts),
        explained=draw(st.booleans()),
        actor_session=draw(texts),
        trigger_who=draw(texts),
        trigger_time=draw(st.none() | moments),
        trigger_event_id=draw(texts),
        trigger_detail=draw(texts),
        start_exact=draw(st.booleans()),
        note=draw(texts),
    )


@settings(max_examples=60, deadline=None)
@given(gap_views())
def test_a_gap_reads_back_from_its_stored_json_as_it_was_written(view: GapView) -> None:
    stored = _stored_from_view("111122223333/us-east-1", view)
    as_saved = StoredGap(**{**stored.__dict__, "data": json.loads(json.dumps(stored.data, sort_keys=True))})
    assert view_from_stored(as_saved) == view


def test_a_gap_survives_a_real_state_store(tmp_path: Path) -> None:
    view = GapView(
        key="k1",
        aws_account_id="111122223333",
        aws_region="us-east-1",
        target_group_arn=TG_ARN,
        target_group="k8s-shop-web",
        namespace="shop",
        service="web",
        flow="traffic",
        start=T0,
        end=T0 + timedelta(seconds=64),
        cause="revoke_before_authorize",
        actor="eks-prod-aws-load-balancer-controller",
        actor_arn="arn:aws:iam::111122223333:role/eks-prod-aws-load-balancer-controller",
        explained=True,
        trigger_time=T0 - timedelta(seconds=2),
        trigger_detail="preserve_client_ip.enabled=false",
    )
    store = StateStore(tmp_path / "state.db")
    try:
        with store.transaction() as db:
            store.upsert_gap(db, _stored_from_view("111122223333/us-east-1", view))
        (stored,) = store.last_gaps()
        assert view_from_stored(stored) == view
    finally:
        store.close()


#: `data` exactly as the hand-written writer before GapData (b6fb0a9) stored it.
EARLIER_DATA = {
    "actor": "eks-prod-aws-load-balancer-controller",
    "actor_arn": "arn:aws:iam::111122223333:role/eks-prod-aws-load-balancer-controller",
    "actor_session": "1700000000000000000",
    "aws_account_id": "111122223333",
    "aws_region": "us-east-1",
    "namespace": "shop",
    "note": "",
    "service": "web",
    "start_exact": False,
    "target_group": "k8s-shop-web",
    "trigger_detail": "preserve_client_ip.enabled=false",
    "trigger_event_id": "7dec95c0-a382-4107-9620-54fcc093b8cb",
    "trigger_time": 1763625598.0,
    "trigger_who": "eks-prod-aws-load-balancer-controller/1700000000000000000",
}


def test_data_written_by_the_earlier_writer_reads_as_it_was_meant() -> None:
    data = read_gap_data(EARLIER_DATA)
    assert msgspec_fields(data) == EARLIER_DATA


def test_older_data_without_the_later_keys_reads_their_defaults() -> None:
    data = read_gap_data({"actor": "alice", "aws_region": "eu-west-1"})
    assert data == GapData(actor="alice", aws_region="eu-west-1")
    assert data.start_exact is True and data.trigger_time is None


def test_a_corrupt_field_reads_as_its_default_and_the_others_still_read() -> None:
    data = read_gap_data(
        {
            **EARLIER_DATA,
            "actor": 5,  # not text
            "trigger_time": 1e300,  # past year 9999: would not turn into a datetime
            "note": None,
            "start_exact": "no",
            "unknown_key": [1, 2],
        }
    )
    assert data.actor == "" and data.trigger_time is None and data.note == "" and data.start_exact is True
    assert data.namespace == "shop" and data.trigger_detail == "preserve_client_ip.enabled=false"
    stored = StoredGap("k", "t", TG_ARN, "traffic", 0.0, None, "undetermined", False, {"trigger_time": -1})
    assert view_from_stored(stored).trigger_time is None  # before 1970: absent, never an error


def msgspec_fields(data: GapData) -> dict[str, object]:
    return {name: getattr(data, name) for name in data.__struct_fields__}
