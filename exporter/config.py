"""Typed settings: a YAML file, then SGCHURN_* environment variables, then command-line flags.

Every error names the field (`intervals.inventory: must be a number >= 1`). The contract is
docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from exporter.engine.flowlogs import DEFAULT_FORMAT as FLOW_LOG_DEFAULT_FORMAT
from exporter.engine.flowlogs import LOG_GROUP_NAME, FlowLogFormat, FormatError
from exporter.textsafe import printable
from exporter.web_auth import is_password_hash

ENV_PREFIX = "SGCHURN_"
#: A configuration file larger than this is refused unread.
MAX_CONFIG_BYTES = 1024 * 1024


class ConfigError(ValueError):
    """A configuration problem; `field` is the dotted path of the bad field."""

    def __init__(self, field_path: str, message: str) -> None:
        # always one line: a key from the file (an unknown field) may carry a newline itself
        field_path = printable(field_path)
        super().__init__(f"{field_path}: {' '.join(message.split())}")
        self.field = field_path


DEFAULT_RUNBOOK_BASE_URL = "https://github.com/sg-churn-exporter/sg-churn-exporter/blob/main/docs/runbooks.md"
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s#]*$")


@dataclass(frozen=True)
class Target:
    region: str
    role_arn: str | None = None
    external_id: str | None = None
    account_id: str | None = None  # informative; the real id comes from STS


@dataclass(frozen=True)
class Intervals:
    inventory: float = 30.0
    rules: float = 5.0  # the targeted poll of the node groups' rules; 0 = off
    cloudtrail: float = 60.0
    kubernetes: float = 60.0
    evaluate: float = 15.0


@dataclass(frozen=True)
class CloudTrailSettings:
    lookup_events: bool = True
    overlap_seconds: float = 900.0
    sqs_queue_url: str | None = None
    settle_seconds: float = 900.0
    retention_seconds: float = 86400.0  # how much history the timeline keeps in memory
    start_lookback_seconds: float = 3600.0  # how far back the first poll reads


@dataclass(frozen=True)
class StateSettings:
    path: str = "/var/lib/sg-churn-exporter/state.sqlite3"
    seen_event_ttl_seconds: float = 604800.0


@dataclass(frozen=True)
class KubernetesSettings:
    enabled: str = "auto"  # auto | true | false
    kubeconfig: str | None = None


@dataclass(frozen=True)
class WebSettings:
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    basic_auth_users: dict[str, str] = field(default_factory=dict)
    # Where the landing page links: runbook sections (<base>#<alert in lower case>) and Grafana.
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_base_url: str | None = None  # e.g. https://grafana.example.com (no dashboard links when unset)


@dataclass(frozen=True)
class FlowLogSettings:
    """Where the VPC Flow Logs of the targets' VPC go (docs/configuration.md#impact)."""

    log_group: str | None = None  # a CloudWatch Logs group (FilterLogEvents)
    format: str = FLOW_LOG_DEFAULT_FORMAT  # the flow log's ${field} format (AWS default: version 2)


@dataclass(frozen=True)
class ImpactSettings:
    """The impact of each closed gap from NLB metrics and flow logs; off unless enabled."""

    enabled: bool = False
    interval_seconds: float = 60.0  # how often the impact job looks for gaps due a check
    max_gaps_per_run: int = 50  # gaps checked per target and run at most (the calls stay bounded)
    recheck_seconds: float = 300.0  # a gap whose evidence has not all arrived is asked again after this
    flow_logs: FlowLogSettings = field(default_factory=FlowLogSettings)


@dataclass(frozen=True)
class Sharding:
    shard: int = 0
    total_shards: int = 1
    shard_from_hostname: bool = False


@dataclass(frozen=True)
class Settings:
    listen_address: str = "0.0.0.0"
    listen_port: int = 9877
    cluster_name: str = ""
    log_format: str = "auto"  # auto | json | console
    log_level: str = "info"
    # Empty: one target in the region of the environment (AWS_REGION, else AWS_DEFAULT_REGION; the EKS
    # pod identity webhook sets both on IRSA pods: aws/amazon-eks-pod-identity-webhook,
    # pkg/handler/testdata/rawPodNeedsRegion.pod.yaml); neither set is an error naming `targets`.
    targets: tuple[Target, ...] = ()
    intervals: Intervals = field(default_factory=Intervals)
    cloudtrail: CloudTrailSettings = field(default_factory=CloudTrailSettings)
    state: StateSettings = field(default_factory=StateSettings)
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    web: WebSettings = field(default_factory=WebSettings)
    impact: ImpactSettings = field(default_factory=ImpactSettings)
    sharding: Sharding = field(default_factory=Sharding)


