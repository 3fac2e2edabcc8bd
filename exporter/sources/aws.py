"""boto3 clients per (account, region) target: assume-role, retries, API call counting, read-only guard.

Every client made here carries botocore event hooks that count each API call (and each HTTP attempt,
retries included) into an `ApiCallCounter`, and a `ReadOnlyGuard` that raises before any operation
outside the exporter's allow-list is sent. The endpoint comes from boto3 itself (AWS_ENDPOINT_URL and
AWS_ENDPOINT_URL_<SERVICE> are honoured natively) unless `endpoint_url` is given.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

from exporter import __version__

#: Every operation the exporter calls, per botocore service name: the guard allows these and no
#: other (a name prefix such as Get* would let sts:GetSessionToken or cognito-identity:GetId by).
#: docs/iam-policy.json grants exactly these; tests/test_faults_guard.py keeps the two and the
#: calls recorded on a moto server equal. sqs:DeleteMessage is allowed on the exporter's own queue only.
READ_OPERATIONS: dict[str, frozenset[str]] = {
    "ec2": frozenset(
        {
            "DescribeInstances",
            "DescribeManagedPrefixLists",
            "DescribeNetworkInterfaces",
            "DescribeSecurityGroupRules",
            "DescribeSecurityGroups",
            "DescribeSubnets",
            "DescribeVpcs",
            "GetManagedPrefixListEntries",
        }
    ),
    "elbv2": frozenset(
        {
            "DescribeLoadBalancers",
            "DescribeTags",
            "DescribeTargetGroupAttributes",
            "DescribeTargetGroups",
            "DescribeTargetHealth",
        }
    ),
    "cloudtrail": frozenset({"LookupEvents"}),
    "cloudwatch": frozenset({"GetMetricData"}),  # NLB metrics for a closed gap's impact
    "logs": frozenset({"FilterLogEvents"}),  # VPC Flow Logs REJECTs, when a log group is configured
    "sqs": frozenset({"ReceiveMessage"}),
    "s3": frozenset({"ListObjectsV2", "GetObject"}),
    "sts": frozenset({"AssumeRole", "GetCallerIdentity"}),
}
#: Seconds to connect, and to wait for each read of an answer (every attempt; SQS long polls
#: in the daemon wait 1 s, LookupEvents and the describes answer in a few).
CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 10.0
#: Services whose throttling the caller handles itself: botocore must not retry behind its rate limiter.
SELF_RETRIED_SERVICES = frozenset({"cloudtrail"})


class ReadOnlyViolation(RuntimeError):
    """An operation outside the read-only allow-list was about to be sent."""


def is_read_only(service: str, operation: str) -> bool:
    """True for the read operations the exporter calls (READ_OPERATIONS), and nothing else.

    DeleteMessage is not read-only; `ReadOnlyGuard` allows it only on queues it was told about.
    """
    return operation in READ_OPERATIONS.get(service, frozenset())


class ReadOnlyGuard:
    """Defence in depth for the read-only promise: raises before a non-read operation is sent."""

    def __init__(self, queue_urls: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._queue_urls = set(queue_urls)

    def allow_queue(self, queue_url: str) -> None:
        """Allow DeleteMessage on this queue (the exporter's own EventBridge queue)."""
        with self._lock:
            self._queue_urls.add(queue_url)

    def check(self, service: str, operation: str, params: Mapping[str, Any]) -> None:
        if is_read_only(service, operation):
            return
        if service == "sqs" and operation == "DeleteMessage":
            with self._lock:
                if params.get("QueueUrl") in self._queue_urls:
                    return
            raise ReadOnlyViolation(
                f"sqs.DeleteMessage on a queue that is not the exporter's: {params.get('QueueUrl')}"
            )
        raise ReadOnlyViolation(
            f"{service}.{operation} is not an operation the exporter calls (read-only allow-list)"
        )


@dataclass(frozen=True)
class ApiCallSnapshot:
    """Counts at one moment: API calls and HTTP attempts by (service, operation), errors by code."""

    calls: dict[tuple[str, str], int] = field(default_factory=dict)
    attempts: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def total_attempts(self) -> int:
        return sum(self.attempts.values())

    def minus(self, earlier: ApiCallSnapshot) -> ApiCallSnapshot:
        """The counts added since `earlier` (zero entries dropped)."""

        def diff(now: Mapping[Any, int], before: Mapping[Any, int]) -> dict[Any, int]:
            return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}

        return ApiCallSnapshot(
            diff(self.calls, earlier.calls),
            diff(self.attempts, earlier.attempts),
            diff(self.errors, earlier.errors),
        )


