"""Issue 12 acceptance: setups common on real EKS fleets show no false gap, and a real one exactly.

Everything runs against a moto server over HTTP (tests/fleet_world.py builds the fleet): the
daemon with its jobs run by hand on a manual clock, and `replay` on the inventory it read and the
CloudTrail records of the test's own calls.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from exporter.cli import main
from exporter.daemon.assemble import Assembly
from exporter.metrics import build_registry
from exporter.sources.aws import AwsClients, AwsTarget
from exporter.sources.inventory import inventory_for
from tests import cloudtrail_samples as samples
from tests.awsworld import REGION, CloudTrailRecorder, LookupSink, ManualClock, MotoServer, moto_daemon
from tests.fleet_world import (
    ALL_SETUPS,
    HYBRID_IP,
    HYBRID_ZONED_IP,
    PREFIX,
    PREFIX_POD_IP,
    Setup,
    build_fleet,
    build_nlb_to_alb,
)

SETUPS = ALL_SETUPS
#: What each setup's client sources are judged by without Kubernetes access (the `intent` label).
INTENTS = {
    "dualstack-ipv4": "managed_rules",  # the controller's 0.0.0.0/0
    "dualstack-ipv6": "managed_rules",  # the controller's ::/0
    "prefix-pods": "default",  # client IPs not preserved: the managed rules are the subnets
    "sg-mode-cidr": "default",  # the user's own rule, not the controller's
    "source-ranges": "managed_rules",  # the Service's two ranges, unknown without Kubernetes
    "prefix-list": "default",
}
CONTROLLER_ROLE = "eks-demo-aws-load-balancer-controller"


def _daemon(moto: MotoServer, state: Path, clock: ManualClock) -> Assembly:
    return moto_daemon(moto, state, clock, cluster="fleet")  # type: ignore[no-any-return]


def _samples(assembly: Assembly, name: str) -> list[tuple[dict[str, str], float]]:
    text = generate_latest(build_registry(assembly.daemon.snapshot)).decode()
    found = []
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels_text, value = line[len(name) + 1 :].rsplit("} ", 1)
            labels = dict(part.split("=", 1) for part in labels_text.split('",') if part)
            found.append(({k: v.strip('"') for k, v in labels.items()}, float(value)))
    return found


def _replay(
    tmp_path: Path,
    moto: MotoServer,
    clock: ManualClock,
    records: list[dict],  # type: ignore[type-arg]
    capsys: pytest.CaptureFixture[str],
) -> list[dict]:  # type: ignore[type-arg]
    inventory = inventory_for(AwsClients(AwsTarget(REGION), endpoint_url=moto.url), clock.now())
    inv_file = tmp_path / "inventory.json"
    inv_file.write_text(json.dumps(inventory.to_dict()))
    events = tmp_path / "events.jsonl"
    events.write_bytes(samples.json_lines(records))
    capsys.readouterr()  # what the daemon logged so far
    assert main(["replay", "--inventory", str(inv_file), str(events)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    return [g for g in lines if "target_group_arn" in g and "event" not in g]  # gaps, not log lines


@pytest.fixture
def fleet(clean_moto: MotoServer) -> dict[str, Setup]:
    return build_fleet(clean_moto.client("ec2"), clean_moto.client("elbv2"), SETUPS)


def test_the_inventory_reads_family_prefixes_secondary_ips_hybrid_targets_and_prefix_lists(
    clean_moto: MotoServer, fleet: dict[str, Setup]
) -> None:
    clock = ManualClock()
    inv = inventory_for(AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url), clock.now())
    assert inv.target_groups[fleet["dualstack_ipv4_tg"].tg_arn].ip_address_type == "ipv4"
    assert inv.target_groups[fleet["dualstack_ipv6_tg"].tg_arn].ip_address_type == "ipv6"
    lb = inv.load_balancers[inv.target_groups[fleet["dualstack_ipv4_tg"].tg_arn].load_balancer_arns[0]]
    assert lb.ip_address_type == "dualstack" and all(s.ipv6_cidr for s in lb.subnets)
    six = inv.target_groups[fleet["dualstack_ipv6_tg"].tg_arn].targets[0]
    assert six.eni_id is not None and ":" in six.target_id
    assert six.target_id in inv.network_interfaces[six.eni_id].ipv6_addresses

    setup = fleet["prefix_and_hybrid"]
    by_id = {t.target_id: t for t in inv.target_groups[setup.tg_arn].targets}
    assert by_id[PREFIX_POD_IP].eni_id == setup.extra["eni_id"]  # inside the delegated PREFIX
    assert by_id[setup.extra["secondary"]].eni_id == setup.extra["eni_id"]
    assert inv.network_interfaces[setup.extra["eni_id"]].ipv4_prefixes == (PREFIX,)
    hybrid = by_id[HYBRID_IP]
    assert (hybrid.availability_zone, hybrid.eni_id, hybrid.outside_vpc) == ("all", None, True)
    zoned = by_id[HYBRID_ZONED_IP]  # registered with its node's zone: outside by its address
    assert (zoned.availability_zone, zoned.eni_id) == (f"{REGION}a", None)

    listed = inv.prefix_lists[fleet["prefix_list"].extra["prefix_list_id"]]
    assert (listed.cidrs, listed.max_entries) == (("10.0.1.0/24", "10.0.2.0/24"), 10)


def test_the_fleet_in_steady_state_has_no_gap_in_the_daemon_nor_in_replay(
    clean_moto: MotoServer, fleet: dict[str, Setup], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = ManualClock()
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    assembly.daemon.run_all_once()
    clock.advance(30)
    assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert snap.ready and len(snap.target_groups) == len(SETUPS)
    assert snap.open_gaps == () and snap.recent_gaps == ()
    ratios = _samples(assembly, "sgchurn_target_group_reachability_ratio")
    assert len(ratios) == 2 * len(SETUPS) and all(value == 1.0 for _labels, value in ratios)
    assert [
        (labels["target_group"], labels["reason"], value)
        for labels, value in _samples(assembly, "sgchurn_target_group_not_evaluable_targets")
    ] == [("prefix-pods", "target_outside_vpc", 2.0)]
    assert not _samples(assembly, "sgchurn_target_group_unadmitted_targets")
    info = _samples(assembly, "sgchurn_target_group_info")
    assert {labels["target_group"]: labels["intent"] for labels, _value in info} == INTENTS
    unrelated = samples.authorize_record(  # a trail about something else: nothing to report
        "unrelated-1", clock.now(), "sg-0unrelated00000", [samples.permission(22, cidrs=["192.0.2.0/24"])]
    )
    assert _replay(tmp_path, clean_moto, clock, [unrelated], capsys) == []


@pytest.mark.parametrize("name", SETUPS)
def test_revoking_the_admitting_rule_for_20s_is_one_gap_per_affected_flow(
    name: str,
    clean_moto: MotoServer,
    fleet: dict[str, Setup],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup = fleet[name]
    ec2, elbv2 = clean_moto.client("ec2"), clean_moto.client("elbv2")
    clock = ManualClock()
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    assembly.daemon.run_all_once()  # the steady state, before any record
    recorder = CloudTrailRecorder(LookupSink(clean_moto), clock)
    recorder.attach(ec2, elbv2)

    clock.advance(30)
    revoked_at = clock.now()
    ec2.revoke_security_group_ingress(GroupId=setup.group_id, IpPermissions=setup.admitting)
    for _ in range(2):  # two polls confirm the gap before CloudTrail explains it
        clock.advance(5)
        assembly.daemon.run_job("inventory")
    assembly.daemon.run_job("evaluate")
    assert {g.flow for g in assembly.daemon.snapshot().open_gaps} == setup.affected
    clock.advance(10)
    ec2.authorize_security_group_ingress(GroupId=setup.group_id, IpPermissions=setup.admitting)
    clock.advance(5)
    for _ in range(2):
        assembly.daemon.run_all_once()

    snap = assembly.daemon.snapshot()
    assert snap.open_gaps == ()
    found = sorted((g.target_group_arn, g.flow, g.cause, g.actor, g.start) for g in snap.recent_gaps)
    assert found == sorted(
        (setup.tg_arn, flow, "revoke_before_authorize", CONTROLLER_ROLE, revoked_at)
        for flow in setup.affected
    )
    assert all(abs((g.duration_seconds or 0) - 20.0) <= 1.0 for g in snap.recent_gaps)

    replayed = _replay(tmp_path, clean_moto, clock, recorder.records, capsys)
    assert sorted((g["target_group_arn"], g["flow"], g["cause"], g["actor"]) for g in replayed) == sorted(
        (setup.tg_arn, flow, "revoke_before_authorize", CONTROLLER_ROLE) for flow in setup.affected
    )
    assert all(abs(g["duration_seconds"] - 20.0) <= 1.0 for g in replayed)


def test_an_alb_behind_an_nlb_is_not_evaluable_and_never_a_gap(
    clean_moto: MotoServer, tmp_path: Path
) -> None:
    """The controller's frontend NLB of an Ingress (LBC v2.13.0+, v3.5.0
    pkg/ingress/model_build_frontend_nlb.go) registers the ALB itself as the target: no ENI of a
    node or pod, and the ALB's own groups are not read. Before, a target_eni_not_found gap that
    never closed; now not evaluable, counted by its reason."""
    tg_arn = build_nlb_to_alb(clean_moto.client("ec2"), clean_moto.client("elbv2"))
    clock = ManualClock()
    inv = inventory_for(AwsClients(AwsTarget(REGION), endpoint_url=clean_moto.url), clock.now())
    tg = inv.target_groups[tg_arn]
    assert tg.target_type == "alb" and [t.eni_id for t in tg.targets] == [None]
    assembly = _daemon(clean_moto, tmp_path / "state.sqlite3", clock)
    assembly.daemon.run_all_once()
    clock.advance(30)
    assembly.daemon.run_all_once()
    snap = assembly.daemon.snapshot()
    assert snap.ready and snap.open_gaps == () and snap.recent_gaps == ()
    assert [
        (labels["target_group"], labels["reason"], value)
        for labels, value in _samples(assembly, "sgchurn_target_group_not_evaluable_targets")
    ] == [("frontend-nlb", "target_is_alb", 1.0)]
    assert not _samples(assembly, "sgchurn_target_group_unadmitted_targets")
    assert all(value == 1.0 for _l, value in _samples(assembly, "sgchurn_target_group_reachability_ratio"))
