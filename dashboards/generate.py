#!/usr/bin/env python3
"""Generate the Grafana dashboards (dashboards/*.json) with grafana-foundation-sdk.

    .venv/bin/python dashboards/generate.py            # rewrite dashboards/*.json
    .venv/bin/python dashboards/generate.py --check    # exit 1 if a file is out of date

The JSON files are committed (the Helm chart ships them to the Grafana sidecar) and must equal this
script's output: tests/test_dashboards.py checks it. Edit this file, never the JSON.

Conventions every dashboard follows (and the tests check):
- one `datasource` variable (type datasource, query prometheus); every panel, target, annotation and
  query variable uses `${datasource}`;
- every panel has a unit; Grafana variables appear only inside `=~"..."` matchers (multi-value,
  "All" = `.*`, which also matches the empty namespace/service of unmapped target groups);
- counters (`_total`, `_bucket`, `_count`, `_sum`) appear only inside rate()/increase();
  rate() and increase() use `$__rate_interval`, except increase() over `$__range` in instant
  stat/table panels ("in the selected time range").

The SDK targets Grafana 11.6. Its annotation model lacks the Prometheus annotation fields
(titleFormat, tagKeys, textFormat, step); `_annotation()` adds them to the built JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap, prometheus, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hmm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).resolve().parent
P = TypeVar("P", timeseries.Panel, stat.Panel, table.Panel, statetimeline.Panel, heatmap.Panel)
DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
JOB = 'job="sg-churn-exporter"'
TAGS = ["sg-churn-exporter", "aws", "nlb"]

# Label selectors (Grafana variables, always as regex matchers).
ACCOUNT_REGION = 'aws_account_id=~"$account", aws_region=~"$region"'
OVERVIEW_TG = ACCOUNT_REGION + ', namespace=~"$namespace"'
DRILL_TG = OVERVIEW_TG + ', service=~"$service", target_group=~"$target_group"'
INSTANCE = 'instance=~"$instance"'

GREEN, YELLOW, RED = "green", "yellow", "red"

#: Gaps closed in the range, from the end time of each target group's and flow's last gap: each
#: gap that closes changes it, and the first one makes the series appear (the counter has no zero
#: series, so increase() would miss that first gap: docs/metrics.md#changelog). Instances are
#: aggregated away, so a rollout (same end times, new instance) counts nothing.
_GAP_KEY = "aws_account_id, aws_region, target_group, flow"
_LAST_END = "sgchurn_rule_gap_last_end_timestamp_seconds{{{sel}}}"
GAPS_IN_RANGE = (
    f"round(sum(max by ({_GAP_KEY}) (changes({_LAST_END}[$__range])))"
    f" + (count(max by ({_GAP_KEY}) ({_LAST_END})"
    f" unless max by ({_GAP_KEY}) ({_LAST_END} offset $__range)) or vector(0)))"
    " or vector(0)"
)


# -- small builders on top of the SDK -------------------------------------------------------------


def q(
    expr: str, legend: str = "__auto", ref: str = "A", instant: bool = False, fmt: str | None = None
) -> prometheus.Dataquery:
    query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DS)
    query = query.instant() if instant else query.range()
    if fmt == "table":
        query = query.format(pm.PromQueryFormat.TABLE)
    elif fmt == "heatmap":
        query = query.format(pm.PromQueryFormat.HEATMAP)
    return query


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def value_text(mapping: dict[str, tuple[str, str]]) -> list[dm.ValueMapping]:
    """Value mappings: raw value -> (text, color)."""
    return [
        dm.ValueMap(
            options={
                raw: dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (raw, (text, color)) in enumerate(mapping.items())
            }
        )
    ]


UP_DOWN = value_text({"0": ("down", RED), "1": ("up", GREEN)})
OPEN_CLOSED = value_text({"0": ("closed", GREEN), "1": ("open", RED)})


def _common(panel: P, title: str, description: str, unit: str, w: int, h: int) -> P:
    return panel.title(title).description(description).datasource(DS).unit(unit).span(w).height(h)


def ts(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    w: int = 12,
    h: int = 8,
    bars: bool = False,
    min_val: float | None = None,
    max_val: float | None = None,
    stack: bool = False,
) -> timeseries.Panel:
    panel = _common(timeseries.Panel(), title, description, unit, w, h)
    for target in targets:
        panel = panel.with_target(target)
    panel = panel.legend(
        cb.VizLegendOptions()
        .show_legend(True)
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.BOTTOM)
        .calcs(["lastNotNull", "max"])
    ).tooltip(cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING))
    if bars:
        panel = panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80).line_width(1)
    else:
        panel = panel.line_width(1).fill_opacity(10)
    if stack:
        panel = panel.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if min_val is not None:
        panel = panel.min(min_val)
    if max_val is not None:
        panel = panel.max(max_val)
    return panel


def st(
    title: str,
    description: str,
    unit: str,
    expr: str,
    w: int = 4,
    h: int = 4,
    steps: Sequence[tuple[float | None, str]] = ((None, GREEN),),
    mappings: list[dm.ValueMapping] | None = None,
    legend: str = "__auto",
) -> stat.Panel:
    panel = (
        _common(stat.Panel(), title, description, unit, w, h)
        .with_target(q(expr, legend=legend, instant=True))
        .thresholds(thresholds(*steps))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(mappings)
    return panel


def tbl(
    title: str, description: str, unit: str, expr: str, w: int = 12, h: int = 8, hide: Sequence[str] = ()
) -> table.Panel:
    excluded = {"Time": True, **{name: True for name in hide}}
    return (
        _common(table.Panel(), title, description, unit, w, h)
        .with_target(q(expr, instant=True, fmt="table"))
        .with_transformation(dm.DataTransformerConfig(id_val="organize", options={"excludeByName": excluded}))
    )


def timeline(
    title: str,
    description: str,
    expr: str,
    legend: str,
    mappings: list[dm.ValueMapping],
    w: int = 12,
    h: int = 8,
) -> statetimeline.Panel:
    return (
        _common(statetimeline.Panel(), title, description, "none", w, h)
        .with_target(q(expr, legend=legend))
        .mappings(mappings)
        .thresholds(thresholds((None, GREEN), (1, RED)))
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
    )


def hm(title: str, description: str, expr: str, w: int = 12, h: int = 8) -> heatmap.Panel:
    return (
        _common(heatmap.Panel(), title, description, "s", w, h)
        .with_target(q(expr, legend="{{le}}", fmt="heatmap"))
        .calculate(False)
        .y_axis(heatmap.YAxisConfig().unit("s"))
        .cell_values(heatmap.CellValues().unit("none"))
        .color(heatmap.HeatmapColorOptions().mode(hmm.HeatmapColorMode.SCHEME).scheme("Oranges").steps(64))
    )


def query_var(name: str, label: str, query: str, multi: bool = True) -> db.QueryVariable:
    return (
        db.QueryVariable(name)
        .label(label)
        .datasource(DS)
        .query(query)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(True)
        .all_value(".*")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def datasource_var() -> db.DatasourceVariable:
    return db.DatasourceVariable("datasource").label("Data source").type("prometheus")


@dataclass(frozen=True)
class Annotation:
    name: str
    expr: str
    title: str
    text: str
    tags: str
    color: str


def _annotation(a: Annotation) -> db.AnnotationQuery:
    return db.AnnotationQuery().name(a.name).datasource(DS).expr(a.expr).enable(True).icon_color(a.color)


@dataclass
class Spec:
    """One dashboard: SDK builder plus the Prometheus annotation fields the SDK cannot express."""

    file: str
    builder: db.Dashboard
    annotations: list[Annotation] = field(default_factory=list)


#: Dashboard uids, and the path from one to the next: overview -> target group -> exporter health.
OVERVIEW_UID, TARGET_GROUP_UID, EXPORTER_UID = "sgchurn-overview", "sgchurn-target-group", "sgchurn-exporter"


def nav_link(title: str, uid: str, *, include_vars: bool) -> db.DashboardLink:
    """A link to another of our dashboards, keeping the time range (and the variables, when asked)."""
    return (
        db.DashboardLink(title)
        .type(dm.DashboardLinkType.LINK)
        .url(f"/d/{uid}")
        .icon("dashboard")
        .tooltip(f"Open {title}")
        .include_vars(include_vars)
        .keep_time(True)
    )


def target_group_variables(builder: db.Dashboard, drill: bool) -> db.Dashboard:
    info = "sgchurn_target_group_info"
    builder = (
        builder.with_variable(datasource_var())
        .with_variable(query_var("account", "Account", f"label_values({info}, aws_account_id)"))
        .with_variable(
            query_var("region", "Region", f'label_values({info}{{aws_account_id=~"$account"}}, aws_region)')
        )
        .with_variable(
            query_var("namespace", "Namespace", f"label_values({info}{{{ACCOUNT_REGION}}}, namespace)")
        )
    )
    if drill:
        builder = builder.with_variable(
            query_var("service", "Service", f"label_values({info}{{{OVERVIEW_TG}}}, service)")
        ).with_variable(
            query_var(
                "target_group",
                "Target group",
                f'label_values({info}{{{OVERVIEW_TG}, service=~"$service"}}, target_group)',
            )
        )
    return builder


ATTRIBUTE_LAST = "sgchurn_target_group_attribute_last_change_timestamp_seconds{{{sel}}}"
BREAK_BEFORE_MAKE_LAST = (
    f"sgchurn_rule_replacement_last_break_before_make_timestamp_seconds{{{ACCOUNT_REGION}}}"
)


def _new_time(by: str, series: str) -> str:
    """Where a "last time" gauge moved in the interval, or appeared (its first event): the counters
    have no zero series, so increase() would miss a first event (docs/metrics.md#changelog)."""
    return (
        f"max by ({by}) (changes({series}[$__rate_interval]) > 0"
        f" or ({series} unless {series} offset $__rate_interval))"
    )


def change_annotations(sel: str) -> list[Annotation]:
    return [
        Annotation(
            "Attribute changes",
            _new_time("aws_account_id, aws_region, target_group, attribute", ATTRIBUTE_LAST.format(sel=sel)),
            "{{attribute}} changed",
            "{{target_group}} ({{aws_account_id}}/{{aws_region}})",
            "target_group,attribute",
            "orange",
        ),
        Annotation(
            "preserve_client_ip flips",
            f"changes(sgchurn_target_group_preserve_client_ip{{{sel}}}[$__rate_interval]) > 0",
            "preserve_client_ip changed on {{target_group}}",
            "seen in the inventory (not from CloudTrail)",
            "target_group",
            "yellow",
        ),
        Annotation(
            "Break-before-make replacements",
            _new_time("aws_account_id, aws_region, security_group", BREAK_BEFORE_MAKE_LAST),
            "break-before-make on {{security_group}}",
            "rules revoked before their replacement was authorized ({{aws_account_id}}/{{aws_region}})",
            "security_group",
            "red",
        ),
        Annotation(
            "Rule gaps open",
            f"max by (target_group, flow) (sgchurn_rule_gap_open{{{sel}}}) == 1",
            "rule gap open: {{target_group}} {{flow}}",
            "",
            "target_group,flow",
            "purple",
        ),
    ]


LAST_GAP = (
    "max by (aws_account_id, aws_region, target_group, namespace, service, flow) "
    "(sgchurn_rule_gap_last_duration_seconds{{{sel}}})\n"
    "* on (aws_account_id, aws_region, target_group, flow) group_left (cause, actor)\n"
    "topk by (aws_account_id, aws_region, target_group, flow) (1, sgchurn_rule_gap_last_info{{{sel}}})"
)

LAST_REJECTED = (
    "max by (aws_account_id, aws_region, target_group, namespace, service, flow) "
    "(sgchurn_rule_gap_last_rejected_flows{{{sel}}})"
)
IMPACT_CONFIRMED = (
    "max by (aws_account_id, aws_region, target_group, namespace, service, flow) "
    "(time() - sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds{{{sel}}})"
)


# -- the dashboards ---------------------------------------------------------------------------------


def overview() -> Spec:
    sel = OVERVIEW_TG
    builder = target_group_variables(
        db.Dashboard("SG churn: overview")
        .uid(OVERVIEW_UID)
        .link(nav_link("Target group", TARGET_GROUP_UID, include_vars=True))
        .link(nav_link("Exporter health", EXPORTER_UID, include_vars=False))
        .description("Reachability of NLB target groups through their security-group rules, and rule gaps.")
        .tags(TAGS)
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("SG churn dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["sg-churn-exporter"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        ),
        drill=False,
    )
    builder = (
        builder.with_row(db.Row("Now"))
        .with_panel(
            st(
                "Target groups watched",
                "Target groups the exporter watches.",
                "none",
                f"count(sgchurn_target_group_info{{{sel}}}) or vector(0)",
            )
        )
        .with_panel(
            st(
                "Not fully reachable",
                "Target groups with a flow not admitted to every target now.",
                "none",
                "count(min by (aws_account_id, aws_region, target_group) "
                f"(sgchurn_target_group_reachability_ratio{{{sel}}}) < 1) or vector(0)",
                steps=((None, GREEN), (1, RED)),
            )
        )
        .with_panel(
            st(
                "Open rule gaps",
                "Target group flows with a rule gap open now.",
                "none",
                f"sum(sgchurn_rule_gap_open{{{sel}}}) or vector(0)",
                steps=((None, GREEN), (1, RED)),
            )
        )
        .with_panel(
            st(
                "Longest open gap",
                "Age of the oldest open rule gap.",
                "s",
                f"max(time() - sgchurn_rule_gap_open_since_timestamp_seconds{{{sel}}}) or vector(0)",
                steps=((None, GREEN), (1, YELLOW), (120, RED)),
            )
        )
        .with_panel(
            st(
                "Gaps in range",
                "Rule gaps closed in the selected time range: changes of the last gap's end time, plus "
                "target groups and flows whose first gap closed in the range.",
                "none",
                GAPS_IN_RANGE.format(sel=sel),
                steps=((None, GREEN), (1, YELLOW)),
            )
        )
        .with_panel(
            st(
                "Legacy-mode target groups",
                "Target groups whose NLB has no security groups: a preserve_client_ip flip replaces node rules.",
                "none",
                f'count(sgchurn_target_group_info{{{sel}, mode="legacy"}}) or vector(0)',
                steps=((None, GREEN), (1, YELLOW)),
            )
        )
        .with_row(db.Row("Reachability"))
        .with_panel(
            ts(
                "Reachability by target group",
                "Fraction of targets whose security groups admit the flow.",
                "percentunit",
                [
                    q(
                        "min by (target_group, namespace, service, flow) "
                        f"(sgchurn_target_group_reachability_ratio{{{sel}}})",
                        legend="{{namespace}}/{{service}} {{target_group}} {{flow}}",
                    )
                ],
                min_val=0,
                max_val=1,
            )
        )
        .with_panel(
            timeline(
                "Rule gaps",
                "Open (red) and closed (green) per target group and flow.",
                f"max by (target_group, flow) (sgchurn_rule_gap_open{{{sel}}})",
                "{{target_group}} {{flow}}",
                OPEN_CLOSED,
            )
        )
        .with_panel(
            tbl(
                "Not fully reachable now",
                "Target group flows with reachability below 100 %.",
                "percentunit",
                "min by (aws_account_id, aws_region, target_group, namespace, service, flow) "
                f"(sgchurn_target_group_reachability_ratio{{{sel}}}) < 1",
            )
        )
        .with_panel(
            tbl(
                "Open rule gaps",
                "Open gaps and how long they have been open.",
                "s",
                "max by (aws_account_id, aws_region, target_group, namespace, service, flow) "
                f"(time() - sgchurn_rule_gap_open_since_timestamp_seconds{{{sel}}})",
            )
        )
        .with_row(db.Row("Rule gaps"))
        .with_panel(
            ts(
                "Closed gaps by cause",
                "Rule gaps closed per interval, by cause.",
                "none",
                [
                    q(
                        f"sum by (cause) (increase(sgchurn_rule_gaps_total{{{sel}}}[$__rate_interval]))",
                        legend="{{cause}}",
                    )
                ],
                bars=True,
                stack=True,
            )
        )
        .with_panel(
            hm(
                "Gap durations",
                "Durations of closed rule gaps across the target groups of the selected accounts and "
                "regions (histogram buckets per interval; the namespace filter does not apply).",
                "sum by (le) (increase(sgchurn_rule_gap_duration_seconds_bucket"
                f"{{{ACCOUNT_REGION}}}[$__rate_interval]))",
            )
        )
        .with_panel(
            tbl(
                "Last gap per target group",
                "The most recent closed gap of each target group and flow.",
                "s",
                LAST_GAP.format(sel=sel),
            )
        )
        .with_panel(
            _common(
                stat.Panel(),
                "Gap duration quantiles in range",
                "Median, 95th percentile and longest bucket bound of closed gaps in the selected range "
                "(selected accounts and regions; the namespace filter does not apply).",
                "s",
                12,
                8,
            )
            .with_target(
                q(
                    "histogram_quantile(0.5, sum by (le) "
                    f"(increase(sgchurn_rule_gap_duration_seconds_bucket{{{ACCOUNT_REGION}}}[$__range])))",
                    legend="p50",
                    ref="A",
                    instant=True,
                )
            )
            .with_target(
                q(
                    "histogram_quantile(0.95, sum by (le) "
                    f"(increase(sgchurn_rule_gap_duration_seconds_bucket{{{ACCOUNT_REGION}}}[$__range])))",
                    legend="p95",
                    ref="B",
                    instant=True,
                )
            )
            .with_target(
                q(
                    "histogram_quantile(1, sum by (le) "
                    f"(increase(sgchurn_rule_gap_duration_seconds_bucket{{{ACCOUNT_REGION}}}[$__range])))",
                    legend="max (bucket bound)",
                    ref="C",
                    instant=True,
                )
            )
            .thresholds(thresholds((None, GREEN), (5, YELLOW), (60, RED)))
            .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        )
        .with_row(db.Row("Impact of closed gaps"))
        .with_panel(
            tbl(
                "Harm confirmed",
                "Target groups and flows with a closed gap confirmed to have hurt traffic (impact.enabled: "
                "the NLB's unhealthy hosts rose, or VPC Flow Logs show REJECTs to a target): seconds since "
                "the last confirmation (SGChurnRuleGapImpactConfirmed pages for an hour after it).",
                "s",
                IMPACT_CONFIRMED.format(sel=sel),
            )
        )
        .with_panel(
            tbl(
                "Rejected flows in the last gap",
                "VPC Flow Log REJECTs to the targets on their port during the last closed gap of each target "
                "group and flow (with impact.flow_logs.log_group or s3_uri).",
                "none",
                LAST_REJECTED.format(sel=sel),
            )
        )
        .with_row(db.Row("Changes seen in CloudTrail"))
        .with_panel(
            ts(
                "Security-group rule changes",
                "Rule API calls on watched security groups, by result.",
                "none",
                [
                    q(
                        "sum by (event_name, result) (increase("
                        f"sgchurn_security_group_rule_changes_total{{{ACCOUNT_REGION}}}[$__rate_interval]))",
                        legend="{{event_name}} {{result}}",
                    )
                ],
                w=8,
                bars=True,
                stack=True,
            )
        )
        .with_panel(
            ts(
                "Rule replacements",
                "Revoke + authorize pairs, by order.",
                "none",
                [
                    q(
                        "sum by (order) (increase("
                        f"sgchurn_rule_replacements_total{{{ACCOUNT_REGION}}}[$__rate_interval]))",
                        legend="{{order}}",
                    )
                ],
                w=8,
                bars=True,
                stack=True,
            )
        )
        .with_panel(
            ts(
                "Target-group attribute changes",
                "ModifyTargetGroupAttributes, by attribute.",
                "none",
                [
                    q(
                        "sum by (attribute) (increase("
                        f"sgchurn_target_group_attribute_changes_total{{{sel}}}[$__rate_interval]))",
                        legend="{{attribute}}",
                    )
                ],
                w=8,
                bars=True,
                stack=True,
            )
        )
    )
    return Spec("sgchurn-overview.json", builder, change_annotations(sel))


def target_group() -> Spec:
    sel = DRILL_TG
    builder = target_group_variables(
        db.Dashboard("SG churn: target group")
        .uid(TARGET_GROUP_UID)
        .link(nav_link("Overview", OVERVIEW_UID, include_vars=True))
        .link(nav_link("Exporter health", EXPORTER_UID, include_vars=False))
        .description(
            "One target group: its setup, reachability per flow, rule gaps and the changes behind them."
        )
        .tags(TAGS)
        .refresh("1m")
        .time("now-24h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("SG churn dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["sg-churn-exporter"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        ),
        drill=True,
    )
    builder = (
        builder.with_row(db.Row("Target group"))
        .with_panel(
            tbl(
                "Setup",
                "Load balancer, mode (sg: NLB with security groups; legacy: without), "
                "target type, protocol, cluster.",
                "none",
                f"sgchurn_target_group_info{{{sel}}}",
                w=24,
                h=5,
                hide=("Value", "__name__"),
            )
        )
        .with_panel(
            st(
                "preserve_client_ip",
                "Effective preserve_client_ip.enabled now.",
                "bool_on_off",
                f"max by (target_group) (sgchurn_target_group_preserve_client_ip{{{sel}}})",
                w=6,
                legend="{{target_group}}",
            )
        )
        .with_panel(
            st(
                "Targets",
                "Registered targets.",
                "none",
                f"sum(sgchurn_target_group_targets{{{sel}}}) or vector(0)",
                w=6,
            )
        )
        .with_panel(
            st(
                "Open rule gaps",
                "Flows with a rule gap open now.",
                "none",
                f"sum(sgchurn_rule_gap_open{{{sel}}}) or vector(0)",
                w=6,
                steps=((None, GREEN), (1, RED)),
            )
        )
        .with_panel(
            st(
                "Gaps in range",
                "Rule gaps closed in the selected time range: changes of the last gap's end time, plus "
                "target groups and flows whose first gap closed in the range.",
                "none",
                GAPS_IN_RANGE.format(sel=sel),
                w=6,
                steps=((None, GREEN), (1, YELLOW)),
            )
        )
        .with_row(db.Row("Reachability"))
        .with_panel(
            ts(
                "Reachability by flow",
                "Fraction of targets whose security groups admit the flow.",
                "percentunit",
                [
                    q(
                        f"min by (target_group, flow) (sgchurn_target_group_reachability_ratio{{{sel}}})",
                        legend="{{target_group}} {{flow}}",
                    )
                ],
                min_val=0,
                max_val=1,
            )
        )
        .with_panel(
            ts(
                "Unadmitted targets by reason",
                "Targets whose security groups do not admit the flow.",
                "none",
                [
                    q(
                        "sum by (target_group, flow, reason) "
                        f"(sgchurn_target_group_unadmitted_targets{{{sel}}}) > 0",
                        legend="{{target_group}} {{flow}}: {{reason}}",
                    )
                ],
                stack=True,
            )
        )
        .with_panel(
            timeline(
                "Rule gaps",
                "Open (red) and closed (green) per flow.",
                f"max by (target_group, flow) (sgchurn_rule_gap_open{{{sel}}})",
                "{{target_group}} {{flow}}",
                OPEN_CLOSED,
            )
        )
        .with_panel(
            ts(
                "Open gap age",
                "How long the open gap has been open.",
                "s",
                [
                    q(
                        "max by (target_group, flow) "
                        f"(time() - sgchurn_rule_gap_open_since_timestamp_seconds{{{sel}}})",
                        legend="{{target_group}} {{flow}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Rule gaps"))
        .with_panel(
            ts(
                "Closed gaps by flow and cause",
                "Rule gaps closed per interval.",
                "none",
                [
                    q(
                        "sum by (target_group, flow, cause) "
                        f"(increase(sgchurn_rule_gaps_total{{{sel}}}[$__rate_interval]))",
                        legend="{{target_group}} {{flow}} {{cause}}",
                    )
                ],
                bars=True,
                stack=True,
            )
        )
        .with_panel(
            ts(
                "Last gap duration",
                "Duration of the last closed gap per flow.",
                "s",
                [
                    q(
                        f"max by (target_group, flow) (sgchurn_rule_gap_last_duration_seconds{{{sel}}})",
                        legend="{{target_group}} {{flow}}",
                    )
                ],
            )
        )
        .with_panel(
            tbl(
                "Last gap",
                "Cause and actor (role or principal) of the last closed gap per flow.",
                "s",
                LAST_GAP.format(sel=sel),
            )
        )
        .with_panel(
            ts(
                "Last gap duration",
                "Duration of the last closed rule gap per flow (a distribution across target groups is "
                "on the overview).",
                "s",
                [
                    q(
                        f"max by (flow) (sgchurn_rule_gap_last_duration_seconds{{{sel}}})",
                        legend="{{flow}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Impact of closed gaps"))
        .with_panel(
            tbl(
                "Harm confirmed",
                "Flows with a closed gap confirmed to have hurt traffic (impact.enabled: the NLB's unhealthy "
                "hosts rose, or VPC Flow Logs show REJECTs to a target): seconds since the last "
                "confirmation (SGChurnRuleGapImpactConfirmed pages for an hour after it).",
                "s",
                IMPACT_CONFIRMED.format(sel=sel),
            )
        )
        .with_panel(
            ts(
                "Rejected flows in the last gap",
                "VPC Flow Log REJECTs to the targets on their port during the last closed gap per flow "
                "(with impact.flow_logs.log_group or s3_uri).",
                "none",
                [
                    q(
                        f"max by (target_group, flow) (sgchurn_rule_gap_last_rejected_flows{{{sel}}})",
                        legend="{{target_group}} {{flow}}",
                    )
                ],
            )
        )
        .with_row(db.Row("Changes"))
        .with_panel(
            ts(
                "Attribute changes",
                "ModifyTargetGroupAttributes seen in CloudTrail.",
                "none",
                [
                    q(
                        "sum by (target_group, attribute) (increase("
                        f"sgchurn_target_group_attribute_changes_total{{{sel}}}[$__rate_interval]))",
                        legend="{{target_group}} {{attribute}}",
                    )
                ],
                bars=True,
            )
        )
        .with_panel(
            ts(
                "preserve_client_ip",
                "Effective preserve_client_ip.enabled over time (inventory).",
                "bool_on_off",
                [
                    q(
                        f"max by (target_group) (sgchurn_target_group_preserve_client_ip{{{sel}}})",
                        legend="{{target_group}}",
                    )
                ],
                min_val=0,
                max_val=1,
            )
        )
    )
    return Spec("sgchurn-target-group.json", builder, change_annotations(sel))


def exporter_health() -> Spec:
    i = INSTANCE
    builder = (
        db.Dashboard("SG churn: exporter health")
        .uid(EXPORTER_UID)
        .link(nav_link("Overview", OVERVIEW_UID, include_vars=False))
        .description(
            "Is sg-churn-exporter itself healthy: scrapes, sources, CloudTrail lag, AWS API calls, jobs."
        )
        .tags(TAGS)
        .refresh("1m")
        .time("now-6h", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("SG churn dashboards")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["sg-churn-exporter"])
            .as_dropdown(True)
            .include_vars(False)
            .keep_time(True)
        )
        .with_variable(datasource_var())
        .with_variable(query_var("instance", "Instance", "label_values(sgchurn_build_info, instance)"))
        .with_row(db.Row("Exporter"))
        .with_panel(
            st(
                "Instances up",
                "Exporter instances Prometheus scrapes successfully.",
                "none",
                f"sum(up{{{JOB}, {i}}}) or vector(0)",
                steps=((None, RED), (1, GREEN)),
            )
        )
        .with_panel(
            st(
                "Ready",
                "1 once every instance has a complete first view of its sources.",
                "none",
                f"min(sgchurn_ready{{{i}}})",
                steps=((None, RED), (1, GREEN)),
                mappings=value_text({"0": ("not ready", RED), "1": ("ready", GREEN)}),
            )
        )
        .with_panel(
            st(
                "Snapshot age",
                "Age of the snapshot the exporter serves (it is rebuilt continuously).",
                "s",
                f"max(time() - sgchurn_snapshot_timestamp_seconds{{{i}}})",
                steps=((None, GREEN), (120, YELLOW), (600, RED)),
            )
        )
        .with_panel(
            st(
                "Sources down",
                "Sources whose last poll failed.",
                "none",
                f"count(sgchurn_up{{{i}}} == 0) or vector(0)",
                steps=((None, GREEN), (1, RED)),
            )
        )
        .with_panel(
            tbl(
                "Versions and shards",
                "Version and shard of each instance.",
                "none",
                f"max by (instance, version) (sgchurn_build_info{{{i}}})\n"
                "* on (instance) group_left (shard, total_shards)\n"
                f"max by (instance, shard, total_shards) (sgchurn_shard_info{{{i}}})",
                w=8,
                h=4,
                hide=("Value",),
            )
        )
        .with_row(db.Row("Sources"))
        .with_panel(
            timeline(
                "Sources up",
                "Each source per account and region: up (green) or down (red).",
                f"min by (source, aws_account_id, aws_region) (sgchurn_up{{{i}}})",
                "{{source}} {{aws_account_id}} {{aws_region}}",
                value_text({"0": ("down", RED), "1": ("up", GREEN)}),
            )
        )
        .with_panel(
            ts(
                "CloudTrail lag",
                "Age of the newest CloudTrail record read (normal: 5 to 15 minutes).",
                "s",
                [
                    q(
                        f"max by (aws_account_id, aws_region) (sgchurn_cloudtrail_lag_seconds{{{i}}})",
                        legend="{{aws_account_id}} {{aws_region}}",
                    )
                ],
            )
        )
        .with_panel(
            ts(
                "CloudTrail records accepted",
                "By event name.",
                "cps",
                [
                    q(
                        f"sum by (event_name) (rate(sgchurn_cloudtrail_events_total{{{i}}}[$__rate_interval]))",
                        legend="{{event_name}}",
                    )
                ],
                stack=True,
            )
        )
        .with_panel(
            ts(
                "CloudTrail records rejected",
                "By reason (malformed, duplicate, out of scope ...).",
                "cps",
                [
                    q(
                        "sum by (reason) "
                        f"(rate(sgchurn_cloudtrail_records_rejected_total{{{i}}}[$__rate_interval]))",
                        legend="{{reason}}",
                    )
                ],
                stack=True,
            )
        )
        .with_row(db.Row("AWS API"))
        .with_panel(
            ts(
                "AWS API requests",
                "By service and operation.",
                "reqps",
                [
                    q(
                        "sum by (service, operation) "
                        f"(rate(sgchurn_aws_api_requests_total{{{i}}}[$__rate_interval]))",
                        legend="{{service}} {{operation}}",
                    )
                ],
                w=8,
                stack=True,
            )
        )
        .with_panel(
            ts(
                "AWS API errors",
                "By service, operation and error code.",
                "reqps",
                [
                    q(
                        "sum by (service, operation, code) "
                        f"(rate(sgchurn_aws_api_errors_total{{{i}}}[$__rate_interval]))",
                        legend="{{service}} {{operation}} {{code}}",
                    )
                ],
                w=8,
                stack=True,
            )
        )
        .with_panel(
            ts(
                "AWS API error ratio",
                "Failed / all calls per operation (alert above 25 %).",
                "percentunit",
                [
                    q(
                        "sum by (service, operation) "
                        f"(rate(sgchurn_aws_api_errors_total{{{i}}}[$__rate_interval]))\n/\n"
                        "sum by (service, operation) "
                        f"(rate(sgchurn_aws_api_requests_total{{{i}}}[$__rate_interval]))",
                        legend="{{service}} {{operation}}",
                    )
                ],
                w=8,
                min_val=0,
                max_val=1,
            )
        )
        .with_row(db.Row("Jobs"))
        .with_panel(
            ts(
                "Job duration",
                "p50 and p95 of each background job's run time.",
                "s",
                [
                    q(
                        "histogram_quantile(0.95, sum by (task, le) "
                        f"(rate(sgchurn_job_duration_seconds_bucket{{{i}}}[$__rate_interval])))",
                        legend="{{task}} p95",
                        ref="A",
                    ),
                    q(
                        "histogram_quantile(0.5, sum by (task, le) "
                        f"(rate(sgchurn_job_duration_seconds_bucket{{{i}}}[$__rate_interval])))",
                        legend="{{task}} p50",
                        ref="B",
                    ),
                ],
                w=8,
            )
        )
        .with_panel(
            ts(
                "Time since last success",
                "Per job (alert above 10 minutes).",
                "s",
                [
                    q(
                        f"max by (task) (time() - sgchurn_job_last_success_timestamp_seconds{{{i}}})",
                        legend="{{task}}",
                    )
                ],
                w=8,
            )
        )
        .with_panel(
            ts(
                "Job runs and skips",
                "Runs per second, and runs skipped because the previous one was still going.",
                "ops",
                [
                    q(
                        f"sum by (task) (rate(sgchurn_job_duration_seconds_count{{{i}}}[$__rate_interval]))",
                        legend="{{task}} runs",
                        ref="A",
                    ),
                    q(
                        f"sum by (task) (rate(sgchurn_job_runs_skipped_total{{{i}}}[$__rate_interval]))",
                        legend="{{task}} skipped",
                        ref="B",
                    ),
                ],
                w=8,
            )
        )
    )
    return Spec("sgchurn-exporter.json", builder)


SPECS = (overview, target_group, exporter_health)


# -- rendering --------------------------------------------------------------------------------------


def render(spec: Spec) -> str:
    """The dashboard JSON text: SDK output, panel ids numbered, Prometheus annotation fields added."""
    for a in spec.annotations:
        spec.builder = spec.builder.annotation(_annotation(a))
    model: dict[str, Any] = json.loads(json.dumps(spec.builder.build(), cls=JSONEncoder))
    next_id = 1
    for panel in model.get("panels", []):
        panel["id"] = next_id
        next_id += 1
        for nested in panel.get("panels", []):
            nested["id"] = next_id
            next_id += 1
    by_name = {a.name: a for a in spec.annotations}
    for entry in model.get("annotations", {}).get("list", []):
        extra = by_name.get(entry.get("name", ""))
        if extra is not None:
            entry.update(
                {
                    "titleFormat": extra.title,
                    "textFormat": extra.text,
                    "tagKeys": extra.tags,
                    "step": "1m",
                    "useValueForTime": False,
                }
            )
    model["id"] = None  # provisioned: Grafana assigns the database id
    return json.dumps(model, indent=2, sort_keys=True) + "\n"


def outputs() -> dict[str, str]:
    """File name -> JSON text for every dashboard."""
    rendered: dict[str, str] = {}
    for make in SPECS:
        spec = make()
        rendered[spec.file] = render(spec)
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs; change nothing")
    parser.add_argument("--output-dir", type=Path, default=HERE, help="where to write (default: dashboards/)")
    args = parser.parse_args(argv)
    stale: list[str] = []
    for name, text in outputs().items():
        path = args.output_dir / name
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date (run dashboards/generate.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
