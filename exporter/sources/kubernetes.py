"""Kubernetes correlation: which Service sits behind each target group.

`load_kube_client` and `read_cluster` talk to the API (get/list only, never writes) and return
a `ClusterView`; the view's data classes and parsers (exporter.engine.cluster) are re-exported
here, and the pure mapping of target groups to Services is exporter.engine.bindings.

Errors: `ClusterUnreachable` (connection refused, timeout, TLS) and `ClusterForbidden` (401/403)
carry a one-line message; any other API failure is a `ClusterError`. A missing
TargetGroupBinding CRD (404) is not an error: the view then has no bindings.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal, get_args

import kubernetes.client
import kubernetes.config
import urllib3
import yaml
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.config.incluster_config import (
    SERVICE_CERT_FILENAME,
    SERVICE_TOKEN_FILENAME,
    InClusterConfigLoader,
)

from exporter.engine.cluster import (
    TGB_GROUP,
    TGB_PLURAL,
    TGB_VERSION,
    ClusterView,
    IngressPeer,
    IngressPort,
    IngressRule,
    KubeService,
    ServicePort,
    TargetGroupBinding,
    binding_from_dict,
    service_from_dict,
)

__all__ = [
    "ClusterConfigError",
    "ClusterError",
    "ClusterForbidden",
    "ClusterUnreachable",
    "ClusterView",
    "IngressPeer",
    "IngressPort",
    "IngressRule",
    "KubeMode",
    "KubeService",
    "ServicePort",
    "TargetGroupBinding",
    "load_kube_client",
    "read_cluster",
]

log = logging.getLogger(__name__)

KubeMode = Literal["auto", "true", "false"]
Timeout = float | tuple[float, float]
_MODES: dict[str, KubeMode] = {mode: mode for mode in get_args(KubeMode)}

#: (connect, read) seconds per API call; the daemon polls again on its own schedule.
DEFAULT_TIMEOUT: tuple[float, float] = (3.0, 10.0)
DEFAULT_PAGE_SIZE = 500


class ClusterError(Exception):
    """Reading the cluster failed; str(exc) is one line fit for a log."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))


class ClusterUnreachable(ClusterError):
    """The API server did not answer: connection refused, timeout, DNS or TLS failure."""


class ClusterForbidden(ClusterError):
    """The API server refused us: RBAC forbidden (403) or credentials rejected (401)."""


class ClusterConfigError(ClusterError):
    """No usable client configuration where one was required."""


# --- client configuration -------------------------------------------------------------------


def normalize_mode(mode: str | bool) -> KubeMode:
    """The kubernetes.enabled setting as "auto", "true" or "false" (YAML booleans too); else ValueError."""
    if isinstance(mode, bool):
        return "true" if mode else "false"
    found = _MODES.get(str(mode).strip().lower())
    if found is not None:
        return found
    raise ValueError(f"kubernetes.enabled must be auto, true or false, not {mode!r}")


def load_kube_client(
    mode: KubeMode | str | bool,
    kubeconfig: str | None,
    *,
    environ: Mapping[str, str] | None = None,
    token_file: str = SERVICE_TOKEN_FILENAME,
    ca_file: str = SERVICE_CERT_FILENAME,
) -> kubernetes.client.ApiClient | None:
    """An API client, or None when Kubernetes correlation is off.

    Order: an explicitly given kubeconfig (it fails loudly in every mode), then the in-cluster
    service account, then $KUBECONFIG or ~/.kube/config. Mode "false" returns None; "auto"
    returns None when nothing is found; "true" raises ClusterConfigError instead.
    """
    wanted = normalize_mode(mode)
    if wanted == "false":
        return None
    env = os.environ if environ is None else environ
    config = kubernetes.client.Configuration()
    config.retries = 1  # fail fast: the daemon retries on its next poll
    if kubeconfig:
        _load_kubeconfig(kubeconfig, config)
        return kubernetes.client.ApiClient(config)
    problems: list[str] = []
    if env.get("KUBERNETES_SERVICE_HOST"):
        try:
            InClusterConfigLoader(token_file, ca_file, environ=env).load_and_set(config)
            return kubernetes.client.ApiClient(config)
        except (ConfigException, OSError) as exc:
            problems.append(f"in-cluster: {exc}")
    default = _default_kubeconfig(env)
    if default is not None:
        try:
            _load_kubeconfig(default, config)
            return kubernetes.client.ApiClient(config)
        except ClusterConfigError as exc:
            problems.append(str(exc))
    reason = "; ".join(problems) or "not in a cluster and no kubeconfig found"
    if wanted == "true":
        raise ClusterConfigError(f"kubernetes enabled but no client configuration: {reason}")
    if problems:
        log.warning("kubernetes correlation off: %s", reason)
    return None


def _default_kubeconfig(env: Mapping[str, str]) -> str | None:
    """$KUBECONFIG (the first existing entry) or ~/.kube/config, when such a file exists."""
    listed = env.get("KUBECONFIG", "")
    candidates = [p for p in listed.split(os.pathsep) if p] if listed else []
    if not candidates:
        home = env.get("HOME") or str(Path.home())
        candidates = [str(Path(home) / ".kube" / "config")]
    for candidate in candidates:
        if Path(candidate).expanduser().is_file():
            return candidate
    return None


