"""A Kubernetes API for tests: kmock's emulator served over HTTP on 127.0.0.1 (a free port).

    with KubeEmulator() as kube:                  # starts a thread with its own event loop
        kube.add_service(service_obj)             # seeded through kmock's Python API, not the exporter
        kube.add_tgb(tgb_obj)                     # elbv2.k8s.aws/v1beta1 targetgroupbindings
        kube.forbid("targetgroupbindings")        # every request for it now answers 403 Forbidden
        kube.paginate("services", page_size=1)    # list answers pages with metadata.continue
        path = kube.write_kubeconfig(tmp_path / "kubeconfig")   # for the exporter or a daemon
        client = kube.api_client()                # a test-only client pointing at .url
        kube.list_requests("services")            # the list requests seen, as query dicts
        kube.seen_requests()                      # (verb, group, plural) of every request

`KubeEmulator(crd=False)` serves no TargetGroupBinding CRD (lists answer 404), like a cluster
without the AWS Load Balancer Controller. admissionregistration.k8s.io/v1 ValidatingAdmissionPolicies
and bindings are served cluster-scoped (`kube.add_cluster_object("validatingadmissionpolicies", obj)`);
`KubeEmulator(admission=False)` answers 404 for them, like a cluster before Kubernetes 1.30. Objects are stored as given; with fill_namespace
(the default) metadata.namespace is set like a real API server does. kmock itself never fills
it on list results, and ignores label selectors. Pinned to kmock 0.8 (its Server is private).
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import kmock
import kubernetes.client
import yaml
from kmock._internal.apps import Server

T = TypeVar("T")

#: Short names tests use, and the kmock resource each stands for.
RESOURCES = {
    "services": "v1/services",
    "targetgroupbindings": "elbv2.k8s.aws/v1beta1/targetgroupbindings",
    "validatingadmissionpolicies": "admissionregistration.k8s.io/v1/validatingadmissionpolicies",
    "validatingadmissionpolicybindings": "admissionregistration.k8s.io/v1/validatingadmissionpolicybindings",
}
#: Cluster-scoped kinds served unless KubeEmulator(admission=False) (a cluster before Kubernetes 1.30).
ADMISSION_KINDS = {
    "validatingadmissionpolicies": "ValidatingAdmissionPolicy",
    "validatingadmissionpolicybindings": "ValidatingAdmissionPolicyBinding",
}


class KubeEmulator:
    """Context manager running the emulator; `.url` is its base URL (no trailing slash)."""

    def __init__(self, *, crd: bool = True, admission: bool = True, start_timeout: float = 10.0) -> None:
        self._crd = crd
        self._admission = admission
        self._start_timeout = start_timeout
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._km: kmock.KubernetesEmulator | None = None
        self._error: BaseException | None = None
        self.url = ""

    def __enter__(self) -> KubeEmulator:
        self._thread = threading.Thread(target=self._run, name="kube-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._start_timeout):
            raise RuntimeError("kube emulator did not start")
        if self._error is not None:
            raise RuntimeError(f"kube emulator failed: {self._error!r}") from self._error
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(self._start_timeout)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to __enter__ if it failed early
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.KubernetesEmulator() as km, Server(km) as srv:
            self._km = km
            self._loop = asyncio.get_running_loop()
            km.resources[RESOURCES["services"]] = kmock.ResourceInfo(kind="Service", namespaced=True)
            if self._crd:
                km.resources[RESOURCES["targetgroupbindings"]] = kmock.ResourceInfo(
                    kind="TargetGroupBinding", namespaced=True
                )
            if self._admission:
                for plural, kind in ADMISSION_KINDS.items():
                    km.resources[RESOURCES[plural]] = kmock.ResourceInfo(kind=kind, namespaced=False)
            self.url = str(srv.url).rstrip("/")
            self._ready.set()
            await self._stop.wait()

    def _on_loop(self, fn: Callable[[], T]) -> T:
        """Run fn on the emulator's loop (kmock's state is not thread-safe) and return its result."""
        assert self._loop is not None, "use KubeEmulator as a context manager"

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(self._start_timeout)

    @property
    def km(self) -> kmock.KubernetesEmulator:
        """The kmock emulator itself, for anything this helper does not wrap (use on its loop)."""
        assert self._km is not None, "use KubeEmulator as a context manager"
        return self._km

    def _add(self, resource: str, obj: dict[str, Any], fill_namespace: bool) -> None:
        stored = copy.deepcopy(obj)
        metadata = stored.setdefault("metadata", {})
        namespace = metadata.get("namespace") or "default"
        if fill_namespace:
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        key = (RESOURCES[resource], namespace, metadata["name"])
        self._on_loop(lambda: self.km.objects.__setitem__(key, stored))

    def add_service(self, obj: dict[str, Any], *, fill_namespace: bool = True) -> None:
        """Store a Service (namespace from metadata.namespace, else "default")."""
        self._add("services", obj, fill_namespace)

    def add_tgb(self, obj: dict[str, Any], *, fill_namespace: bool = True) -> None:
        """Store a TargetGroupBinding (namespace from metadata.namespace, else "default")."""
        self._add("targetgroupbindings", obj, fill_namespace)

    def add_cluster_object(self, resource: str, obj: dict[str, Any]) -> None:
        """Store a cluster-scoped object, e.g. resource "validatingadmissionpolicies"."""
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {}).pop("namespace", None)
        key = (RESOURCES[resource], None, stored["metadata"]["name"])
        self._on_loop(lambda: self.km.objects.__setitem__(key, stored))

    def forbid(self, resource: str) -> None:
        """Answer every request for `resource` with 403 Forbidden, as RBAC would."""
        ref = kmock.resource(RESOURCES.get(resource, resource))
        group = f'"{ref.group}"' if ref.group is not None else '""'
        error = kmock.KubernetesError(
            status=403,
            reason="Forbidden",
            message=(
                f'{ref.plural} is forbidden: User "system:serviceaccount:monitoring:sg-churn-exporter" '
                f'cannot list resource "{ref.plural}" in API group {group} at the cluster scope'
            ),
        )
        self._on_loop(lambda: self.km[ref] << error)

    def paginate(self, resource: str, page_size: int) -> None:
        """Serve list requests for `resource` in pages of at most page_size (and the limit asked)."""
        ref = kmock.resource(RESOURCES.get(resource, resource))

        def page(request: kmock.Request) -> dict[str, Any]:
            items = [
                obj.raw
                for (res, namespace, _), obj in self.km.objects.items()
                if res == ref and not obj.deleted and request.namespace in (None, namespace)
            ]
            start = int(request.params.get("continue") or 0)
            size = min(page_size, int(request.params.get("limit") or page_size))
            metadata: dict[str, Any] = {"resourceVersion": "1"}
            if start + size < len(items):
                metadata["continue"] = str(start + size)
            return {"metadata": metadata, "items": items[start : start + size]}

        self._on_loop(lambda: self.km[kmock.action.LIST, ref] << page)

    def list_requests(self, resource: str) -> list[dict[str, str]]:
        """Query parameters of the list requests seen for `resource` (short plural name)."""
        ref = kmock.resource(RESOURCES.get(resource, resource))

        def collect() -> list[dict[str, str]]:
            return [
                dict(request.params)
                for request in self.km
                if request.action == kmock.action.LIST and request.resource == ref
            ]

        return self._on_loop(collect)

    def seen_requests(self) -> list[tuple[str, str, str]]:
        """(verb, API group, plural) of every Kubernetes request served, e.g. ("list", "", "services")."""

        def collect() -> list[tuple[str, str, str]]:
            return [
                (str(request.action.value).lower(), str(request.resource.group), str(request.resource.plural))
                for request in self.km
                if request.action is not None and request.resource is not None
            ]

        return self._on_loop(collect)

    def write_kubeconfig(self, path: Path, *, namespace: str = "default") -> Path:
        """A kubeconfig whose current context points at this emulator (plain HTTP, no auth)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [
                {"name": "kmock", "context": {"cluster": "kmock", "user": "tester", "namespace": namespace}}
            ],
            "current-context": "kmock",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def api_client(self) -> kubernetes.client.ApiClient:
        """A test-only client for this emulator."""
        config = kubernetes.client.Configuration()
        config.host = self.url
        return kubernetes.client.ApiClient(config)