_CHOICES = {
    "log_format": ("auto", "json", "console"),
    "log_level": ("debug", "info", "warning", "error"),
    "kubernetes.enabled": ("auto", "true", "false"),
}
_MIN = {
    "listen_port": 0,
    "intervals.inventory": 1,
    "intervals.rules": 0,
    "intervals.cloudtrail": 1,
    "intervals.kubernetes": 1,
    "intervals.evaluate": 1,
    "cloudtrail.overlap_seconds": 0,
    "cloudtrail.settle_seconds": 0,
    "cloudtrail.retention_seconds": 60,
    "cloudtrail.start_lookback_seconds": 0,
    "state.seen_event_ttl_seconds": 60,
    "sharding.shard": 0,
    "sharding.total_shards": 1,
    "impact.interval_seconds": 10,
    "impact.max_gaps_per_run": 1,
    "impact.recheck_seconds": 10,
}
_DAY = 86400.0
#: Upper bounds: beyond them a value is a typo, and far beyond them `run` would crash (a date
#: out of range). CloudTrail's event history (LookupEvents) covers the last 90 days (AWS CloudTrail
#: User Guide, "Working with CloudTrail event history"): no look-back or overlap needs more.
_MAX = {
    "intervals.inventory": _DAY,
    "intervals.cloudtrail": _DAY,
    "intervals.kubernetes": _DAY,
    "intervals.evaluate": _DAY,
    "cloudtrail.overlap_seconds": 90 * _DAY,
    "cloudtrail.settle_seconds": 7 * _DAY,
    "cloudtrail.retention_seconds": 90 * _DAY,
    "cloudtrail.start_lookback_seconds": 90 * _DAY,
    "state.seen_event_ttl_seconds": 3650 * _DAY,
    "sharding.total_shards": 10_000,
    "impact.interval_seconds": _DAY,
    # 125 target groups fill one GetMetricData call (500 queries); each gap is also one
    # FilterLogEvents read: a run stays within a few hundred calls.
    "impact.max_gaps_per_run": 500,
    "impact.recheck_seconds": _DAY,
}
_HOST_NAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ROLE_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:iam::\d{12}:role/.+$")


def _show(value: Any) -> str:
    """A value for an error line: scalars as repr (cut to 80 characters), containers by type."""
    if isinstance(value, Mapping | list | tuple | set):
        return f"a {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _coerce(value: Any, kind: Any, path: str) -> Any:
    """Convert a YAML or environment value to the annotated type, or raise ConfigError."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(path, f"must be true or false, not {_show(value)}")
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(path, f"must be a whole number, not {_show(value)}")
        try:
            return int(str(value), 10)
        except ValueError:
            raise ConfigError(path, f"must be a whole number, not {_show(value)}") from None
    if kind is float:
        if isinstance(value, bool):
            raise ConfigError(path, f"must be a number, not {_show(value)}")
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(path, f"must be a number, not {_show(value)}") from None
        if not math.isfinite(number):
            raise ConfigError(path, f"must be a finite number, not {_show(value)}")
        return number
    if kind is str:
        if isinstance(value, bool):  # YAML `enabled: true` where the field takes auto|true|false
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise ConfigError(path, f"must be a string, not {type(value).__name__}")
    if kind == str | None:
        return None if value is None else _coerce(value, str, path)
    if kind == dict[str, str]:
        if not isinstance(value, Mapping):
            raise ConfigError(path, "must be a mapping")
        return {str(k): _coerce(v, str, f"{path}.{k}") for k, v in value.items()}
    if kind == tuple[Target, ...]:
        if not isinstance(value, list):  # empty: the environment's region (_default_target)
            raise ConfigError(path, "must be a list of {region, role_arn, external_id}")
        return tuple(_build(Target, item, f"{path}[{i}]") for i, item in enumerate(value))
    if is_dataclass(kind):
        return _build(kind, value, path)
    raise ConfigError(path, f"unsupported type {kind}")  # pragma: no cover - a programming error


def _build(cls: Any, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path or "config", "must be a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    for key in data:
        if key not in names:
            where = f"{path}.{key}" if path else str(key)
            raise ConfigError(where, f"unknown field (known: {', '.join(sorted(names))})")
    values = {}
    for f in fields(cls):
        if f.name in data:
            where = f"{path}.{f.name}" if path else f.name
            values[f.name] = _coerce(data[f.name], hints[f.name], where)
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(path or "config", str(exc)) from None


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """SGCHURN_LISTEN_PORT=9000 -> {"listen_port": "9000"}; SGCHURN_STATE__PATH -> {"state": {"path": ..}}."""
    tree: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "SGCHURN_SHARD_FROM_HOSTNAME":
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        node = tree
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    if environ.get("SGCHURN_SHARD_FROM_HOSTNAME"):
        tree.setdefault("sharding", {})["shard_from_hostname"] = environ["SGCHURN_SHARD_FROM_HOSTNAME"]
    return tree


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _default_target(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """No targets: the environment's region, or a ConfigError naming `targets` (no silent default)."""
    if settings.targets:
        return settings
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise ConfigError(
            "targets",
            "no target to watch: list them (targets: [{region: eu-west-1}]) or set AWS_REGION "
            "(or AWS_DEFAULT_REGION) in the environment",
        )
    if not _REGION.match(region):
        raise ConfigError(
            "targets", f"no targets, and the environment's region {region!r} is not an AWS region"
        )
    return replace(settings, targets=(Target(region=region),))


