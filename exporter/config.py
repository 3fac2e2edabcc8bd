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
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import msgspec
import yaml
from msgspec import Meta, Struct
from msgspec.structs import replace

from exporter.engine.flowlogs import DEFAULT_FORMAT as FLOW_LOG_DEFAULT_FORMAT
from exporter.engine.flowlogs import LOG_GROUP_NAME, FlowLogFormat, FormatError, S3Location, S3UriError
from exporter.textsafe import printable
from exporter.web_auth import is_password_hash

ENV_PREFIX = "SGCHURN_"
#: A configuration file larger than this is refused unread.
MAX_CONFIG_BYTES = 1024 * 1024
#: Values (mappings, lists, scalars) a configuration holds at most, each alias counted at every use:
#: a few lines of YAML aliases (a "billion laughs") expand to billions, which every walk of the
#: document would visit.
MAX_CONFIG_VALUES = 100_000


class ConfigError(ValueError):
    """A configuration problem; `field` is the dotted path of the bad field."""

    def __init__(self, field_path: str, message: str) -> None:
        # always one line: a key from the file (an unknown field) may carry a newline itself
        field_path = printable(field_path)
        super().__init__(f"{field_path}: {' '.join(message.split())}")
        self.field = field_path


DEFAULT_RUNBOOK_BASE_URL = "https://github.com/sg-churn-exporter/sg-churn-exporter/blob/main/docs/runbooks.md"
_HTTP_URL = re.compile(r"^https?://[^\s/?#]+[^\s#]*$")

_DAY = 86400.0
# Upper bounds: beyond them a value is a typo, and far beyond them `run` would crash (a date out
# of range). CloudTrail's event history (LookupEvents) covers the last 90 days (AWS CloudTrail
# User Guide, "Working with CloudTrail event history"): no look-back or overlap needs more.
Interval = Annotated[float, Meta(ge=1, le=_DAY)]
Seconds = Annotated[float, Meta(ge=0)]

LogFormat = Literal["auto", "json", "console"]
LogLevel = Literal["debug", "info", "warning", "error"]
KubernetesEnabled = Literal["auto", "true", "false"]


class _Schema(Struct, frozen=True, forbid_unknown_fields=True):
    """A settings section: unknown fields are refused by name."""


class AccountRegion(_Schema, frozen=True):
    """One `targets` entry: a region to watch, in this account or in the one `role_arn` leads to."""

    region: str
    role_arn: str | None = None
    external_id: str | None = None
    account_id: str | None = None  # informative; the real id comes from STS


class Intervals(_Schema, frozen=True):
    inventory: Interval = 30.0
    rules: Annotated[float, Meta(ge=0)] = 5.0  # the targeted poll of the node groups' rules; 0 = off
    cloudtrail: Interval = 60.0
    kubernetes: Interval = 60.0
    evaluate: Interval = 15.0


class CloudTrailSettings(_Schema, frozen=True):
    lookup_events: bool = True
    overlap_seconds: Annotated[float, Meta(ge=0, le=90 * _DAY)] = 900.0
    sqs_queue_url: str | None = None
    settle_seconds: Annotated[float, Meta(ge=0, le=7 * _DAY)] = 900.0
    # how much history the timeline keeps in memory
    retention_seconds: Annotated[float, Meta(ge=60, le=90 * _DAY)] = 86400.0
    # how far back the first poll reads
    start_lookback_seconds: Annotated[float, Meta(ge=0, le=90 * _DAY)] = 3600.0


class StateSettings(_Schema, frozen=True):
    path: str = "/var/lib/sg-churn-exporter/state.sqlite3"
    seen_event_ttl_seconds: Annotated[float, Meta(ge=60, le=3650 * _DAY)] = 604800.0


class KubernetesSettings(_Schema, frozen=True):
    enabled: KubernetesEnabled = "auto"
    kubeconfig: str | None = None


