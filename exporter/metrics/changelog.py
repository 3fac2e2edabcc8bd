"""The changelog of the metric contract: the "Changelog" section of docs/metrics.md.

Every change to a family's name, type, labels or presence, newest first, with what users must
change in their queries. `exporter.metrics.render_markdown` appends it to the reference table.
"""

from __future__ import annotations

CHANGELOG = """\
## Changelog

### Unreleased: hostile state files

- New: `sgchurn_state_rows_rejected_total` (experimental counter, label `table`: `gaps`,
  `counters`, `histograms`, `gap_impacts`, `poll_gaps`, `polled`, `records`): rows of the state file that
  could not be read (text where a time was, JSON that is not JSON), each counted once per process.
  Such a row is skipped and left in place; the rows beside it still read. Absent until one is seen.

### Unreleased: target groups of ALBs

- `sgchurn_target_group_not_evaluable_targets` has a new `reason` value, `target_is_alb`: an
  Application Load Balancer registered as an NLB's target (target type `alb`, e.g. the AWS Load
  Balancer Controller's frontend NLB of an Ingress). It was a gap that never closed
  (`sgchurn_target_group_unadmitted_targets{reason="target_eni_not_found"}`); it is now counted
  here and left out of the reachability ratio, like a target outside the VPC.

### Unreleased: OpenMetrics units

- The OpenMetrics exposition declares the unit of every family whose name ends in a base unit
  (`# UNIT <family> seconds`, and `ratio` for `sgchurn_target_group_reachability_ratio`), as
  OpenMetrics 1.0 asks of a family with a unit. Names, types, labels and values are unchanged,
  and so is the text format 0.0.4 (it has no UNIT lines). Prometheus keeps the unit as metadata.

### Unreleased: a third of the series (issue 15)

Series per watched target group in steady state went from about 24 to under 8 (benchmark figure
"series per target group", docs/benchmarks.md): the zero-valued counter series are gone.

- `sgchurn_rule_gaps_total` (stable) is no longer zero-initialized for every target group, flow
  and cause (that was 12 series of every target group, nearly all zeros). A series appears with
  the first gap of its target group, flow and cause. Labels are unchanged. `increase()` does not
  see a series' first gap: to alert on a gap, use `time() -
  sgchurn_rule_gap_last_end_timestamp_seconds < 900` (as SGChurnRuleGapClosedRecently now does);
  to count gaps in a range, count the changes of that end time plus its series that appeared in
  the range (the dashboards' "Gaps in range" shows how).
- New: `sgchurn_rule_gap_last_end_timestamp_seconds` (stable gauge, per target group and flow):
  when the last closed gap ended. Present once a gap closed; read from the state file after a
  restart, so `time() - x` neither restarts nor jumps with the exporter.
- `sgchurn_rule_gap_duration_seconds` (stable histogram): labels are now `aws_account_id`,
  `aws_region`, `flow` (was the target-group identity and flow: 13 series for every target group
  that ever had a gap). Queries that filtered or grouped it by `target_group`, `namespace` or
  `service` must drop those labels; per target group use `sgchurn_rule_gap_last_duration_seconds`.
  `sum by (le) (...)` and `histogram_quantile` over it work as before.
- `sgchurn_target_group_attribute_changes_total` and `sgchurn_rule_replacements_total` (stable)
  are no longer zero-initialized per target group / security group and order: a series appears
  with its first change. The recording rules `*:increase15m` count a new series' first value (see
  alerts/README.md); SGChurnPreserveClientIPChanged also reads the inventory's
  `sgchurn_target_group_preserve_client_ip`.
- New: `sgchurn_rule_replacement_last_break_before_make_timestamp_seconds` (stable gauge, per
  account, region and security group): when the group's last break-before-make replacement ended
  (CloudTrail's eventTime of the authorize); present once one was seen, kept in the state file.
- Alerts: SGChurnBreakBeforeMakeReplacement reads that time (`< 1800`: the last 30 minutes, since
  CloudTrail delivers minutes late); its value is the seconds since the replacement ended (was the
  number in 15 minutes), and the recording rule
  `security_group_order:sgchurn_rule_replacements:increase15m` is removed.
- Alerts: the recording rule `target_group_flow_cause:sgchurn_rule_gaps:increase15m` is removed;
  SGChurnRuleGapClosedRecently reads the end time above and takes `cause`, `actor` and
  `trigger_actor` from `sgchurn_rule_gap_last_info` (the last gap's); its value is the seconds
  since the gap closed (was the number of gaps in 15 minutes). Copies of the rules must be
  updated together with the exporter.
"""
