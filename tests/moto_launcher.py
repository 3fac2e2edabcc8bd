"""A moto server for tests, with the parts moto lacks: `python -m tests.moto_launcher --port 0`.

On top of moto's own WSGI app (moto 5.2.5) it adds:

- (from exporter/demo/motoworld.py, shared with `make demo`) CloudTrail LookupEvents served from
  an in-server record store (EventName/EventId/EventSource/
  Username/ReadOnly lookup attribute, StartTime/EndTime, MaxResults <= 50, NextToken), newest first;
- NLBs that look real: `loadbalancer/net/` ARNs and one ENI per subnet described `ELB net/<name>/<id>`;
- ENIs and targets as AWS has them: secondary and IPv6 addresses matched by the address filters,
  delegated Ipv4Prefixes/Ipv6Prefixes kept, a target's AvailabilityZone ("all") kept and described;
- a control API under /_sgchurn/: POST cloudtrail/records {"records": [...]}, POST cloudtrail/throttle
  {"count": n} (the next n LookupEvents calls fail with ThrottlingException), GET requests (every AWS
  request received: time, service, operation, region, status), POST reset (store, throttle, log).

It prints `PORT <n>` on stdout once listening (and writes the port to --port-file when given).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from exporter.demo.motoworld import TRAIL, install_patches

#: SigV4 signing names -> the service names tests use.
_SERVICE_ALIASES = {"elasticloadbalancing": "elbv2", "eventbridge": "events", "monitoring": "cloudwatch"}


class _RequestLog:
    """Every AWS request the server received, for tests that count calls."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()


REQUESTS = _RequestLog()


def _service_and_region(environ: dict[str, Any]) -> tuple[str, str]:
    auth = environ.get("HTTP_AUTHORIZATION", "")
    try:
        scope = auth.split(",")[0].split()[1]
        _, _, region, service, _ = scope.split("/")
    except (IndexError, ValueError):
        return "unknown", ""
    return _SERVICE_ALIASES.get(service, service), region


def _operation(environ: dict[str, Any], body: bytes, service: str) -> str:
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return str(target).split(".")[-1]
    if body and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action")
        if action:
            return action[0]
    query_action = parse_qs(environ.get("QUERY_STRING", "")).get("Action")
    if query_action:
        return query_action[0]
    try:
        from moto.core.request import Request
        from moto.core.routing import get_service_router

        copy = dict(environ)
        copy["wsgi.input"] = io.BytesIO(body)
        operation, _ = get_service_router(service).match(Request(copy))
        return str(operation.name)
    except Exception:  # the log must never break a request
        return f"{environ.get('REQUEST_METHOD', '?')} {environ.get('PATH_INFO', '')}"


class SgChurnApp:
    """WSGI app in front of moto's: logs each AWS request and serves /_sgchurn/."""

    def __init__(self, moto_app: Callable[..., Iterable[bytes]]) -> None:
        self.moto_app = moto_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_sgchurn/"):
            return self._control(environ, start_response, path[len("/_sgchurn/") :])
        if path.startswith("/moto-api"):
            return self.moto_app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service, region = _service_and_region(environ)
        entry: dict[str, Any] = {
            "time": time.time(),
            "service": service,
            "operation": _operation(environ, body, service),
            "region": region,
            "status": None,
        }
        with REQUESTS.lock:
            REQUESTS.requests.append(entry)

        def recording_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
            entry["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        return self.moto_app(environ, recording_start_response)

    def _control(
        self, environ: dict[str, Any], start_response: Callable[..., Any], command: str
    ) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        payload = json.loads(raw) if raw else {}
        result: Any
        if command == "cloudtrail/records" and method == "POST":
            records = payload.get("records", [])
            result = {"stored": TRAIL.add(records)}
        elif command == "cloudtrail/throttle" and method == "POST":
            with TRAIL.lock:
                TRAIL.throttle = int(payload.get("count", 1))
                result = {"throttle": TRAIL.throttle}
        elif command == "requests" and method == "GET":
            with REQUESTS.lock:
                result = {"requests": [dict(r) for r in REQUESTS.requests]}
        elif command == "reset" and method == "POST":
            TRAIL.reset()
            REQUESTS.reset()
            result = {"reset": True}
        else:
            start_response("404 Not Found", [("Content-Type", "application/json")])
            return [json.dumps({"error": f"no such command: {method} {command}"}).encode()]
        data = json.dumps(result).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


def _exit_with_parent(pid: int) -> None:
    """A test worker that dies must not leave its server behind."""
    while True:
        time.sleep(1)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.moto_launcher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", help="also write the bound port here")
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_exit_with_parent, args=(args.parent_pid,), daemon=True).start()

    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    install_patches()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = SgChurnApp(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    if args.port_file:
        with open(args.port_file + ".tmp", "w", encoding="utf-8") as handle:
            handle.write(str(port))
        os.replace(args.port_file + ".tmp", args.port_file)
    print(f"PORT {port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
