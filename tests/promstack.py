"""A real Prometheus + Alertmanager + webhook receiver on 127.0.0.1, for end-to-end tests.

    from tests.promstack import PromStack

    with PromStack.start(tmp_path, targets=[f"127.0.0.1:{port}"], for_override="2s") as stack:
        stack.wait_for(lambda: stack.query('up{job="sg-churn-exporter"} == 1'), timeout=20)
        stack.wait_for(lambda: stack.webhook.alerts(alertname="SGChurnTargetGroupUnreachable"), 30)

- Prometheus (/usr/bin/prometheus): its own temp TSDB, a free port, scraping `targets` every
  second as job `sg-churn-exporter` with honor_labels: true (as the Helm chart's ServiceMonitor
  does), evaluating `rule_files` (default: alerts/*.rules.yml) every second and sending alerts to
- Alertmanager (/usr/bin/prometheus-alertmanager): temp storage, free port, clustering off, one
  route (group_wait/group_interval 1 s, group_by all labels) to
- a webhook receiver: an HTTP server in a thread that keeps every notification posted to it.

`for_override` (TEST SPEED ONLY): rewrites the `for:` of every alert in a temp copy of the rule
files (e.g. "2s") so a test need not wait the real 1m-10m. Expressions, labels and annotations are
untouched; the rule files in alerts/ are never modified. Leave it None to run the rules as shipped.
The start-up alerts in `keep_for` (default `STARTUP_ALERTS`) keep their real `for`: they are true
for a moment whenever a stack starts (no scrape yet, no job run finished yet), so shortened they
would fire at every start.

Every process started here is stopped by its PID in `stop()` (also on `__exit__` and when start
fails). A missing binary raises FileNotFoundError: the tests that need it fail, they do not skip.

The module also turns Grafana dashboard expressions into plain PromQL (`grafana_to_promql`) and lists
them (`dashboard_expressions`), so a test can run every dashboard query against a live Prometheus.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import requests
import yaml

from tests.support import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RULE_FILES = tuple(sorted((ROOT / "alerts").glob("*.rules.yml")))
PROMETHEUS_BIN = "/usr/bin/prometheus"
ALERTMANAGER_BIN = "/usr/bin/prometheus-alertmanager"
JOB_NAME = "sg-churn-exporter"
#: Alerts that are briefly true at every start of an exporter or a Prometheus: `rewrite_for` leaves
#: their `for` alone.
STARTUP_ALERTS = frozenset({"SGChurnExporterAbsent", "SGChurnJobNeverSucceeded"})

T = TypeVar("T")


def rewrite_for(
    rule_files: Iterable[Path], out_dir: Path, duration: str, keep: Collection[str] = STARTUP_ALERTS
) -> list[Path]:
    """TEST SPEED ONLY: copies of `rule_files` in `out_dir` with every alert's `for:` set to `duration`,
    except the alerts named in `keep` (alerts without `for` keep none). Nothing else changes."""
    copies: list[Path] = []
    for path in rule_files:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in doc["groups"]:
            for rule in group["rules"]:
                if "alert" in rule and "for" in rule and rule["alert"] not in keep:
                    rule["for"] = duration
        copy = out_dir / path.name
        copy.write_text(yaml.safe_dump(doc, sort_keys=False, width=1000), encoding="utf-8")
        copies.append(copy)
    return copies


class WebhookReceiver:
    """An Alertmanager webhook receiver: keeps every JSON notification POSTed to it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notifications: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with receiver._lock:
                    receiver._notifications.append(payload)
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/alerts"
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook", daemon=True)
        self._thread.start()

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification received so far (Alertmanager webhook payloads, version 4)."""
        with self._lock:
            return list(self._notifications)

    def alerts(self, status: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """The alerts of every notification, in arrival order, filtered by status ("firing" /
        "resolved") and by exact label values."""
        found: list[dict[str, Any]] = []
        for notification in self.notifications():
            for alert in notification.get("alerts", []):
                if status is not None and alert.get("status") != status:
                    continue
                if all(alert.get("labels", {}).get(k) == v for k, v in labels.items()):
                    found.append(alert)
        return found

    def clear(self) -> None:
        with self._lock:
            self._notifications.clear()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@dataclass
class _Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()  # by PID, this process only
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)


def _start(name: str, argv: Sequence[str], log: Path) -> _Process:
    if not Path(argv[0]).exists() and shutil.which(argv[0]) is None:
        raise FileNotFoundError(f"{argv[0]} not found: run `make tools` (scripts/install-tools.sh)")
    handle = log.open("wb")
    try:
        popen = subprocess.Popen(
            list(argv), stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    finally:
        handle.close()  # the child keeps its own descriptor
    return _Process(name, popen, log)


def _ready(process: _Process, url: str, timeout: float) -> None:
    def ok() -> bool:
        if process.popen.poll() is not None:
            raise RuntimeError(f"{process.name} exited with {process.popen.returncode}:\n{process.tail()}")
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} not ready at {url} after {timeout:g}s:\n{process.tail()}")
        time.sleep(0.1)


def _start_listening(
    name: str, make_argv: Callable[[int], Sequence[str]], log: Path, ready_path: str, attempts: int = 3
) -> tuple[_Process, str]:
    """Start a server on a free port, retrying on another port if it lost the race for this one."""
    for attempt in range(attempts):
        port = free_port()
        process = _start(name, make_argv(port), log)
        url = f"http://127.0.0.1:{port}"
        try:
            _ready(process, url + ready_path, timeout=30)
            return process, url
        except RuntimeError:
            process.stop()
            if "address already in use" not in process.tail().lower() or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@dataclass
class PromStack:
    """A running Prometheus, Alertmanager and webhook receiver. Use `PromStack.start(...)`."""

    workdir: Path
    prometheus_url: str
    alertmanager_url: str
    webhook: WebhookReceiver
    rule_files: list[Path]
    _processes: list[_Process] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        workdir: Path,
        targets: Sequence[str] = (),
        rule_files: Sequence[Path] = DEFAULT_RULE_FILES,
        for_override: str | None = None,
        keep_for: Collection[str] = STARTUP_ALERTS,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        job_name: str = JOB_NAME,
        honor_labels: bool = True,
        extra_scrape_configs: Sequence[Mapping[str, Any]] = (),
    ) -> PromStack:
        """Start everything (each in `workdir`) and wait until Prometheus and Alertmanager are ready."""
        workdir.mkdir(parents=True, exist_ok=True)
        rules_dir = workdir / "rules"
        rules_dir.mkdir(exist_ok=True)
        if for_override is not None:
            rules = rewrite_for(rule_files, rules_dir, for_override, keep_for)
        else:
            rules = [Path(shutil.copyfile(path, rules_dir / path.name)) for path in rule_files]
        webhook = WebhookReceiver()
        processes: list[_Process] = []
        try:
            am_config = workdir / "alertmanager.yml"
            am_config.write_text(
                yaml.safe_dump(
                    {
                        "route": {
                            "receiver": "webhook",
                            "group_by": ["..."],
                            "group_wait": "1s",
                            "group_interval": "1s",
                            "repeat_interval": "1h",
                        },
                        "receivers": [
                            {
                                "name": "webhook",
                                "webhook_configs": [{"url": webhook.url, "send_resolved": True}],
                            }
                        ],
                    }
                ),
                encoding="utf-8",
            )
            am_data = workdir / "alertmanager-data"
            am_data.mkdir(exist_ok=True)

            def am_argv(port: int) -> list[str]:
                return [
                    ALERTMANAGER_BIN,
                    f"--config.file={am_config}",
                    f"--storage.path={am_data}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--cluster.listen-address=",
                    "--log.level=warn",
                ]

            am, am_url = _start_listening("alertmanager", am_argv, workdir / "alertmanager.log", "/-/ready")
            processes.append(am)

            scrape_configs: list[dict[str, Any]] = []
            if targets:
                scrape_configs.append(
                    {
                        "job_name": job_name,
                        "honor_labels": honor_labels,
                        "scrape_interval": scrape_interval,
                        "scrape_timeout": scrape_interval,
                        "static_configs": [{"targets": list(targets)}],
                    }
                )
            scrape_configs.extend(dict(c) for c in extra_scrape_configs)
            prom_config = workdir / "prometheus.yml"
            prom_config.write_text(
                yaml.safe_dump(
                    {
                        "global": {
                            "scrape_interval": scrape_interval,
                            "evaluation_interval": evaluation_interval,
                        },
                        "rule_files": [str(path) for path in rules],
                        "alerting": {
                            "alertmanagers": [
                                {
                                    "api_version": "v2",
                                    "static_configs": [{"targets": [am_url.split("//", 1)[1]]}],
                                }
                            ]
                        },
                        "scrape_configs": scrape_configs,
                    },
                    sort_keys=False,
                ),
                encoding="utf-8",
            )
            tsdb = workdir / "prometheus-data"
            tsdb.mkdir(exist_ok=True)

            def prom_argv(port: int) -> list[str]:
                return [
                    PROMETHEUS_BIN,
                    f"--config.file={prom_config}",
                    f"--storage.tsdb.path={tsdb}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--rules.alert.resend-delay=1s",
                    "--log.level=warn",
                ]

            prom, prom_url = _start_listening("prometheus", prom_argv, workdir / "prometheus.log", "/-/ready")
            processes.append(prom)
        except BaseException:
            for process in reversed(processes):
                process.stop()
            webhook.stop()
            raise
        return cls(workdir, prom_url, am_url, webhook, rules, processes)

    # -- Prometheus API ---------------------------------------------------------------------------

    def _api(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        response = requests.get(f"{self.prometheus_url}{path}", params=params, timeout=10)
        body = response.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Instant query: the result list of /api/v1/query (vector/matrix), or [scalar] / [string].
        Raises RuntimeError with Prometheus' error for a bad expression."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._api("/api/v1/query", params)
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            return [{"value": result}]
        assert isinstance(result, list)
        return result

    def value(self, expr: str) -> float | None:
        """The single value of an instant query (None when empty; error when several series)."""
        result = self.query(expr)
        if not result:
            return None
        if len(result) > 1:
            raise AssertionError(f"{expr}: {len(result)} series")
        return float(result[0]["value"][1])

    def prometheus_alerts(self, state: str | None = None, **labels: str) -> list[dict[str, Any]]:
        """Alerts as Prometheus sees them (/api/v1/alerts: pending and firing)."""
        alerts: list[dict[str, Any]] = self._api("/api/v1/alerts")["alerts"]
        return [
            a
            for a in alerts
            if (state is None or a["state"] == state)
            and all(a["labels"].get(k) == v for k, v in labels.items())
        ]

    def targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self._api("/api/v1/targets")["activeTargets"]
        return targets

    def rule_health(self) -> list[tuple[str, str, str]]:
        """(rule name, health, last error) of every loaded rule."""
        out: list[tuple[str, str, str]] = []
        for group in self._api("/api/v1/rules")["groups"]:
            for rule in group["rules"]:
                out.append((rule["name"], rule.get("health", ""), rule.get("lastError", "")))
        return out

    def wait_for(
        self,
        predicate: Callable[[], T],
        timeout: float,
        interval: float = 0.25,
        message: str | Callable[[], str] = "condition",
    ) -> T:
        """Module-level `wait_for`; on timeout the message includes the Prometheus/Alertmanager logs."""
        try:
            return wait_for(predicate, timeout, interval, what=message, tolerate=(Exception,))
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.logs()}") from exc.__cause__

    def wait_until_scraped(self, timeout: float = 30) -> None:
        """Until every scrape target is up."""

        def all_up() -> bool:
            targets = self.targets()
            return bool(targets) and all(t["health"] == "up" for t in targets)

        self.wait_for(all_up, timeout, message=lambda: f"targets up: {self.targets()}")

    def logs(self) -> str:
        return "\n".join(f"--- {p.name} log (tail) ---\n{p.tail()}" for p in self._processes)

    # -- lifecycle ---------------------------------------------------------------------------------

    def stop(self) -> None:
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        self.webhook.stop()

    def __enter__(self) -> PromStack:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- Grafana dashboards -> PromQL ------------------------------------------------------------------

#: Grafana's built-in interval variables and the value a test gives each.
GRAFANA_BUILTINS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1h",
}

_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)")


def grafana_to_promql(expr: str, builtins: Mapping[str, str] = GRAFANA_BUILTINS, regex: str = ".*") -> str:
    """A dashboard expression as plain PromQL: Grafana's interval variables get `builtins`' values,
    every other variable (`$var`, `${var}`, `${var:format}`) becomes `regex` (dashboards use
    variables only inside `=~"..."` matchers)."""

    def replace(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return builtins.get(name, regex)

    return _VARIABLE.sub(replace, expr)


@dataclass(frozen=True)
class DashboardQuery:
    dashboard: str  # file name
    where: str  # panel title, "annotation <name>" or "variable <name>"
    expr: str  # as written in the dashboard
    kind: str  # "panel", "annotation" or "variable"


def _label_values_query(query: str) -> str | None:
    """The PromQL behind a `label_values(expr, label)` / `query_result(expr)` variable query."""
    m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\s*\)\s*", query, flags=re.DOTALL)
    if m:
        return m.group(1)
    m = re.fullmatch(r"\s*query_result\((.*)\)\s*", query, flags=re.DOTALL)
    if m:
        return m.group(1)
    return None


def dashboard_expressions(paths: Iterable[Path]) -> Iterator[DashboardQuery]:
    """Every PromQL expression of the dashboards: panel targets (rows' nested panels included),
    Prometheus annotations and the series selectors of query variables."""
    for path in paths:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        panels: list[dict[str, Any]] = []
        for panel in dashboard.get("panels", []):
            panels.append(panel)
            panels.extend(panel.get("panels", []))
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield DashboardQuery(path.name, panel.get("title", ""), target["expr"], "panel")
        for annotation in dashboard.get("annotations", {}).get("list", []):
            if annotation.get("expr"):
                yield DashboardQuery(
                    path.name, f"annotation {annotation.get('name')}", annotation["expr"], "annotation"
                )
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") != "query":
                continue
            query = variable.get("query")
            text = query.get("query", "") if isinstance(query, dict) else str(query or "")
            selector = _label_values_query(text)
            if selector:
                yield DashboardQuery(path.name, f"variable {variable.get('name')}", selector, "variable")
