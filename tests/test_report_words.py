"""The short words for a rule, a flow and a trigger's change (reports/words.py), as every report
prints them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from exporter.engine.rules import Flow, Rule, Source
from exporter.engine.triggers import Trigger
from exporter.reports.words import attributes_text, flow_text, rule_text, trigger_detail


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        (Rule("tcp", 80, 80, Source.cidr("10.0.0.0/16")), "tcp/80 from 10.0.0.0/16"),
        (Rule("6", 30000, 32767, Source.group("sg-1")), "tcp/30000-32767 from sg-1"),
        (Rule("-1", 0, 65535, Source.cidr("::/0")), "-1/all from ::/0"),
        (Rule("icmp", -1, -1, Source("prefix_list", "pl-1")), "icmp/all from pl-1"),
    ],
)
def test_rule_text_words_ports_as_all_one_or_a_range(rule: Rule, text: str) -> None:
    assert rule_text(rule) == text


def test_flow_text_names_protocol_port_and_source() -> None:
    assert flow_text(Flow("17", 53, Source.cidr("10.1.2.3/24"))) == "udp/53 from 10.1.2.0/24"


def test_trigger_detail_is_the_attributes_and_a_kubernetes_write_names_what_it_wrote() -> None:
    changed = (("preserve_client_ip.enabled", "false"), ("deregistration_delay.timeout_seconds", "0"))
    assert (
        attributes_text(changed) == "preserve_client_ip.enabled=false, deregistration_delay.timeout_seconds=0"
    )
    flip = Trigger(
        "ModifyTargetGroupAttributes",
        "e1",
        datetime(2026, 11, 20, tzinfo=UTC),
        "ops",
        "ops/alice",
        "",
        "",
        changed[:1],
    )
    assert trigger_detail(flip) == "preserve_client_ip.enabled=false"
    write = Trigger(
        "Service write", "", flip.time, "kubectl", "kubectl", "", "", changed[:1], source="kubernetes"
    )
    assert trigger_detail(write) == "Service write: preserve_client_ip.enabled=false"
    assert (
        trigger_detail(Trigger("Service write", "", flip.time, "k", "k", "", "", source="kubernetes"))
        == "Service write"
    )