class WebSettings(_Schema, frozen=True):
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    basic_auth_users: dict[str, str] = msgspec.field(default_factory=dict)
    # Where the landing page links: runbook sections (<base>#<alert in lower case>) and Grafana.
    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    grafana_base_url: str | None = None  # e.g. https://grafana.example.com (no dashboard links when unset)


class FlowLogSettings(_Schema, frozen=True):
    """Where the VPC Flow Logs of the targets' VPC go (docs/configuration.md, `impact.flow_logs`)."""

    log_group: str | None = None  # a CloudWatch Logs group (FilterLogEvents)
    s3_uri: str | None = None  # or an S3 location: s3://bucket[/prefix] (ListObjectsV2, GetObject)
    format: str = FLOW_LOG_DEFAULT_FORMAT  # the flow log's ${field} format (AWS default: version 2)


class ImpactSettings(_Schema, frozen=True):
    """The impact of each closed gap from NLB metrics and flow logs; off unless enabled."""

    enabled: bool = False
    # how often the impact job looks for gaps due a check
    interval_seconds: Annotated[float, Meta(ge=10, le=_DAY)] = 60.0
    # gaps checked per target and run at most (the calls stay bounded): 125 target groups fill one
    # GetMetricData call (500 queries); each gap is also one FilterLogEvents read: a run stays
    # within a few hundred calls.
    max_gaps_per_run: Annotated[int, Meta(ge=1, le=500)] = 50
    # a gap whose evidence has not all arrived is asked again after this
    recheck_seconds: Annotated[float, Meta(ge=10, le=_DAY)] = 300.0
    flow_logs: FlowLogSettings = msgspec.field(default_factory=FlowLogSettings)


class Sharding(_Schema, frozen=True):
    shard: Annotated[int, Meta(ge=0)] = 0
    total_shards: Annotated[int, Meta(ge=1, le=10_000)] = 1
    shard_from_hostname: bool = False


class Settings(_Schema, frozen=True):
    listen_address: str = "0.0.0.0"
    listen_port: Annotated[int, Meta(ge=0, le=65535)] = 9877
    cluster_name: str = ""
    log_format: LogFormat = "auto"
    log_level: LogLevel = "info"
    # Empty: one target in the region of the environment (AWS_REGION, else AWS_DEFAULT_REGION; the EKS
    # pod identity webhook sets both on IRSA pods: aws/amazon-eks-pod-identity-webhook,
    # pkg/handler/testdata/rawPodNeedsRegion.pod.yaml); neither set is an error naming `targets`.
    targets: tuple[AccountRegion, ...] = ()
    intervals: Intervals = msgspec.field(default_factory=Intervals)
    cloudtrail: CloudTrailSettings = msgspec.field(default_factory=CloudTrailSettings)
    state: StateSettings = msgspec.field(default_factory=StateSettings)
    kubernetes: KubernetesSettings = msgspec.field(default_factory=KubernetesSettings)
    web: WebSettings = msgspec.field(default_factory=WebSettings)
    impact: ImpactSettings = msgspec.field(default_factory=ImpactSettings)
    sharding: Sharding = msgspec.field(default_factory=Sharding)


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


def _fields(kind: Any) -> dict[str, Any]:
    """A settings section's fields and their types ({} for any other type)."""
    if isinstance(kind, type) and issubclass(kind, Struct):
        return {f.name: f.type for f in msgspec.structs.fields(kind)}
    return {}


