"""A moto server for tests, with the parts moto lacks: `python -m tests.moto_launcher --port 0`.

On top of moto's own WSGI app (moto 5.2.5) it adds:

- CloudTrail LookupEvents served from an in-server record store (EventName/EventId/EventSource/
  Username/ReadOnly lookup attribute, StartTime/EndTime, MaxResults <= 50, NextToken), newest first;
- NLBs that look real: `loadbalancer/net/` ARNs and one ENI per subnet described `ELB net/<name>/<id>`;
- a control API under /_sgchurn/: POST cloudtrail/records {"records": [...]}, POST cloudtrail/throttle
  {"count": n} (the next n LookupEvents calls fail with ThrottlingException), GET requests (every AWS
  request received: time, service, operation, region, status), POST reset (store, throttle, log).

It prints `PORT <n>` on stdout once listening (and writes the port to --port-file when given).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

#: Lookup attributes this store can filter on, and the record field each one reads.
_LOOKUP_FIELDS = {
    "EventName": "eventName",
    "EventId": "eventID",
    "EventSource": "eventSource",
    "Username": "_username",
    "ReadOnly": "_readonly",
}

#: SigV4 signing names -> the service names tests use.
_SERVICE_ALIASES = {"elasticloadbalancing": "elbv2", "eventbridge": "events"}


class _State:
    """Everything the control API can change, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.throttle = 0
        self.requests: list[dict[str, Any]] = []

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.throttle = 0
            self.requests.clear()


STATE = _State()


def _event_time(record: dict[str, Any]) -> float:
    text = str(record.get("eventTime", "1970-01-01T00:00:00Z")).replace("Z", "+00:00")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _username(record: dict[str, Any]) -> str:
    identity = record.get("userIdentity") or {}
    issuer = (identity.get("sessionContext") or {}).get("sessionIssuer") or {}
    return str(issuer.get("userName") or identity.get("userName") or identity.get("principalId") or "")


def _field(record: dict[str, Any], name: str) -> str:
    if name == "_username":
        return _username(record)
    if name == "_readonly":
        return str(record.get("readOnly", False)).lower()
    return str(record.get(name, ""))


def _as_event(record: dict[str, Any]) -> dict[str, Any]:
    """One LookupEvents result: the summary fields plus the record as a JSON string."""
    resources = []
    params = record.get("requestParameters") or {}
    if isinstance(params, dict):
        if params.get("groupId"):
            resources.append({"ResourceType": "AWS::EC2::SecurityGroup", "ResourceName": params["groupId"]})
        if params.get("targetGroupArn"):
            resources.append(
                {
                    "ResourceType": "AWS::ElasticLoadBalancingV2::TargetGroup",
                    "ResourceName": params["targetGroupArn"],
                }
            )
    return {
        "EventId": record.get("eventID", ""),
        "EventName": record.get("eventName", ""),
        "ReadOnly": str(record.get("readOnly", False)).lower(),
        "AccessKeyId": (record.get("userIdentity") or {}).get("accessKeyId", ""),
        "EventTime": _event_time(record),
        "EventSource": record.get("eventSource", ""),
        "Username": _username(record),
        "Resources": resources,
        "CloudTrailEvent": json.dumps(record),
    }


def _encode_token(boundary: tuple[float, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(boundary)).encode()).decode()


def _decode_token(token: str) -> tuple[float, str]:
    time_value, event_id = json.loads(base64.urlsafe_b64decode(token.encode()))
    return float(time_value), str(event_id)


