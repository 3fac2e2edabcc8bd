"""The exporter's HTTP server: /metrics, probes, the landing page and a JSON view of the snapshot.

A stdlib ThreadingHTTPServer in a background thread. Every request reads the current snapshot
once through `get_snapshot` (the daemon swaps whole snapshots in), so a request never waits on AWS.

Routes:
  /metrics               Prometheus text (or OpenMetrics by Accept), gzip when accepted; written
                         once per snapshot by exporter.metrics.ExpositionCache
  /healthz               200 "ok" while the process serves (never behind basic auth)
  /readyz                200 when Snapshot.ready, else 503 with a short reason (never behind basic auth)
  /                      the landing page (exporter/web_page.py); `?page=N&q=text` pages and filters
                         its target groups (exporter/web_landing.py), 400 on a bad query
  /target-groups/<name>  one target group's page, with an optional explanation
  /api/snapshot.json     the snapshot as JSON, for tools

Optional TLS (cert/key PEM files) and basic auth (user -> bcrypt hash or sha256 hex digest of
the password, exporter/web_auth.py). Access logs go to the `exporter.web` logger at DEBUG;
nothing is printed per request.

Under load (exporter/web_limits.py, exporter/web_heads.py): a listen backlog of 128; request heads
read on one selector thread (at most 512 at once, 16 KiB and 10 s each), so a slow client holds no
thread; at most 64 requests answered at once, a thread each; pages rendered once per snapshot by at
most 2 workers, the landing page in a niced worker process (exporter/web_render.py); /metrics never
waits on a page.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import gzip
import io
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client.exposition import choose_encoder, gzip_accepted

from exporter.daemon.snapshot import Snapshot
from exporter.metrics import GZIP_LEVEL, ExpositionCache, ExpositionFormat, build_registry
from exporter.web_auth import BasicAuth
from exporter.web_heads import HeadReader
from exporter.web_json import snapshot_json_body
from exporter.web_landing import BadQuery, LandingQuery, parse_query
from exporter.web_limits import (
    LISTEN_BACKLOG,
    ConnectionLimiter,
    PageBusy,
    PagePool,
    PerSnapshot,
    SnapshotCache,
)
from exporter.web_links import PageLinks
from exporter.web_page import render_not_found, render_target_group
from exporter.web_render import PageWorker

log = logging.getLogger(__name__)

ExplainProvider = Callable[[Snapshot, str], str | None]

#: Pages have no scripts: forbid them outright, allow only inline styles and inline SVG.
_HTML_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
_TARGET_GROUP_PREFIX = "/target-groups/"
_REALM = "sg-churn-exporter"
_OPEN_PATHS = frozenset({"/healthz", "/readyz"})
_PAGE_PATHS = frozenset({"/", "/index.html", "/api/snapshot.json"})


def utc_now() -> datetime:
    return datetime.now(UTC)


def readiness(snapshot: Snapshot) -> tuple[bool, str]:
    """(ready, short reason) for /readyz. The reason names source kinds and jobs, not accounts."""
    if snapshot.ready:
        return True, "ready"
    parts = []
    down = sorted({s.source for s in snapshot.sources if not s.up})
    if down:
        parts.append("sources down: " + ", ".join(down))
    waiting = sorted(j.job for j in snapshot.jobs if j.last_success is None)
    if waiting:
        parts.append("jobs without a success yet: " + ", ".join(waiting))
    return False, "not ready: " + ("; ".join(parts) or "first pass not complete")


def exposition_format(content_type: str) -> ExpositionFormat | None:
    """The format our own writer produces for a content type prometheus_client's choose_encoder
    picked, or None when only prometheus_client writes it (name escaping `dots` or `values`, which
    rename our metrics and labels, or a version other than text 0.0.4/1.0.0 and OpenMetrics 1.0.0)."""
    media, *rest = (part.strip() for part in content_type.split(";"))
    params = dict(part.split("=", 1) for part in rest if "=" in part)
    if params.get("escaping", "underscores") not in ("underscores", "allow-utf-8"):
        return None
    if media == "text/plain" and params.get("version") in ("0.0.4", "1.0.0"):
        return "text"
    if media == "application/openmetrics-text" and params.get("version") == "1.0.0":
        return "openmetrics"
    return None


class _Server(ThreadingHTTPServer):
    """Binds and listens, and answers complete requests in threads; the accept loop and the
    request heads are HeadReader's (serve_forever is not used)."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG
    app: WebServer
    limiter: ConnectionLimiter

    def server_activate(self) -> None:
        super().server_activate()
        self._heads: dict[Any, bytes] = {}

    def hand_over(self, request: socket.socket, client_address: Any, head: bytes) -> None:
        """A connection whose head HeadReader has read, holding an answering slot: a thread answers."""
        self._heads[request] = head
        try:
            self.process_request(request, client_address)
        except BaseException:
            self._heads.pop(request, None)
            raise

    def take_head(self, request: Any) -> bytes:
        return self._heads.pop(request, b"")

    def shutdown_request(self, request: Any) -> None:
        self.limiter.release(request)
        self._heads.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Resets, TLS handshake failures, timeouts: not worth a traceback on stderr.
        log.debug("request from %s failed", client_address, exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "sg-churn-exporter"
    sys_version = ""
    timeout = 30  # seconds a connection may idle (socket timeout)

    def setup(self) -> None:
        super().setup()
        # The head was read by HeadReader (TLS handshake included); one request per connection
        # (HTTP/1.0 answers), so nothing past the head is read from the socket.
        self.rfile.close()
        self.rfile = io.BytesIO(self.server.take_head(self.request))

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def version_string(self) -> str:
        """The Server header: the name alone (no Python version, and no trailing space)."""
        return self.server_version

    def do_GET(self) -> None:
        self._handle(head=False)

    def do_HEAD(self) -> None:
        self._handle(head=True)

    def _not_allowed(self) -> None:
        """Every resource here is read-only: a known method other than GET and HEAD is 405 with
        Allow (RFC 9110, 15.5.6), not the 501 'Unsupported method' BaseHTTPRequestHandler answers."""
        with contextlib.suppress(OSError):
            self._text(405, "method not allowed: GET or HEAD\n", head=False, headers={"Allow": "GET, HEAD"})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _not_allowed

    # -- responses -------------------------------------------------------------------------

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        *,
        head: bool,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _text(self, status: int, text: str, *, head: bool, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", head=head, headers=headers)

    def _html(self, status: int, page: str, *, head: bool) -> None:
        self._send(status, page.encode(), "text/html; charset=utf-8", head=head, headers=_HTML_HEADERS)

    # -- auth ------------------------------------------------------------------------------

    def _authorized(self) -> bool:
        auth = self.server.app.auth
        if not auth:
            return True
        header = self.headers.get("Authorization", "")
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        return auth.check(user, password)

    # -- routing ---------------------------------------------------------------------------

    def _handle(self, *, head: bool) -> None:
        try:
            self._route(head=head)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            log.debug("client went away during %s", self.path)
        except Exception:
            log.exception("error serving %s", self.path)
            with contextlib.suppress(OSError):
                self._text(500, "internal error\n", head=head)

    def _route(self, *, head: bool) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        if path == "/healthz":
            self._text(200, "ok\n", head=head)
            return
        if path == "/readyz":
            ready, reason = readiness(app.get_snapshot())
            self._text(200 if ready else 503, reason + "\n", head=head)
            return
        if not self._authorized():
            self._text(
                401,
                "unauthorized\n",
                head=head,
                headers={"WWW-Authenticate": f'Basic realm="{_REALM}", charset="UTF-8"'},
            )
            return
        if path == "/metrics":
            self._metrics(head=head)
            return
        if path not in _PAGE_PATHS and not path.startswith(_TARGET_GROUP_PREFIX):
            self._text(404, "not found\n", head=head)
            return
        try:
            with app.pages.turn():  # at most PAGE_WORKERS renders at once; /metrics never waits here
                self._page(path, head=head)
        except PageBusy:
            self._text(503, "busy: try again\n", head=head, headers={"Retry-After": "1"})

    def _page(self, path: str, *, head: bool) -> None:
        app = self.server.app
        snapshot = app.get_snapshot()
        now = app.clock()
        if path in ("/", "/index.html"):
            try:
                query = parse_query(urlsplit(self.path).query)
            except BadQuery as exc:  # the message never repeats the value
                self._text(400, f"bad request: {exc}\n", head=head)
                return
            landing = app.landing_page(snapshot, query)
            self._send(200, landing, "text/html; charset=utf-8", head=head, headers=_HTML_HEADERS)
        elif path == "/api/snapshot.json":
            gzipped = gzip_accepted(self.headers.get("Accept-Encoding", ""))
            body = app.snapshot_json.body(snapshot, gzipped=gzipped)
            headers = {"Content-Encoding": "gzip"} if gzipped else {}
            self._send(200, body, "application/json", head=head, headers=headers)
        elif path.startswith(_TARGET_GROUP_PREFIX) and len(path) > len(_TARGET_GROUP_PREFIX):
            name = unquote(path[len(_TARGET_GROUP_PREFIX) :])
            page = render_target_group(snapshot, name, now, app.explain(snapshot, name), app.links)
            if page is None:
                self._html(404, render_not_found(snapshot, name, now, app.links), head=head)
            else:
                self._html(200, page, head=head)
        else:
            self._text(404, "not found\n", head=head)

    def _metrics(self, *, head: bool) -> None:
        app = self.server.app
        # prometheus_client's negotiation picks the format and content type, as it always did.
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        gzipped = gzip_accepted(self.headers.get("Accept-Encoding", ""))
        fmt = exposition_format(content_type)
        if fmt is not None:
            body = app.exposition.body(fmt, gzipped=gzipped)
        else:  # an escaping scheme that renames metrics, or a newer version: prometheus_client writes it
            body = encoder(app.registry)
            if gzipped:
                body = gzip.compress(body, compresslevel=GZIP_LEVEL)
        headers = {"Content-Encoding": "gzip"} if gzipped else {}
        self._send(200, body, content_type, head=head, headers=headers)


class WebServer:
    """The HTTP server in a background thread.

    get_snapshot: returns the current snapshot (cheap, non-blocking; called once per request).
    port: 0 picks a free port; read `.port` after `start()`.
    tls_cert_file / tls_key_file: PEM files; with a cert the server speaks only HTTPS.
    basic_auth_users: user -> bcrypt hash or sha256 hex digest of the password; /healthz and
      /readyz stay open.
    limiter, pages: connection and page-render limits (exporter/web_limits.py defaults).
    explain_provider: (snapshot, name) -> plain text explaining that target group as of the
      snapshot (escaped on the page), or None; called at most once per snapshot and name.
    clock: the "now" pages are rendered at (tests pin it).
    links: the runbook and Grafana base URLs the pages link to (web.runbook_base_url, web.grafana_base_url).
    """

    def __init__(
        self,
        get_snapshot: Callable[[], Snapshot],
        host: str = "127.0.0.1",
        port: int = 0,
        tls_cert_file: str | None = None,
        tls_key_file: str | None = None,
        basic_auth_users: Mapping[str, str] | None = None,
        explain_provider: ExplainProvider | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        limiter: ConnectionLimiter | None = None,
        pages: PagePool | None = None,
        links: PageLinks | None = None,
    ) -> None:
        if tls_key_file and not tls_cert_file:
            raise ValueError("web.tls_key_file needs web.tls_cert_file")
        self.get_snapshot = get_snapshot
        self.host = host
        self.requested_port = port
        self.auth = BasicAuth(basic_auth_users)
        self.limiter = limiter if limiter is not None else ConnectionLimiter()
        self.pages = pages if pages is not None else PagePool()
        #: renders the landing page in a worker process, off this process' GIL (web_render.py)
        self.page_worker = PageWorker()
        #: the landing page and /api/snapshot.json, rendered once per snapshot like /metrics
        self.landing = SnapshotCache(
            lambda snapshot: self.page_worker.landing(snapshot, self.clock(), self.links)
        )
        #: other pages of it and filtered ones (?page=N&q=text): the most recent few per snapshot
        self.landing_queries: PerSnapshot[LandingQuery, bytes] = PerSnapshot(
            lambda snapshot, query: self.page_worker.landing(snapshot, self.clock(), self.links, query)
        )
        self.snapshot_json = SnapshotCache(snapshot_json_body)
        self.explain_provider = explain_provider
        self.explanations: PerSnapshot[str, str | None] = PerSnapshot(self._explain)
        self.clock = clock
        self.links = links or PageLinks()  # runbook and Grafana bases the pages link to
        #: /metrics: our writer, rendering each snapshot once (text and OpenMetrics 1.0).
        self.exposition = ExpositionCache(get_snapshot)
        #: /metrics in what only prometheus_client writes (exposition_format); tests, other users.
        self.registry = build_registry(get_snapshot)
        self._ssl_context: ssl.SSLContext | None = None
        if tls_cert_file:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(tls_cert_file, tls_key_file)
            self._ssl_context = context
        self._server: _Server | None = None
        self._heads: HeadReader | None = None
        self._thread: threading.Thread | None = None

    @property
    def tls(self) -> bool:
        return self._ssl_context is not None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("WebServer.port is known after start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]", ""):
            host = "127.0.0.1"
        return f"{scheme}://{host}:{self.port}"

    def landing_page(self, snapshot: Snapshot, query: LandingQuery) -> bytes:
        """The landing page for `query`: `/` once per snapshot, other queries from a bounded cache."""
        if query.default:
            return self.landing.body(snapshot)
        return self.landing_queries.get(snapshot, query)

    def explain(self, snapshot: Snapshot, name: str) -> str | None:
        """The explanation of target group `name` as of `snapshot`, built once per snapshot."""
        return self.explanations.get(snapshot, name)

    def _explain(self, snapshot: Snapshot, name: str) -> str | None:
        if self.explain_provider is None:
            return None
        try:
            return self.explain_provider(snapshot, name)
        except Exception as exc:
            log.warning("explain_provider failed for %r", name, exc_info=True)
            return f"The explanation could not be built: {type(exc).__name__}"

    def start(self) -> None:
        """Bind and serve in a daemon thread. Raises OSError when the address is taken."""
        if self._server is not None:
            raise RuntimeError("WebServer already started")
        server_class = _Server6 if ":" in self.host else _Server
        server = server_class((self.host, self.requested_port), _Handler)
        server.app = self
        server.limiter = self.limiter
        self._server = server
        self._heads = HeadReader(server.socket, self.limiter, server.hand_over, self._ssl_context)
        self._thread = threading.Thread(target=self._heads.serve_forever, name="web", daemon=True)
        self._thread.start()
        log.info("serving on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, wait for the serving thread and close the socket."""
        server, heads, thread = self._server, self._heads, self._thread
        if server is None:
            return
        if heads is not None:
            heads.stop()
        if thread is not None:
            thread.join(timeout=10)
        server.server_close()
        self.page_worker.close()
        self.page_worker = PageWorker()  # a new one, should the server be started again
        self._server = None
        self._heads = None
        self._thread = None

    def __enter__(self) -> WebServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