def _as_text(value: Any, kind: Any = None) -> Any:
    """Every scalar as the text msgspec's lax conversion (`strict=False`) reads, as it reads the
    environment's: YAML's `enabled: false` is the choice "false", `account_id: 123456789012` a
    string, `listen_port: "9000"` a number. A null field of a section means its default."""
    if isinstance(value, Mapping):
        fields = _fields(kind)
        return {
            str(k): _as_text(v, fields.get(str(k)))
            for k, v in value.items()
            if not (v is None and str(k) in fields)
        }
    if isinstance(value, list | tuple):
        items = get_args(kind)
        return [_as_text(v, items[0] if items else None) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if kind is bool and isinstance(value, str) and value.lower() in ("yes", "no"):
        return "true" if value.lower() == "yes" else "false"  # as YAML 1.1 reads them in the file
    return value


#: What a msgspec type name means in a config error.
_EXPECTED = {
    "int": "must be a whole number",
    "float": "must be a number",
    "bool": "must be true or false",
    "str": "must be a string",
    "object": "must be a mapping",
    "array": "must be a list",
}
_WRONG_TYPE = re.compile(r"^Expected `(\w+)`, got `(\w+)`")
_OUT_OF_RANGE = re.compile(r"^Expected `(?:int|float)` (>=|<=|>|<) (\S+)")
_AT = re.compile(r" - at `\$(.*)`$")
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+|\.\.\.)\]")


def _schema_error(exc: msgspec.ValidationError, data: Mapping[str, Any]) -> ConfigError:
    """msgspec's error (first problem, `- at $.path`) as a ConfigError naming the field."""
    text = str(exc)
    at = _AT.search(text)
    problem = text[: at.start()] if at else text
    kind: Any = Settings
    value: Any = data
    names: list[str] = []
    for name, index in _STEP.findall(at.group(1) if at else ""):
        if name:
            kind = _fields(kind)[name]
            value = value.get(name) if isinstance(value, Mapping) else None
            names.append(name)
        elif index == "...":  # a mapping's value: the first that is no scalar
            kind = str
            entries = value.items() if isinstance(value, Mapping) else ()
            key = next((k for k, v in entries if v is None or isinstance(v, Mapping | list)), "")
            value = value.get(key) if isinstance(value, Mapping) else None
            names.append(str(key))
        else:
            kind = get_args(kind)[0]
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
            names[-1] += f"[{index}]"
    path = ".".join(names) or "config"
    if problem.startswith("Object contains unknown field"):
        known = list(_fields(kind))
        unknown = next(str(k) for k in (value or {}) if str(k) not in known)
        return ConfigError(
            f"{path}.{unknown}" if names else unknown, f"unknown field (known: {', '.join(sorted(known))})"
        )
    if match := re.match(r"^Object missing required field `(\w+)`", problem):
        return ConfigError(f"{path}.{match.group(1)}", "is required")
    if problem.startswith("Invalid enum value"):
        return ConfigError(path, f"must be one of {', '.join(get_args(kind))}, not {_show(value)}")
    if (isinstance(value, float) and not math.isfinite(value)) or problem.startswith("Number out of range"):
        return ConfigError(path, f"must be a finite number, not {_show(value)}")
    if match := _OUT_OF_RANGE.match(problem):
        return ConfigError(path, f"must be {match.group(1)} {float(match.group(2)):g}, not {_show(value)}")
    if match := _WRONG_TYPE.match(problem):
        expected = _EXPECTED.get(match.group(1), f"must be {match.group(1)}")
        return ConfigError(path, f"{expected}, not {_show(value)}")
    return ConfigError(path, problem)


def _check_bounded(document: Mapping[Any, Any]) -> None:
    """A ConfigError naming the field (the mapping keys down to it; a list's items are its own) in
    which the document passes MAX_CONFIG_VALUES values."""
    count = 0
    pending: list[tuple[str, Any]] = [(str(key), value) for key, value in document.items()]
    while pending:
        path, node = pending.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise ConfigError(
                path,
                f"holds more than {MAX_CONFIG_VALUES} values (each use of a YAML alias counted); "
                "not a configuration",
            )
        if isinstance(node, Mapping):
            pending.extend((f"{path}.{key}", value) for key, value in node.items())
        elif isinstance(node, list | tuple | set):
            pending.extend((path, item) for item in node)