def _load_kubeconfig(path: str, config: kubernetes.client.Configuration) -> None:
    try:
        kubernetes.config.load_kube_config(
            config_file=path, client_configuration=config, persist_config=False
        )
    except (ConfigException, OSError, ValueError, TypeError, KeyError, yaml.YAMLError) as exc:
        raise ClusterConfigError(f"kubeconfig {path}: {exc}") from exc


# --- reading --------------------------------------------------------------------------------


def read_cluster(
    api_client: kubernetes.client.ApiClient,
    *,
    namespaces: Sequence[str] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
    timeout: Timeout = DEFAULT_TIMEOUT,
) -> ClusterView:
    """List Services and TargetGroupBindings (all namespaces, or only `namespaces`), paginated.

    Per-namespace listing stamps each object with the namespace asked for. Cluster-wide, an
    object without metadata.namespace (an emulator quirk; real API servers always fill it) keeps
    namespace None, and `engine.bindings.bind_services` resolves it from tags or a unique name.
    """
    core = kubernetes.client.CoreV1Api(api_client)
    custom = kubernetes.client.CustomObjectsApi(api_client)
    host = str(getattr(api_client.configuration, "host", "?"))
    services: list[KubeService] = []
    bindings: list[TargetGroupBinding] = []
    skipped = 0
    bindings_available = True
    scopes: Sequence[str | None] = list(namespaces) if namespaces is not None else [None]
    for namespace in scopes:
        where = "all namespaces" if namespace is None else f"namespace {namespace}"
        if namespace is None:
            list_services = partial(core.list_service_for_all_namespaces)
            list_bindings = partial(custom.list_cluster_custom_object, TGB_GROUP, TGB_VERSION, TGB_PLURAL)
        else:
            list_services = partial(core.list_namespaced_service, namespace)
            list_bindings = partial(
                custom.list_namespaced_custom_object, TGB_GROUP, TGB_VERSION, namespace, TGB_PLURAL
            )
        what = f"list services ({where})"
        try:
            items = list(_paginate(list_services, page_size, timeout, what, host))
        except _NotFound as exc:  # every Kubernetes API serves Services
            raise ClusterError(f"kubernetes API {host}: {what}: HTTP 404: not a Kubernetes API?") from exc
        for item in items:
            service = service_from_dict(item, namespace)
            if service is None:
                skipped += 1
            else:
                services.append(service)
        try:
            items = list(_paginate(list_bindings, page_size, timeout, f"list {_TGB_NAME} ({where})", host))
        except _NotFound:
            bindings_available = False  # the CRD is not installed: no bindings, not an error
            continue
        for item in items:
            binding = binding_from_dict(item, namespace)
            if binding is None:
                skipped += 1
            else:
                bindings.append(binding)
    return ClusterView(
        services=tuple(services),
        bindings=tuple(bindings),
        bindings_available=bindings_available,
        skipped=skipped,
    )


_TGB_NAME = f"{TGB_PLURAL}.{TGB_GROUP}"


class _NotFound(Exception):
    """The listed resource does not exist on the server (404)."""


def _paginate(
    call: Callable[..., Any], page_size: int, timeout: Timeout, what: str, host: str
) -> Iterator[Any]:
    """Items of every page of one list call, following metadata.continue."""
    token: str | None = None
    seen: set[str] = set()
    while True:
        kwargs: dict[str, Any] = {"limit": page_size, "_preload_content": False, "_request_timeout": timeout}
        if token:
            kwargs["_continue"] = token
        page = _call(call, kwargs, what, host)
        items = page.get("items") or []
        if not isinstance(items, list):
            raise ClusterError(f"kubernetes API {host}: {what}: 'items' is not a list")
        yield from items
        metadata = page.get("metadata") or {}
        token = metadata.get("continue") if isinstance(metadata, dict) else None
        if not token:
            return
        if token in seen:
            raise ClusterError(f"kubernetes API {host}: {what}: continue token repeated")
        seen.add(token)


def _call(call: Callable[..., Any], kwargs: dict[str, Any], what: str, host: str) -> dict[str, Any]:
    """One API request, its JSON body as a dict; failures become Cluster* errors."""
    try:
        response = call(**kwargs)
        body = response.data
        response.release_conn()
    except ApiException as exc:
        raise _api_error(exc, what, host) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ClusterUnreachable(f"kubernetes API {host} unreachable: {what}: {reason}") from exc
    try:
        page = json.loads(body)
    except ValueError as exc:
        raise ClusterError(f"kubernetes API {host}: {what}: response is not JSON") from exc
    if not isinstance(page, dict):
        raise ClusterError(f"kubernetes API {host}: {what}: response is not an object")
    return page


def _api_error(exc: ApiException, what: str, host: str) -> Exception:
    status = exc.status or 0
    detail = _status_message(exc) or str(exc.reason or "")
    if status == 404:
        return _NotFound(what)
    if status in (401, 403):
        kind = "forbidden" if status == 403 else "unauthorized"
        return ClusterForbidden(f"kubernetes API {host}: {what}: {kind} ({status}): {detail}")
    if status == 0:  # the client's own failures, e.g. TLS
        return ClusterUnreachable(f"kubernetes API {host} unreachable: {what}: {detail}")
    return ClusterError(f"kubernetes API {host}: {what}: HTTP {status}: {detail}")


def _status_message(exc: ApiException) -> str:
    """The `message` of a Kubernetes Status body, truncated; "" when there is none."""
    try:
        status = json.loads(exc.body or "")
    except ValueError:
        return ""
    message = status.get("message") if isinstance(status, dict) else None
    return str(message)[:300] if message else ""
