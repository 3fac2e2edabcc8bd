"""The HTTP server and its pages, served for real on a free port; the landing page in headless Chromium."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import gzip
import hashlib
import ipaddress
import json
import re
import socket
import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from prometheus_client.exposition import choose_encoder

from exporter.daemon.snapshot import Snapshot
from exporter.engine.timeutil import format_time
from exporter.metrics import SPECS
from exporter.web import WebServer, readiness
from exporter.web_json import snapshot_to_json
from exporter.web_page import format_duration, render_landing, render_target_group, render_timeline
from tests.browser import chromium
from tests.snapshot_samples import (
    CHECKOUT_TG,
    OPEN_FOR_TEXT,
    PAYMENTS_TG,
    TRIGGER_WHO,
    hostile_snapshot,
    sample_snapshot,
)

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
TIMEOUT = 30  # seconds: a hang guard for requests, not a performance assertion


class Holder:
    """What the daemon does: keep the current snapshot and swap a new one in whole."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def get(self) -> Snapshot:
        return self.snapshot


@pytest.fixture
def holder() -> Holder:
    return Holder(sample_snapshot(NOW))


@pytest.fixture
def server(holder: Holder) -> Iterator[WebServer]:
    explained = {CHECKOUT_TG: "preserve_client_ip went false -> true at 11:57:40Z;\n<no authorize yet>"}
    web = WebServer(
        holder.get, "127.0.0.1", 0, explain_provider=lambda _, name: explained.get(name), clock=lambda: NOW
    )
    web.start()
    yield web
    web.stop()


def get(web: WebServer, path: str, **kwargs: object) -> requests.Response:
    return requests.get(web.url + path, timeout=TIMEOUT, **kwargs)  # type: ignore[arg-type]


# -- /metrics, probes, JSON ---------------------------------------------------------------------


