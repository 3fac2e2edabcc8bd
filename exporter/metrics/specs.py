"""Every metric family, declared once as data: the contract of /metrics.

kube-state-metrics style: `SPECS` is the contract (name, type, help, labels, stability), in the
order families are exposed. Conventions: one prefix `sgchurn_`, base units (seconds, ratios),
counters end in `_total`, properties are `_info` families with value 1, label values are bounded
(names, never ARNs, timestamps or gap keys). What each family's series are for a snapshot:
samples.py, one generator per family group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from exporter.daemon.snapshot import BREAK_BEFORE_MAKE_LAST, IDENTITY_LABELS, IMPACT_CONFIRMED_LAST

MetricType = Literal["gauge", "counter", "histogram", "info"]
Stability = Literal["stable", "experimental"]

#: The labels every per-target-group series carries (daemon/snapshot.py TargetGroupIdentity).
IDENTITY: tuple[str, ...] = IDENTITY_LABELS
ACCOUNT_REGION: tuple[str, ...] = ("aws_account_id", "aws_region")

#: The base units a family's name can end in (Prometheus' naming practice: seconds, bytes, ratio
#: for a fraction); OpenMetrics 1.0 declares such a family's unit in a `# UNIT` line, and the unit
#: must be the suffix of the family's name.
BASE_UNITS: tuple[str, ...] = ("seconds", "bytes", "ratio")

#: The actor label value when CloudTrail did not name one.
UNKNOWN_ACTOR = "unknown"


@dataclass(frozen=True)
class MetricSpec:
    """One metric family as exposed: `name` is the exposition name (with `_total` / `_info`)."""

    name: str
    type: MetricType
    help: str
    labels: tuple[str, ...] = ()
    stability: Stability = "stable"

    @property
    def base_name(self) -> str:
        """The name prometheus_client families take: without the `_total` / `_info` suffix."""
        if self.type == "counter":
            return self.name.removesuffix("_total")
        if self.type == "info":
            return self.name.removesuffix("_info")
        return self.name

    @property
    def unit(self) -> str:
        """The base unit the family's name ends in ("" for none): OpenMetrics' UNIT."""
        unit = self.base_name.rsplit("_", 1)[-1]
        return unit if unit in BASE_UNITS else ""


def _s(
    name: str,
    type_: MetricType,
    help_: str,
    labels: Sequence[str] = (),
    stability: Stability = "stable",
) -> MetricSpec:
    return MetricSpec(name, type_, help_, tuple(labels), stability)


SPECS: tuple[MetricSpec, ...] = (
    # Target groups as they are now.
    _s(
        "sgchurn_target_group_info",
        "info",
        "A watched NLB target group and how it is set up: load balancer, scheme, mode (sg: the NLB has "
        "security groups; legacy: it has none), target type, protocol, cluster and how it was mapped to a "
        "Service, and what its client sources are judged by (intent: binding, the TargetGroupBinding's "
        "networking; managed_rules, the rules the controller manages on the port; default, the "
        "controller's default for the scheme).",
        (
            *IDENTITY,
            "load_balancer",
            "scheme",
            "mode",
            "target_type",
            "protocol",
            "cluster",
            "mapped_by",
            "intent",
        ),
    ),
    _s(
        "sgchurn_target_group_preserve_client_ip",
        "gauge",
        "Effective preserve_client_ip.enabled of the target group (1 on, 0 off; the AWS default when the "
        "attribute is absent).",
        IDENTITY,
    ),
    _s("sgchurn_target_group_targets", "gauge", "Registered targets of the target group.", IDENTITY),
    _s(
        "sgchurn_target_group_reachability_ratio",
        "gauge",
        "Fraction of the target group's evaluable targets whose security groups admit the flow (1 when "
        "it has none; targets that cannot be evaluated are counted by "
        "sgchurn_target_group_not_evaluable_targets).",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_target_group_not_evaluable_targets",
        "gauge",
        "Targets whose reachability cannot be evaluated, by reason (target_outside_vpc: an ip target "
        "outside the VPC, registered with AvailabilityZone all or with an address in none of the "
        "VPC's CIDRs, with no ENI and no security group; target_is_alb: an Application Load Balancer "
        "registered as the target, admitted by its own security groups, which are not read); "
        "never a gap; only reasons with at least one target are exported.",
        (*IDENTITY, "reason"),
    ),
    _s(
        "sgchurn_target_group_unadmitted_targets",
        "gauge",
        "Targets whose security groups do not admit the flow, by reason; only reasons with at least one "
        "target are exported (no series while every target is admitted).",
        (*IDENTITY, "flow", "reason"),
    ),
    # Gaps.
    _s(
        "sgchurn_rule_gap_open",
        "gauge",
        "1 while a rule gap is open for the target group and flow (some target does not admit it, seen by "
        "two consecutive polls or shown by CloudTrail), else 0.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_open_since_timestamp_seconds",
        "gauge",
        "Unix time the currently open rule gap started; present only while a gap is open and its start "
        "is known (absent for a gap already open when the exporter first looked, at start-up or before "
        "the first CloudTrail record: its start is unknown, and the first moment seen is not exported "
        "as if it were the start).",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gaps_total",
        "counter",
        "Closed rule gaps, by flow and cause. A series appears with the first gap of its target group, "
        "flow and cause (no zero series: alert on sgchurn_rule_gap_last_end_timestamp_seconds, which "
        "shows the first gap too).",
        (*IDENTITY, "flow", "cause"),
    ),
    _s(
        "sgchurn_rule_gap_duration_seconds",
        "histogram",
        "Durations of closed rule gaps, across the target groups of an account and region (per target "
        "group: sgchurn_rule_gap_last_duration_seconds).",
        (*ACCOUNT_REGION, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_duration_seconds",
        "gauge",
        "Duration of the last closed rule gap of the target group and flow.",
        (*IDENTITY, "flow"),
        "experimental",
    ),
    _s(
        "sgchurn_rule_gap_last_end_timestamp_seconds",
        "gauge",
        "Unix time the last closed rule gap of the target group and flow ended; absent until its first "
        "gap closed. `time() - x < 900`: a gap closed in the last 15 minutes, including the first one "
        "of a target group, and after a restart no sooner than it really did.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_info",
        "info",
        "Cause and actor (role or principal name, 'unknown' when CloudTrail did not say) of the last "
        "closed rule gap of the target group and flow, and trigger_actor: who made the attribute change "
        "that preceded it on the target group (role/session), 'none' when no change preceded it, "
        "'unknown' when CloudTrail did not explain the gap.",
        (*IDENTITY, "flow", "cause", "actor", "trigger_actor"),
        "experimental",
    ),
    # The impact of closed gaps (impact.enabled: NLB metrics and VPC Flow Logs).
    _s(
        "sgchurn_rule_gap_impact_total",
        "counter",
        "Closed rule gaps whose impact was checked, by flow and impact: confirmed (the NLB's unhealthy "
        "hosts rose above the level before, or VPC Flow Logs show REJECTs to a target on its port), "
        "none_seen (every source read, nothing) or unknown (a source not configured, or its data did "
        "not arrive within two hours). Only with impact.enabled; a series appears with its first gap "
        "checked (no zero series: alert on sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds).",
        (*IDENTITY, "flow", "impact"),
    ),
    _s(
        "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
        "gauge",
        "Unix time a closed rule gap of the target group and flow was last confirmed to have hurt "
        "traffic; absent until the first. `time() - x < 3600`: harm confirmed in the last hour, "
        "however long ago the gap closed.",
        (*IDENTITY, "flow"),
    ),
    _s(
        "sgchurn_rule_gap_last_rejected_flows",
        "gauge",
        "VPC Flow Log REJECTs to the targets on their port during the last closed rule gap of the target "
        "group and flow (and its health-check settle time); absent until that gap's flow logs are read.",
        (*IDENTITY, "flow"),
        "experimental",
    ),
    # Changes seen in CloudTrail.
    _s(
        "sgchurn_rule_replacements_total",
        "counter",
        "Security-group rule replacements (a revoke and an authorize close together), by order: "
        "make_before_break, break_before_make, or unknown (the same CloudTrail second, and nothing "
        "known about the caller says which came first). A series appears with its first replacement.",
        (*ACCOUNT_REGION, "security_group", "order"),
    ),
    _s(
        "sgchurn_rule_replacement_last_break_before_make_timestamp_seconds",
        "gauge",
        "Unix time (CloudTrail's eventTime of the authorize) the last break-before-make replacement of "
        "the security group's rules ended; absent until its first. `time() - x < 1800`: one in the last "
        "30 minutes, including the first of a group, whenever CloudTrail delivered it.",
        (*ACCOUNT_REGION, "security_group"),
    ),
    _s(
        "sgchurn_target_group_attribute_changes_total",
        "counter",
        "Changes of watched target-group attributes (such as preserve_client_ip.enabled) seen in "
        "CloudTrail. A series appears with its first change (see also "
        "sgchurn_target_group_attribute_last_change_timestamp_seconds).",
        (*IDENTITY, "attribute"),
    ),
    _s(
        "sgchurn_target_group_attribute_last_change_info",
        "info",
        "The last change of a watched target-group attribute seen in CloudTrail (within the retention "
        "window): its new value and who made it (role/session for an assumed role).",
        (*IDENTITY, "attribute", "value", "actor"),
        "experimental",
    ),
    _s(
        "sgchurn_target_group_attribute_last_change_timestamp_seconds",
        "gauge",
        "Unix time of the last change of a watched target-group attribute seen in CloudTrail.",
        (*IDENTITY, "attribute"),
        "experimental",
    ),
    _s(
        "sgchurn_security_group_rule_changes_total",
        "counter",
        "Security-group rule API calls seen in CloudTrail on watched groups, by event name and result "
        "(success or failed).",
        (*ACCOUNT_REGION, "security_group", "event_name", "result"),
    ),
    _s(
        "sgchurn_cloudtrail_events_total",
        "counter",
        "CloudTrail records accepted, by event name.",
        ("event_name",),
    ),
    _s(
        "sgchurn_cloudtrail_records_rejected_total",
        "counter",
        "CloudTrail records rejected, by reason (docs/metrics.md lists them); a duplicate or an unwatched "
        "event name is not a rejection.",
        ("reason",),
    ),
    _s(
        "sgchurn_state_rows_rejected_total",
        "counter",
        "Rows of the state file that could not be read (a corrupt or hand-edited file), by table; each "
        "row counted once per process, skipped and left in place.",
        ("table",),
        "experimental",
    ),
    _s(
        "sgchurn_cloudtrail_lag_seconds",
        "gauge",
        "Age of the newest CloudTrail record read, per account and region.",
        ACCOUNT_REGION,
        "experimental",
    ),
    # The exporter itself.
    _s(
        "sgchurn_up",
        "gauge",
        "1 when the source's last poll succeeded, else 0.",
        ("source", *ACCOUNT_REGION),
    ),
    _s(
        "sgchurn_job_duration_seconds",
        "histogram",
        "Durations of the exporter's background job runs, by task (the job's name: `task`, never `job`, which "
        "is Prometheus' scrape job label).",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_job_last_success_timestamp_seconds",
        "gauge",
        "Unix time the job last finished successfully; absent before its first success.",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_job_runs_skipped_total",
        "counter",
        "Job runs skipped because the previous run was still going.",
        ("task",),
        "experimental",
    ),
    _s(
        "sgchurn_aws_api_requests_total",
        "counter",
        "AWS API requests made, by service and operation.",
        ("service", "operation"),
        "experimental",
    ),
    _s(
        "sgchurn_aws_api_errors_total",
        "counter",
        "AWS API requests that failed, by service, operation and error code.",
        ("service", "operation", "code"),
        "experimental",
    ),
    _s("sgchurn_build_info", "info", "The exporter's version.", ("version",)),
    _s(
        "sgchurn_shard_info",
        "info",
        "This instance's shard number and the total number of shards.",
        ("shard", "total_shards"),
        "experimental",
    ),
    _s(
        "sgchurn_shard_owned_targets",
        "gauge",
        "1 for every (account, region) this shard watches ('default' account: the ambient credentials).",
        ACCOUNT_REGION,
        "experimental",
    ),
    _s(
        "sgchurn_snapshot_timestamp_seconds",
        "gauge",
        "Unix time the snapshot served now was generated.",
        (),
    ),
    _s(
        "sgchurn_ready",
        "gauge",
        "1 once the exporter has a complete first view of its sources, else 0.",
        (),
    ),
)

SPECS_BY_NAME: Mapping[str, MetricSpec] = {spec.name: spec for spec in SPECS}

#: Snapshot.counters keys (family name without `_total`) -> the spec they feed.
COUNTER_SOURCES: Mapping[str, str] = {
    "rule_gaps": "sgchurn_rule_gaps_total",
    "rule_replacements": "sgchurn_rule_replacements_total",
    "target_group_attribute_changes": "sgchurn_target_group_attribute_changes_total",
    "security_group_rule_changes": "sgchurn_security_group_rule_changes_total",
    "cloudtrail_events": "sgchurn_cloudtrail_events_total",
    "cloudtrail_records_rejected": "sgchurn_cloudtrail_records_rejected_total",
    "rule_gap_impact": "sgchurn_rule_gap_impact_total",
    "state_rows_rejected": "sgchurn_state_rows_rejected_total",
}
#: Snapshot.counters keys of the persisted "last time" gauges -> the spec they feed.
LAST_TIME_SOURCES: Mapping[str, str] = {
    IMPACT_CONFIRMED_LAST: "sgchurn_rule_gap_last_impact_confirmed_timestamp_seconds",
    BREAK_BEFORE_MAKE_LAST: "sgchurn_rule_replacement_last_break_before_make_timestamp_seconds",
}
#: Everything read from Snapshot.counters, each family written from its mapping alone.
STORED_SOURCES: Mapping[str, str] = {**COUNTER_SOURCES, **LAST_TIME_SOURCES}