def _validate(settings: Settings, environ: Mapping[str, str]) -> Settings:
    flat = _flatten(settings)
    for path, allowed in _CHOICES.items():
        if flat[path] not in allowed:
            raise ConfigError(path, f"must be one of {', '.join(allowed)}, not {flat[path]!r}")
    for path, minimum in _MIN.items():
        if flat[path] < minimum:
            raise ConfigError(path, f"must be >= {minimum}, not {flat[path]}")
    for path, maximum in _MAX.items():
        if flat[path] > maximum:
            raise ConfigError(path, f"must be <= {maximum:g}, not {flat[path]:g}")
    if settings.listen_port > 65535:
        raise ConfigError("listen_port", f"must be <= 65535, not {settings.listen_port}")
    for i, target in enumerate(settings.targets):
        if not _REGION.match(target.region):
            raise ConfigError(f"targets[{i}].region", f"not an AWS region: {target.region!r}")
        if target.role_arn is not None and not _ROLE_ARN.match(target.role_arn):
            raise ConfigError(f"targets[{i}].role_arn", f"not an IAM role ARN: {target.role_arn!r}")
    if bool(settings.web.tls_cert_file) != bool(settings.web.tls_key_file):
        raise ConfigError("web.tls_key_file", "tls_cert_file and tls_key_file go together")
    _check_listen_address(settings.listen_address)
    _check_state_path(settings.state.path)
    _check_tls(settings.web)
    for name in ("runbook_base_url", "grafana_base_url"):
        url = getattr(settings.web, name)
        if url is not None and not _HTTP_URL.match(url):
            raise ConfigError(
                f"web.{name}", f"must be an http:// or https:// URL without a #fragment, not {url!r}"
            )
    for user, digest in settings.web.basic_auth_users.items():
        if not is_password_hash(digest):
            raise ConfigError(
                f"web.basic_auth_users.{user}",
                "must be a bcrypt hash ($2a$, $2b$, $2y$) or the sha256 hex digest of the password",
            )
    _check_impact(settings.impact)
    sharding = settings.sharding
    if sharding.shard_from_hostname:
        hostname = environ.get("HOSTNAME", "")
        match = re.search(r"-(\d+)$", hostname)
        if not match:
            raise ConfigError(
                "sharding.shard_from_hostname", f"HOSTNAME {hostname!r} has no trailing -<ordinal>"
            )
        sharding = replace(sharding, shard=int(match.group(1)))
        settings = replace(settings, sharding=sharding)
    if sharding.shard >= sharding.total_shards:
        raise ConfigError(
            "sharding.shard", f"must be < total_shards ({sharding.total_shards}), not {sharding.shard}"
        )
    return _default_target(settings, environ)


def _check_impact(impact: ImpactSettings) -> None:
    """Flow-log settings only with impact checks on; a group name CloudWatch Logs would refuse, or
    a format without the fields a REJECT is matched by, named here instead of failing each check."""
    flow_logs = impact.flow_logs
    if not impact.enabled and (
        flow_logs.log_group is not None or flow_logs.format != FLOW_LOG_DEFAULT_FORMAT
    ):
        raise ConfigError(
            "impact.enabled", "impact.flow_logs is set but impact checks are off (enabled: false)"
        )
    if flow_logs.log_group is not None and not LOG_GROUP_NAME.match(flow_logs.log_group):
        raise ConfigError(
            "impact.flow_logs.log_group", f"not a CloudWatch Logs group name: {_show(flow_logs.log_group)}"
        )
    try:
        FlowLogFormat.parse(flow_logs.format)
    except FormatError as exc:
        raise ConfigError("impact.flow_logs.format", str(exc)) from None