class ApiCallCounter:
    """Thread-safe counts of AWS API calls, HTTP attempts and errors, for the metrics module."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[tuple[str, str]] = Counter()
        self._attempts: Counter[tuple[str, str]] = Counter()
        self._errors: Counter[tuple[str, str, str]] = Counter()

    def count_call(self, service: str, operation: str) -> None:
        with self._lock:
            self._calls[(service, operation)] += 1

    def count_attempt(self, service: str, operation: str) -> None:
        with self._lock:
            self._attempts[(service, operation)] += 1

    def count_error(self, service: str, operation: str, error_code: str) -> None:
        with self._lock:
            self._errors[(service, operation, error_code)] += 1

    def snapshot(self) -> ApiCallSnapshot:
        with self._lock:
            return ApiCallSnapshot(dict(self._calls), dict(self._attempts), dict(self._errors))


def _operation_from_event(event_name: str) -> str:
    return event_name.rsplit(".", 1)[-1]


def instrument(client: Any, counter: ApiCallCounter | None, guard: ReadOnlyGuard | None) -> Any:
    """Register counting and guard hooks on one boto3 client; returns the client."""
    service: str = client.meta.service_model.service_name
    events = client.meta.events

    def on_build(params: Mapping[str, Any], model: Any, **_: Any) -> None:
        if guard is not None:
            guard.check(service, model.name, params)

    def on_call(model: Any, **_: Any) -> None:
        if counter is not None:
            counter.count_call(service, model.name)

    def on_send(event_name: str, **_: Any) -> None:
        if counter is not None:
            counter.count_attempt(service, _operation_from_event(event_name))

    def on_after(http_response: Any, parsed: Mapping[str, Any], model: Any, **_: Any) -> None:
        if counter is not None and http_response is not None and http_response.status_code >= 300:
            code = str((parsed.get("Error") or {}).get("Code") or f"HTTP{http_response.status_code}")
            counter.count_error(service, model.name, code)

    def on_error(event_name: str, exception: BaseException, **_: Any) -> None:
        if counter is not None:
            counter.count_error(service, _operation_from_event(event_name), type(exception).__name__)

    events.register("before-parameter-build", on_build, unique_id="sgchurn-guard")
    events.register("before-call", on_call, unique_id="sgchurn-call")
    events.register("before-send", on_send, unique_id="sgchurn-send")
    events.register("after-call", on_after, unique_id="sgchurn-after")
    events.register("after-call-error", on_error, unique_id="sgchurn-error")
    return client


def client_config(
    *,
    retry_mode: Literal["standard", "adaptive"] = "standard",
    max_attempts: int = 5,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    read_timeout: float = READ_TIMEOUT_SECONDS,
) -> Config:
    """botocore Config: retry mode (standard | adaptive), total attempts, timeouts, our user agent.

    The timeouts bound each attempt; the daemon's per-job deadline (daemon/service.py) bounds
    how long a source that stopped answering still shows as up.

    AWS_RETRY_MODE and AWS_MAX_ATTEMPTS, when set, win over the mode and attempts given here.
    """
    retries: dict[str, Any] = {}
    if "AWS_RETRY_MODE" not in os.environ:
        retries["mode"] = retry_mode
    if "AWS_MAX_ATTEMPTS" not in os.environ:
        retries["total_max_attempts"] = max_attempts
    return Config(
        retries=retries,  # type: ignore[arg-type]
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra=f"sg-churn-exporter/{__version__}",
        max_pool_connections=10,
    )


@dataclass(frozen=True)
class AwsTarget:
    """One (account, region) to watch: the default credential chain, or a role to assume."""

    region: str
    role_arn: str | None = None
    external_id: str | None = None
    session_name: str = "sg-churn-exporter"
    duration_seconds: int = 3600

    @property
    def label(self) -> str:
        return f"{self.role_arn or 'default'}@{self.region}"


class _StaticProvider(CredentialProvider):
    METHOD = "sgchurn-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class AwsClients:
    """Counted, guarded boto3 clients for one target, sharing one session; GetCallerIdentity cached."""

    def __init__(
        self,
        target: AwsTarget,
        *,
        counter: ApiCallCounter | None = None,
        guard: ReadOnlyGuard | None = None,
        config: Config | None = None,
        endpoint_url: str | None = None,
        base_session: boto3.Session | None = None,
        time_fetcher: Callable[[], datetime] | None = None,
    ) -> None:
        self.target = target
        self.counter = counter if counter is not None else ApiCallCounter()
        self.guard = guard if guard is not None else ReadOnlyGuard()
        self.config = config if config is not None else client_config()
        self.endpoint_url = endpoint_url
        self._base = base_session if base_session is not None else boto3.Session(region_name=target.region)
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._account_id: str | None = None
        self.session = self._base if not target.role_arn else self._assumed_session(time_fetcher)

    def _assumed_session(self, time_fetcher: Callable[[], datetime] | None) -> boto3.Session:
        sts = self._make_client(self._base, "sts")
        target = self.target

        def fetch() -> dict[str, str]:
            kwargs: dict[str, Any] = {
                "RoleArn": target.role_arn,
                "RoleSessionName": target.session_name,
                "DurationSeconds": target.duration_seconds,
            }
            if target.external_id:
                kwargs["ExternalId"] = target.external_id
            creds = sts.assume_role(**kwargs)["Credentials"]
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        extra = {"time_fetcher": time_fetcher} if time_fetcher is not None else {}
        credentials = DeferredRefreshableCredentials(
            refresh_using=fetch, method="sgchurn-assume-role", **extra
        )
        core = botocore.session.get_session()
        core.register_component("credential_provider", CredentialResolver([_StaticProvider(credentials)]))
        return boto3.Session(botocore_session=core, region_name=target.region)

    def _make_client(self, session: boto3.Session, service: str) -> Any:
        config = self.config
        if service in SELF_RETRIED_SERVICES:
            config = config.merge(Config(retries={"mode": "standard", "total_max_attempts": 1}))
        kwargs: dict[str, Any] = {"region_name": self.target.region, "config": config}
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        factory: Any = session.client  # typed per literal service name; ours is a plain str
        return instrument(factory(service, **kwargs), self.counter, self.guard)

    def client(self, service: str) -> Any:
        """The (cached) client for a service, e.g. "ec2", "elbv2", "cloudtrail", "sqs", "s3", "sts"."""
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                found = self._clients[service] = self._make_client(self.session, service)
            return found

    def account_id(self) -> str:
        """The account these credentials act in (STS GetCallerIdentity, once per AwsClients)."""
        if self._account_id is None:
            self._account_id = str(self.client("sts").get_caller_identity()["Account"])
        return self._account_id