def _check_no_nul(value: Any, path: str) -> None:
    """No NUL character in any text: no file name, URL or ARN holds one, and the OS refuses a
    path with one (ValueError) where it is opened."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(path, "must not contain a NUL character")
    elif isinstance(value, Struct):
        for name in value.__struct_fields__:
            _check_no_nul(getattr(value, name), f"{path}.{name}" if path else name)
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            _check_no_nul(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_no_nul(key, path)
            _check_no_nul(item, f"{path}.{key}")


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """SGCHURN_LISTEN_PORT=9000 -> {"listen_port": "9000"}; SGCHURN_STATE__PATH -> {"state": {"path": ..}}.

    A ConfigError names a variable that names no setting (SGCHURN_, an empty part between the
    `__`) and a field set both as a value and as a section (SGCHURN_WEB and SGCHURN_WEB__...)."""
    tree: dict[str, Any] = {}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or name == "SGCHURN_SHARD_FROM_HOSTNAME":
            continue
        parts = name[len(ENV_PREFIX) :].lower().split("__")
        if not all(parts):
            raise ConfigError(name, "names no setting (a name before, between and after each __)")
        node = tree
        for depth, part in enumerate(parts):
            path = ".".join(parts[: depth + 1])
            last = depth == len(parts) - 1
            existing = node.get(part)
            if existing is not None and isinstance(existing, dict) == last:
                raise ConfigError(path, f"set both as a value and as a section in the environment ({name})")
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
    if environ.get("SGCHURN_SHARD_FROM_HOSTNAME"):
        sharding = tree.setdefault("sharding", {})
        if not isinstance(sharding, dict):
            raise ConfigError("sharding", "set both as a value and as a section in the environment")
        sharding["shard_from_hostname"] = environ["SGCHURN_SHARD_FROM_HOSTNAME"]
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
    return replace(settings, targets=(AccountRegion(region=region),))


def _validate(settings: Settings, environ: Mapping[str, str]) -> Settings:
    _check_no_nul(settings, "")
    _check_targets(settings.targets)
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
    _check_sqs_queue_url(settings.cloudtrail.sqs_queue_url)
    _check_kubeconfig(settings.kubernetes)
    sharding = settings.sharding
    if sharding.shard_from_hostname:
        hostname = environ.get("HOSTNAME", "")
        match = re.search(r"-([0-9]{1,9})$", hostname)  # ASCII digits; a StatefulSet's ordinal is small
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


def _check_targets(targets: tuple[AccountRegion, ...]) -> None:
    """Each entry a region and, when given, a role ARN; no (role, region) twice: two entries with
    the same credentials and region would watch one account-region twice, and the second's
    sources never report (sgchurn_up 0, SGChurnSourceDown) without saying why."""
    seen: dict[tuple[str | None, str], int] = {}
    for i, target in enumerate(targets):
        if not _REGION.match(target.region):
            raise ConfigError(f"targets[{i}].region", f"not an AWS region: {target.region!r}")
        if target.role_arn is not None and not _ROLE_ARN.match(target.role_arn):
            raise ConfigError(f"targets[{i}].role_arn", f"not an IAM role ARN: {target.role_arn!r}")
        first = seen.setdefault((target.role_arn, target.region), i)
        if first != i:
            who = f"role {target.role_arn}" if target.role_arn else "the ambient credentials"
            raise ConfigError(
                f"targets[{i}]",
                f"the same region ({target.region}) with the same credentials ({who}) as "
                f"targets[{first}]: list each once",
            )


def _check_sqs_queue_url(url: str | None) -> None:
    """The queue's URL, as SQS names it (https://sqs.<region>.amazonaws.com/<account>/<name>)."""
    if url is not None and not _HTTP_URL.match(url):
        raise ConfigError(
            "cloudtrail.sqs_queue_url",
            f"must be the queue's URL (https://sqs.<region>.amazonaws.com/<account>/<name>), not {_show(url)}",
        )