def _check_listen_address(address: str) -> None:
    """An IP literal, "" (every address) or a host name that resolves: what the server can bind."""
    if address == "":
        return
    try:
        ipaddress.ip_address(address)
        return
    except ValueError:
        pass
    if not _HOST_NAME.match(address):
        raise ConfigError("listen_address", f"not an IP address or a host name: {address!r}")
    try:
        socket.getaddrinfo(address, None, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, UnicodeError) as exc:
        raise ConfigError("listen_address", f"host name {address!r} does not resolve: {exc}") from None


def _check_state_path(path: str) -> None:
    """Not empty; a file, or a name under folders that exist or can be made (no file on the way)."""
    if not path.strip():
        raise ConfigError("state.path", 'must not be empty (":memory:" keeps state in memory)')
    if path == ":memory:":
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError("state.path", f"{path} is a folder; name a file in it")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError("state.path", f"{parent} is a file, not a folder")
            return


def _no_password() -> bytes:
    return b""  # an encrypted key fails to load instead of prompting on a terminal


def _check_tls(web: WebSettings) -> None:
    """Both files readable, and the key is the certificate's (what the server would load at start)."""
    if not web.tls_cert_file or not web.tls_key_file:
        return
    for name, file in (("web.tls_cert_file", web.tls_cert_file), ("web.tls_key_file", web.tls_key_file)):
        try:
            Path(file).read_bytes()
        except OSError as exc:
            raise ConfigError(name, f"cannot read {file}: {exc.strerror or exc}") from None
    try:
        ssl.create_default_context(cafile=web.tls_cert_file)
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            "web.tls_cert_file", f"{web.tls_cert_file} holds no PEM certificate: {exc}"
        ) from None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(web.tls_cert_file, web.tls_key_file, password=_no_password)
    except (ssl.SSLError, OSError, ValueError) as exc:
        text = str(exc)
        if "KEY_VALUES_MISMATCH" in text or "key values mismatch" in text:
            text = f"{web.tls_key_file} is not the key of {web.tls_cert_file}"
        raise ConfigError("web.tls_key_file", f"cannot load with {web.tls_cert_file}: {text}") from None


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(obj):
        value = getattr(obj, f.name)
        path = f"{prefix}{f.name}"
        if is_dataclass(value) and not isinstance(value, type):
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _yaml_where(exc: yaml.YAMLError) -> str:
    """':line:column' (1-based) of a YAML error, when the parser knows it."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    text = " ".join(str(p) for p in (context, problem) if p) or str(exc).splitlines()[0]
    return " ".join(text.split())


def load_settings(
    path: str | Path | None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build settings from a file (optional), the environment and flag overrides (a nested dict)."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            raw = Path(path).read_bytes() if Path(path).stat().st_size <= MAX_CONFIG_BYTES else None
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
        if raw is None:
            raise ConfigError("config", f"{path} is over {MAX_CONFIG_BYTES} bytes; not a configuration file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config", f"{path} is not UTF-8 text (byte {exc.start})") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(
                "config", f"{path}{_yaml_where(exc)} is not valid YAML: {_yaml_problem(exc)}"
            ) from None
        except RecursionError:
            raise ConfigError("config", f"{path} is nested too deeply to be a configuration") from None
        except (ArithmeticError, TypeError, ValueError) as exc:  # e.g. an integer of 10,000 digits
            raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
        if loaded is not None and not isinstance(loaded, Mapping):
            raise ConfigError("config", f"{path} must hold a mapping at the top level")
        data = dict(loaded or {})
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, overrides or {})
    try:
        settings = _build(Settings, data, "")
    except RecursionError:
        raise ConfigError("config", "nested too deeply to be a configuration") from None
    return _validate(settings, environ)


def explain(settings: Settings) -> str:
    """The effective settings, one `field = value` per line (passwords hidden)."""
    lines = []
    for path, value in _flatten(settings).items():
        if path == "web.basic_auth_users":
            value = {user: "<hash>" for user in value}
        if path == "targets":
            value = [{k: v for k, v in vars(t).items() if v is not None} for t in value]
        lines.append(f"{path} = {value}")
    return "\n".join(lines)