def lookup_events(self: Any) -> str:
    """Replacement for moto's CloudTrailResponse.lookup_events, reading STATE.records."""
    from moto.core.exceptions import JsonRESTError

    with STATE.lock:
        if STATE.throttle > 0:
            STATE.throttle -= 1
            raise JsonRESTError("ThrottlingException", "Rate exceeded")
        records = list(STATE.records)
    attributes = self._get_param("LookupAttributes") or []
    if len(attributes) > 1:
        raise JsonRESTError(
            "InvalidLookupAttributesException", "You cannot specify more than one lookup attribute."
        )
    max_results = int(self._get_param("MaxResults") or 50)
    if not 1 <= max_results <= 50:
        raise JsonRESTError("InvalidMaxResultsException", "MaxResults must be between 1 and 50.")
    start = self._get_param("StartTime")
    end = self._get_param("EndTime")
    token = self._get_param("NextToken")
    matched = []
    for record in records:
        if record.get("awsRegion") not in (None, self.region):
            continue
        when = _event_time(record)
        if start is not None and when < float(start):
            continue
        if end is not None and when > float(end):
            continue
        if attributes:
            key = attributes[0].get("AttributeKey")
            field_name = _LOOKUP_FIELDS.get(key)
            if field_name is None:
                raise JsonRESTError(
                    "InvalidLookupAttributesException", f"Unsupported lookup attribute {key}."
                )
            if _field(record, field_name) != str(attributes[0].get("AttributeValue")):
                continue
        matched.append((when, str(record.get("eventID", "")), record))
    matched.sort(key=lambda item: (item[0], item[1]), reverse=True)
    if token:
        try:
            boundary = _decode_token(token)
        except (ValueError, TypeError) as exc:
            raise JsonRESTError("InvalidNextTokenException", "Invalid NextToken.") from exc
        matched = [item for item in matched if (item[0], item[1]) < boundary]
    page = matched[:max_results]
    body: dict[str, Any] = {"Events": [_as_event(item[2]) for item in page]}
    if len(matched) > max_results:
        body["NextToken"] = _encode_token((page[-1][0], page[-1][1]))
    return json.dumps(body)


def _wrap_create_load_balancer(original: Callable[..., Any]) -> Callable[..., Any]:
    def create_load_balancer(self: Any, *args: Any, **kwargs: Any) -> Any:
        lb = original(self, *args, **kwargs)
        if lb.type != "network":
            return lb
        old_arn = lb.arn
        new_arn = old_arn.replace(":loadbalancer/app/", ":loadbalancer/net/")
        lb.arn = new_arn
        self.load_balancers.pop(old_arn, None)
        self.load_balancers[new_arn] = lb
        self.tagging_service.copy_tags(old_arn, new_arn)
        self.tagging_service.delete_all_tags_for_resource(old_arn)
        lb_id = new_arn.rsplit("/", 1)[-1]
        for subnet in lb.subnets:
            self.ec2_backend.create_network_interface(
                subnet,
                None,
                group_ids=list(lb.security_groups or []),
                description=f"ELB net/{lb.name}/{lb_id}",
            )
        return lb

    return create_load_balancer


def install_patches() -> None:
    """Patch moto in this process: LookupEvents and real-looking NLBs."""
    from moto.cloudtrail.responses import CloudTrailResponse
    from moto.elbv2.models import ELBv2Backend

    CloudTrailResponse.lookup_events = lookup_events  # type: ignore[method-assign]
    if not getattr(ELBv2Backend.create_load_balancer, "_sgchurn", False):
        wrapped = _wrap_create_load_balancer(ELBv2Backend.create_load_balancer)
        wrapped._sgchurn = True  # type: ignore[attr-defined]
        ELBv2Backend.create_load_balancer = wrapped  # type: ignore[method-assign]


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
        with STATE.lock:
            STATE.requests.append(entry)

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
            with STATE.lock:
                STATE.records.extend(records)
                result = {"stored": len(STATE.records)}
        elif command == "cloudtrail/throttle" and method == "POST":
            with STATE.lock:
                STATE.throttle = int(payload.get("count", 1))
                result = {"throttle": STATE.throttle}
        elif command == "requests" and method == "GET":
            with STATE.lock:
                result = {"requests": [dict(r) for r in STATE.requests]}
        elif command == "reset" and method == "POST":
            STATE.reset()
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