def _check_kubeconfig(kubernetes: KubernetesSettings) -> None:
    """An explicit kubeconfig is a file that can be read (else `run` turns correlation off with one
    warning line, and every target group is mapped by tags only)."""
    if kubernetes.kubeconfig is None or kubernetes.enabled == "false":
        return
    path = Path(kubernetes.kubeconfig).expanduser()
    if path.is_dir():
        raise ConfigError(
            "kubernetes.kubeconfig", f"{kubernetes.kubeconfig} is a folder, not a kubeconfig file"
        )
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise ConfigError(
            "kubernetes.kubeconfig", f"cannot read {kubernetes.kubeconfig}: {exc.strerror or exc}"
        ) from None


def _check_impact(impact: ImpactSettings) -> None:
    """Flow-log settings only with impact checks on; a group name CloudWatch Logs would refuse, or
    a format without the fields a REJECT is matched by, named here instead of failing each check."""
    flow_logs = impact.flow_logs
    if flow_logs.log_group is not None and flow_logs.s3_uri is not None:
        raise ConfigError("impact.flow_logs.s3_uri", "give log_group or s3_uri, not both")
    if flow_logs.s3_uri is not None:
        try:
            S3Location.parse(flow_logs.s3_uri)
        except S3UriError as exc:
            raise ConfigError("impact.flow_logs.s3_uri", f"{exc}: {_show(flow_logs.s3_uri)}") from None
    given = flow_logs.log_group is not None or flow_logs.s3_uri is not None
    if not impact.enabled and (given or flow_logs.format != FLOW_LOG_DEFAULT_FORMAT):
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


def _flatten(obj: Struct, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in obj.__struct_fields__:
        value = getattr(obj, name)
        path = f"{prefix}{name}"
        if isinstance(value, Struct):
            out.update(_flatten(value, f"{path}."))
        else:
            out[path] = value
    return out


def _load_yaml(text: str) -> Any:
    """yaml.safe_load, refusing a key given twice in one mapping (YAML 1.2 says keys are unique;
    PyYAML keeps the last silently, dropping the first value without a word)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_unique_keys(node, "", set())
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_unique_keys(node: yaml.Node, path: str, seen: set[int]) -> None:
    """A ConfigError naming the first key given twice; each node walked once (aliases share)."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        keys: set[tuple[str, str]] = set()
        for key, value in node.value:
            name = str(key.value) if isinstance(key, yaml.ScalarNode) else ""
            where = f"{path}.{name}" if path else name
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if (key.tag, name) in keys:
                    raise ConfigError(
                        where, f"given twice (line {key.start_mark.line + 1}); give each key once"
                    )
                keys.add((key.tag, name))
            _check_unique_keys(value, where, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _check_unique_keys(item, f"{path}[{i}]", seen)


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
            with Path(path).open("rb") as handle:  # read at most one byte over: /dev/zero has size 0
                raw = handle.read(MAX_CONFIG_BYTES + 1)
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror or exc}") from None
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError("config", f"{path} is over {MAX_CONFIG_BYTES} bytes; not a configuration file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError("config", f"{path} is not UTF-8 text (byte {exc.start})") from None
        try:
            loaded = _load_yaml(text)
        except ConfigError:  # a key given twice: named already
            raise
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
        _check_bounded(loaded or {})
        data = dict(loaded or {})
    data = _merge(data, _env_overrides(environ))
    data = _merge(data, overrides or {})
    try:
        settings = msgspec.convert(_as_text(data, Settings), Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise _schema_error(exc, data) from None
    except RecursionError:
        raise ConfigError("config", "nested too deeply to be a configuration") from None
    return _validate(settings, environ)


def explain(settings: Settings) -> str:
    """The effective settings, one `field = value` per line (passwords hidden), each value in
    JSON, which YAML reads too: written as the configuration file would spell it (null, true,
    "text"), not as Python (None, True, 'text')."""
    lines = []
    for path, value in _flatten(settings).items():
        if path == "web.basic_auth_users":
            value = {user: "<hash>" for user in value}
        if path == "targets":
            value = [{k: v for k, v in msgspec.structs.asdict(t).items() if v is not None} for t in value]
        lines.append(f"{path} = {msgspec.json.encode(value).decode()}")
    return "\n".join(lines)