def test_metrics_serves_our_families_as_prometheus_text(server: WebServer) -> None:
    response = get(server, "/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for spec in SPECS:
        assert f"# TYPE {spec.name} " in response.text
    assert f'target_group="{CHECKOUT_TG}"' in response.text
    assert "python_gc" not in response.text and "process_" not in response.text  # only our collector


def test_metrics_honours_accept_for_openmetrics(server: WebServer) -> None:
    response = get(server, "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")
    assert "# TYPE sgchurn_rule_gaps counter" in response.text


def test_metrics_is_gzipped_only_when_accepted(server: WebServer) -> None:
    zipped = get(server, "/metrics", headers={"Accept-Encoding": "gzip"}, stream=True)
    assert zipped.headers["Content-Encoding"] == "gzip"
    raw = zipped.raw.read(decode_content=False)
    assert b"sgchurn_up" in gzip.decompress(raw)
    plain = get(server, "/metrics", headers={"Accept-Encoding": "identity"})
    assert "Content-Encoding" not in plain.headers
    assert "sgchurn_up" in plain.text


#: What Prometheus 2.x sends when scraping.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
ACCEPTS = {
    "none": "",
    "text 0.0.4": "text/plain;version=0.0.4",
    "text 1.0.0": "text/plain;version=1.0.0",
    "text 1.0.0 utf-8": "text/plain;version=1.0.0;escaping=allow-utf-8",
    "prometheus 2": PROMETHEUS_ACCEPT,
    "openmetrics": "application/openmetrics-text",
    "openmetrics 1.0.0 utf-8": "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8",
    # Only prometheus_client writes these: /metrics falls back to it.
    "openmetrics 2.0.0": "application/openmetrics-text;version=2.0.0",
    "openmetrics dots": "application/openmetrics-text;version=1.0.0;escaping=dots",
    "text values": "text/plain;version=1.0.0;escaping=values",
}
FALLBACK = {"openmetrics 2.0.0", "openmetrics dots", "text values"}


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
@pytest.mark.parametrize("accept", sorted(ACCEPTS))
def test_metrics_serves_the_bytes_prometheus_client_would_for_every_accept_header(
    holder: Holder, accept: str, encoding: str
) -> None:
    holder.snapshot = hostile_snapshot(NOW)  # escapes in label values, too
    with WebServer(holder.get, "127.0.0.1", 0) as web:
        headers = {"Accept": ACCEPTS[accept], "Accept-Encoding": encoding}
        response = get(web, "/metrics", headers=headers, stream=True)
        raw = response.raw.read(decode_content=False)
        assert response.headers.get("Content-Encoding", "identity") == encoding
        body = gzip.decompress(raw) if encoding == "gzip" else raw
        encoder, content_type = choose_encoder(ACCEPTS[accept])
        assert response.headers["Content-Type"] == content_type
        assert body == encoder(web.registry)
        assert web.exposition.renders == (0 if accept in FALLBACK else 1)


def test_metrics_renders_a_snapshot_once_for_all_its_scrapes(server: WebServer, holder: Holder) -> None:
    prometheus = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
    first = [get(server, "/metrics", headers=prometheus).content for _ in range(3)]
    head = requests.head(server.url + "/metrics", headers=prometheus, timeout=TIMEOUT)
    assert server.exposition.renders == 1
    assert first[0] == first[1] == first[2] and b"# EOF" in first[0]
    assert head.status_code == 200 and head.headers["Content-Encoding"] == "gzip"
    holder.snapshot = sample_snapshot(NOW + timedelta(minutes=1), ready=True)
    after = get(server, "/metrics", headers=prometheus).text
    assert server.exposition.renders == 2
    assert "sgchurn_ready 1.0" in after and "sgchurn_ready 0.0" in first[0].decode()


def test_healthz_and_head(server: WebServer) -> None:
    response = get(server, "/healthz")
    assert (response.status_code, response.text) == (200, "ok\n")
    head = requests.head(server.url + "/healthz", timeout=TIMEOUT)
    assert head.status_code == 200 and head.text == ""


def test_readyz_is_503_until_a_ready_snapshot_is_swapped_in(server: WebServer, holder: Holder) -> None:
    response = get(server, "/readyz")
    assert response.status_code == 503
    assert response.text.startswith("not ready:") and "sqs" in response.text
    holder.snapshot = sample_snapshot(NOW, ready=True)
    response = get(server, "/readyz")
    assert (response.status_code, response.text) == (200, "ready\n")


def test_readiness_reason_without_sources_or_jobs() -> None:
    assert readiness(Snapshot(generated_at=NOW)) == (False, "not ready: first pass not complete")


def test_snapshot_json_for_tools(server: WebServer) -> None:
    response = get(server, "/api/snapshot.json")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    data = response.json()
    assert data["generated_at"] == "2026-11-25T11:59:56Z"
    assert [g["target_group"] for g in data["open_gaps"]] == [CHECKOUT_TG]
    assert data["open_gaps"][0]["end"] is None
    assert {tg["name"] for tg in data["target_groups"]} == {CHECKOUT_TG, PAYMENTS_TG}
    checkout = next(tg for tg in data["target_groups"] if tg["name"] == CHECKOUT_TG)
    assert checkout["flows"]["traffic"] == {
        "targets": 3,
        "admitted": 0,
        "ratio": 0.0,
        "unadmitted_by_reason": {"source_not_covered": 3},
    }
    assert {"labels": {"reason": "no_rule"}, "value": 5} in data["counters"]["cloudtrail_records_rejected"]


def test_a_gap_whose_start_is_unknown_says_so_in_the_json_and_the_page() -> None:
    """A gap already open when the exporter first looked: its start is the first moment seen, so
    the page says "at least" and "or earlier" and marks the start "<=", and the JSON says
    start_exact false (the metrics leave out its open_since series: test_start_exact.py)."""
    snap = sample_snapshot(NOW)
    exact = json.loads(json.dumps(snapshot_to_json(snap)))
    assert {g["start_exact"] for g in exact["open_gaps"] + exact["recent_gaps"]} == {True}
    page = render_landing(snap, NOW)
    assert "at least" not in page and "or earlier" not in page and "&lt;= " not in page

    inexact = dataclasses.replace(
        snap,
        open_gaps=tuple(dataclasses.replace(g, start_exact=False, note="first look") for g in snap.open_gaps),
        recent_gaps=tuple(dataclasses.replace(g, start_exact=False) for g in snap.recent_gaps),
    )
    data = snapshot_to_json(inexact)
    assert [(g["start_exact"], g["note"]) for g in data["open_gaps"]] == [(False, "first look")]
    assert {g["note"] for g in exact["open_gaps"] + exact["recent_gaps"]} == {None}
    assert {g["start_exact"] for g in data["recent_gaps"]} == {False}
    page = render_landing(inexact, NOW)
    banner = re.search(r'<section class="banner open" id="open-gaps">(.*?)</section>', page, re.S)
    assert banner is not None
    assert f"open for at least {OPEN_FOR_TEXT}" in banner.group(1) and " or earlier" in banner.group(1)
    assert page.count("&lt;= ") == len(inexact.recent_gaps)  # the table of closed gaps


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
@pytest.mark.parametrize("path", ["/", "/metrics", "/healthz", "/nope"])
def test_other_methods_are_405_with_allow(server: WebServer, method: str, path: str) -> None:
    """Read-only resources: 405 and Allow, where the server used to answer 501 'Unsupported method'."""
    response = requests.request(method, server.url + path, data=b"x=1", timeout=TIMEOUT)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET, HEAD"
    assert response.text == "method not allowed: GET or HEAD\n"


def test_the_server_header_is_the_name_alone(server: WebServer) -> None:
    assert get(server, "/healthz").headers["Server"] == "sg-churn-exporter"


def test_unknown_paths_are_404(server: WebServer) -> None:
    assert get(server, "/nope").status_code == 404
    page = get(server, "/target-groups/" + quote("no-such-tg"))
    assert page.status_code == 404 and "no-such-tg" in page.text


def test_no_output_per_request(server: WebServer, capfd: pytest.CaptureFixture[str]) -> None:
    for path in ("/", "/metrics", "/healthz", "/readyz", "/nope", "/target-groups/x"):
        get(server, path)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


def test_stop_releases_the_port(holder: Holder) -> None:
    web = WebServer(holder.get, "127.0.0.1", 0)
    web.start()
    port = web.port
    assert get(web, "/healthz").status_code == 200
    web.stop()
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # free again
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/healthz", timeout=TIMEOUT)


# -- pages -------------------------------------------------------------------------------------


def test_landing_page_shows_the_open_gap_its_age_and_a_timeline(server: WebServer) -> None:
    response = get(server, "/")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "script-src" not in response.headers["Content-Security-Policy"]  # default-src 'none': no scripts
    page = response.text
    assert '<meta http-equiv="refresh" content="15">' in page
    banner = re.search(r'<section class="banner open" id="open-gaps">(.*?)</section>', page, re.S)
    assert banner is not None
    assert CHECKOUT_TG in banner.group(1)
    assert f"open for {OPEN_FOR_TEXT}" in banner.group(1)
    assert "shop/checkout" in banner.group(1) and "aws-load-balancer-controller" in banner.group(1)
    assert "<svg" in page and 'class="gap"' in page
    assert f'href="/target-groups/{CHECKOUT_TG}"' in page
    assert "version 0.1.0" in page and "shard 0 of 1" in page and "not ready" in page
    assert "snapshot 4s old" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_target_group_page_shows_flows_gaps_and_the_escaped_explanation(server: WebServer) -> None:
    response = get(server, "/target-groups/" + quote(CHECKOUT_TG))
    assert response.status_code == 200
    page = response.text
    assert '<section id="explanation">' in page
    assert "preserve_client_ip went false -&gt; true" in page and "&lt;no authorize yet&gt;" in page
    assert "source_not_covered" in page and "0 of 3" in page
    assert f"open for {OPEN_FOR_TEXT}" in page
    assert "revoke_before_authorize" in page  # its closed health-check gap
    # ... named with its trigger: who flipped the attribute (role/session), what and when
    # (with break chances inside the long role/session name)
    assert f"triggered by {TRIGGER_WHO} (preserve_client_ip.enabled=false) at " in page.replace("<wbr>", "")
    assert "revoke_without_restore" not in page  # the other target group's gap
    other = get(server, "/target-groups/" + quote(PAYMENTS_TG)).text
    assert "No explanation available" in other and "No open rule gaps" in other


def test_the_explanation_is_built_once_per_snapshot(holder: Holder) -> None:
    asked: list[tuple[Snapshot, str]] = []

    def provider(snapshot: Snapshot, name: str) -> str:
        asked.append((snapshot, name))
        return f"explained as of {format_time(snapshot.generated_at)}"

    with WebServer(holder.get, "127.0.0.1", 0, explain_provider=provider, clock=lambda: NOW) as web:
        pages = [get(web, "/target-groups/" + quote(CHECKOUT_TG)).text for _ in range(3)]
        first = holder.snapshot
        second = holder.snapshot = sample_snapshot(NOW + timedelta(seconds=30))  # the daemon publishes again
        later = get(web, "/target-groups/" + quote(CHECKOUT_TG)).text
    assert asked == [(first, CHECKOUT_TG), (second, CHECKOUT_TG)]  # once per snapshot, by identity
    assert all(f"explained as of {format_time(first.generated_at)}" in page for page in pages)
    assert f"explained as of {format_time(second.generated_at)}" in later


def test_names_in_urls_do_not_grow_the_explanation_cache(holder: Holder) -> None:
    """Any /target-groups/<name> asks for an explanation; only the most recent few are kept."""
    with WebServer(
        holder.get, "127.0.0.1", 0, explain_provider=lambda _, name: name, clock=lambda: NOW
    ) as web:
        kept = web.explanations.size
        for i in range(kept + 20):
            assert get(web, f"/target-groups/hostile-{i}").status_code == 404
        assert len(web.explanations) == kept and web.explanations.builds == kept + 20
        assert "checkout" in get(web, "/target-groups/" + quote(CHECKOUT_TG)).text
        assert len(web.explanations) == kept


def test_a_failing_explain_provider_does_not_break_the_page(holder: Holder) -> None:
    def explode(snapshot: Snapshot, name: str) -> str | None:
        raise RuntimeError("boom")

    with WebServer(holder.get, "127.0.0.1", 0, explain_provider=explode, clock=lambda: NOW) as web:
        response = get(web, "/target-groups/" + quote(CHECKOUT_TG))
    assert response.status_code == 200
    assert "could not be built: RuntimeError" in response.text


def test_hostile_names_are_escaped_everywhere(holder: Holder) -> None:
    holder.snapshot = hostile_snapshot(NOW)
    name = holder.snapshot.target_groups[0].name
    with WebServer(holder.get, "127.0.0.1", 0, clock=lambda: NOW) as web:
        landing = get(web, "/").text
        tg_page = get(web, "/target-groups/" + quote(name, safe=""))
        metrics = get(web, "/metrics").text
    for page in (landing, tg_page.text):
        assert "<script" not in page and "<img" not in page and "<b>ns</b>" not in page
        assert "&lt;script&gt;alert(&#39;tg&#39;)&lt;/script&gt;" in page
        assert "&lt;img src=x&gt;" in page
    assert tg_page.status_code == 200
    assert f'href="/target-groups/{quote(name, safe="")}"' in landing
    assert (
        "target_group=\"<script>alert('tg')</script>\"" in metrics
    )  # exposition escapes only \ " and newline


def test_timeline_draws_gaps_of_the_last_six_hours_only() -> None:
    snapshot = sample_snapshot(NOW)
    old = dataclasses.replace(
        snapshot.recent_gaps[0],
        key="old",
        start=NOW - timedelta(hours=7),
        end=NOW - timedelta(hours=6, minutes=59),
    )
    svg = render_timeline((*snapshot.open_gaps, *snapshot.recent_gaps, old), NOW)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    titles = re.findall(r'<rect class="gap"[^>]*><title>([^<]*)</title>', svg)
    assert len(titles) == 3
    assert any("still open" in t and "requirement_change" in t for t in titles)
    assert any("health check gap" in t and "(1m 00s)" in t for t in titles)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (133, "2m 13s"), (3600, "1h 00m"), (3 * 86400 + 4 * 3600 + 5, "3d 4h")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_pages_render_without_a_server_for_an_empty_snapshot() -> None:
    empty = Snapshot(generated_at=NOW - timedelta(minutes=10))
    page = render_landing(empty, NOW)
    assert "No open rule gaps" in page and "No target groups watched" in page and "(stale)" in page
    assert render_target_group(empty, CHECKOUT_TG, NOW) is None


# -- basic auth and TLS ------------------------------------------------------------------------


def test_basic_auth(holder: Holder) -> None:
    users = {"oncall": hashlib.sha256(b"s3cret:with colon").hexdigest()}
    with WebServer(holder.get, "127.0.0.1", 0, basic_auth_users=users) as web:
        for path in ("/", "/metrics", "/api/snapshot.json", "/target-groups/" + CHECKOUT_TG):
            denied = get(web, path)
            assert denied.status_code == 401, path
            assert denied.headers["WWW-Authenticate"].startswith('Basic realm="sg-churn-exporter"')
        assert get(web, "/metrics", auth=("oncall", "wrong")).status_code == 401
        assert get(web, "/metrics", auth=("nobody", "s3cret:with colon")).status_code == 401
        garbage = {"Authorization": "Basic " + base64.b64encode(b"no-colon").decode()}
        assert get(web, "/metrics", headers=garbage).status_code == 401
        assert get(web, "/metrics", headers={"Authorization": "Basic %%%"}).status_code == 401
        assert get(web, "/metrics", auth=("oncall", "s3cret:with colon")).status_code == 200
        assert get(web, "/", auth=("oncall", "s3cret:with colon")).status_code == 200
        assert get(web, "/healthz").status_code == 200  # probes need no credentials
        assert get(web, "/readyz").status_code == 503


def test_basic_auth_users_must_be_sha256_hex(holder: Holder) -> None:
    with pytest.raises(ValueError, match="sha256"):
        WebServer(holder.get, "127.0.0.1", 0, basic_auth_users={"oncall": "plaintext"})


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and localhost (cryptography comes with moto)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


def test_tls_with_a_self_signed_certificate(holder: Holder, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    with WebServer(holder.get, "127.0.0.1", 0, tls_cert_file=str(cert), tls_key_file=str(key)) as web:
        assert web.url.startswith("https://127.0.0.1:")
        # A client that connects and never starts the handshake must not stall the others.
        with socket.create_connection(("127.0.0.1", web.port), timeout=TIMEOUT):
            response = requests.get(web.url + "/metrics", verify=str(cert), timeout=TIMEOUT)
        assert response.status_code == 200 and "sgchurn_up" in response.text
        assert requests.get(web.url + "/healthz", verify=str(cert), timeout=TIMEOUT).text == "ok\n"
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(web.url + "/healthz", timeout=TIMEOUT)  # not trusted without the cert
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{web.port}/healthz", timeout=TIMEOUT)  # TLS only


def test_a_key_without_a_certificate_is_refused(holder: Holder) -> None:
    with pytest.raises(ValueError, match="tls_cert_file"):
        WebServer(holder.get, "127.0.0.1", 0, tls_key_file="/nonexistent.key")


# -- Chromium ----------------------------------------------------------------------------------


def png_pixels(data: bytes, max_rows: int) -> tuple[int, int, list[list[tuple[int, int, int]]]]:
    """Width, height and the first `max_rows` rows of RGB pixels of an 8-bit RGB/RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), (depth, colour)
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompressobj().decompress(idat, max_rows * (stride + 1))
    rows: list[list[tuple[int, int, int]]] = []
    previous = bytearray(stride)
    for r in range(min(max_rows, height)):
        line = raw[r * (stride + 1) : (r + 1) * (stride + 1)]
        filter_type, row = line[0], bytearray(line[1:])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up = previous[i]
            up_left = previous[i - bpp] if i >= bpp else 0
            if filter_type == 1:
                row[i] = (row[i] + left) & 0xFF
            elif filter_type == 2:
                row[i] = (row[i] + up) & 0xFF
            elif filter_type == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                predictor = left if pa <= pb and pa <= pc else (up if pb <= pc else up_left)
                row[i] = (row[i] + predictor) & 0xFF
        rows.append([(row[i], row[i + 1], row[i + 2]) for i in range(0, stride, bpp)])
        previous = row
    return width, height, rows


def test_chromium_renders_the_landing_page(server: WebServer, tmp_path: Path) -> None:
    screenshot = tmp_path / "landing.png"
    done = chromium(
        tmp_path, "profile-shot", f"--screenshot={screenshot}", "--window-size=1400,1000", server.url + "/"
    )
    print(f"landing page screenshot: {screenshot}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert screenshot.is_file(), done.stderr[-2000:]
    data = screenshot.read_bytes()
    assert len(data) > 10_000
    width, height, rows = png_pixels(data, max_rows=200)
    assert (width, height) == (1400, 1000)
    colours = {pixel for row in rows for pixel in row}
    assert len(colours) > 50, "the page rendered as (nearly) one colour"
    assert (0x1F, 0x29, 0x33) in colours, "the dark header is missing"
    assert (0xB9, 0x1C, 0x1C) in colours, "the red open-gap banner is missing"


def test_chromium_dom_has_the_open_gap_banner(server: WebServer, tmp_path: Path) -> None:
    done = chromium(tmp_path, "profile-dom", "--dump-dom", server.url + "/")
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="open-gaps"' in dom
    assert "1 open rule gap" in dom and f"open for {OPEN_FOR_TEXT}" in dom and CHECKOUT_TG in dom
    assert dom.count("<svg") == 4  # two target groups, a 6 h and a last-hour strip each
    assert dom.count('class="timeline tl-6h"') == dom.count('class="timeline tl-1h"') == 2


def test_the_snapshot_json_is_valid_after_a_swap(server: WebServer, holder: Holder) -> None:
    holder.snapshot = dataclasses.replace(sample_snapshot(NOW, ready=True), open_gaps=())
    data = json.loads(get(server, "/api/snapshot.json").text)
    assert data["ready"] is True and data["open_gaps"] == []
    assert "No open rule gaps" in get(server, "/").text


def test_warm_renders_the_new_snapshot_before_any_scrape() -> None:
    from datetime import UTC, datetime

    from exporter.metrics import ExpositionCache
    from tests.snapshot_samples import sample_snapshot

    now = datetime.now(UTC)
    current = [sample_snapshot(now)]
    cache = ExpositionCache(lambda: current[0])
    first = cache.body("text", gzipped=True)
    assert cache.renders == 1
    current[0] = sample_snapshot(now)  # a publish swaps a new snapshot in
    cache.warm()
    assert cache.renders == 2
    assert cache.body("text", gzipped=True) == first  # the scrape finds it rendered
    assert cache.renders == 2
