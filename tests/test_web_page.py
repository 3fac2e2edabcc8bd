"""The landing and target-group pages for on-call: a timeline that shows every gap and what is unknown,
links to runbooks and dashboards, a layout that keeps every column at 800 px, and an accessibility
pass; checked as HTML and in headless Chromium at 1400 and 800 px (screenshots kept in tmp_path).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import yaml

from benchmarks.synth_snapshot import NOW as SYNTH_NOW
from benchmarks.synth_snapshot import build_snapshot
from exporter.config import ConfigError, load_settings
from exporter.daemon.snapshot import Snapshot
from exporter.web import WebServer
from exporter.web_links import PAGE_ALERTS, PageLinks
from exporter.web_page import render_landing, render_target_group
from exporter.web_timeline import MIN_GAP_PX, render_gap_list, render_timeline
from tests.browser import chromium
from tests.snapshot_samples import CHECKOUT_TG, gap, sample_snapshot

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)
WATCHED_SINCE = NOW - timedelta(hours=4, minutes=20)
GRAFANA = "https://grafana.example.com/"
RUNBOOKS = "https://wiki.example.com/sg-churn/runbooks.md"
TIMEOUT = 30  # seconds: a hang guard for requests, not a performance assertion


def snapshot() -> Snapshot:
    return dataclasses.replace(sample_snapshot(NOW), watched_since=WATCHED_SINCE)


def _rects(svg: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w[\w-]*)="([^"]*)"', m)) for m in re.findall(r"<rect ([^>]*)>", svg)]


# -- the timeline strip -------------------------------------------------------------------------------


def test_axis_has_clock_ticks_for_six_hours_and_for_the_last_hour() -> None:
    six = render_timeline([], NOW)
    assert re.findall(r">(\d\d:\d\d)</text>", six) == ["07:00", "08:00", "09:00", "10:00", "11:00"]
    # A tick too near an end keeps its line but not its label (the ends say -6 h and now).
    late = render_timeline([], NOW + timedelta(minutes=50))
    assert re.findall(r">(\d\d:\d\d)</text>", late) == ["08:00", "09:00", "10:00", "11:00", "12:00"]
    hour = render_timeline([], NOW, window=timedelta(hours=1))
    assert re.findall(r">(\d\d:\d\d)</text>", hour) == ["11:10", "11:20", "11:30", "11:40", "11:50"]
    assert ">-1 h</text>" in hour and ">now</text>" in hour


def test_each_gap_is_its_own_block_at_least_the_minimum_width_with_start_and_end() -> None:
    tg = snapshot().target_groups[0]
    start = NOW - timedelta(hours=2)
    close = [  # two one-second gaps a minute apart: less than a pixel apart at 6 h in 200 px
        gap(tg, "traffic", start, start + timedelta(seconds=1), "revoke_before_authorize", "lbc"),
        gap(tg, "traffic", start + timedelta(minutes=1), start + timedelta(minutes=1, seconds=1), "x", "lbc"),
    ]
    svg = render_timeline(close, NOW)
    blocks = [r for r in _rects(svg) if r.get("class") == "gap"]
    assert len(blocks) == 2
    assert all(float(b["width"]) >= MIN_GAP_PX for b in blocks)
    assert all(b["stroke"] == "#fff" for b in blocks)  # a white edge keeps neighbours apart
    titles = re.findall(r'<rect class="gap"[^>]*><title>([^<]*)</title>', svg)
    assert titles[0].startswith("#1 traffic gap 2026-11-25 10:00:00Z to 2026-11-25 10:00:01Z (1s)")
    assert titles[1].startswith("#2 traffic gap 2026-11-25 10:01:00Z to 2026-11-25 10:01:01Z (1s)")
    listed = render_gap_list(close, NOW)
    assert listed.count("<li>") == 2 and "10:01:00Z to 2026-11-25 10:01:01Z" in listed


def test_the_span_before_the_exporter_started_is_unknown_not_green() -> None:
    tg = snapshot().target_groups[0]
    since = NOW - timedelta(hours=2)
    before = gap(
        tg,
        "health_check",
        NOW - timedelta(hours=3),
        NOW - timedelta(hours=3) + timedelta(seconds=60),
        "revoke_before_authorize",
        "lbc",
    )  # found later in CloudTrail: still drawn, in red
    svg = render_timeline([before], NOW, watched_since=since)
    [unknown] = [r for r in _rects(svg) if r.get("class") == "unknown"]
    assert float(unknown["x"]) == 0 and abs(float(unknown["width"]) - 200 * 4 / 6) < 0.1
    greens = re.findall(r'<line x1="([\d.]+)" y1="[\d.]+" x2="200" y2="[\d.]+" stroke="#2f9e44"', svg)
    assert len(greens) == 2 and all(abs(float(x) - 133.3) < 0.1 for x in greens)
    assert "not watched before 2026-11-25 10:00:00Z (unknown)" in svg
    assert len([r for r in _rects(svg) if r.get("class") == "gap"]) == 1
    # Watched for the whole window: nothing unknown, green from the left edge.
    whole = render_timeline([], NOW, watched_since=NOW - timedelta(hours=7))
    assert 'class="unknown"' not in whole and '<line x1="0.0" y1="8.0" x2="200"' in whole


# -- links --------------------------------------------------------------------------------------------


def _alert_anchors() -> dict[str, str]:
    anchors = {}
    for path in sorted((ROOT / "alerts").glob("*.rules.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    anchors[rule["alert"]] = rule["annotations"]["runbook_url"].split("#", 1)[1]
    return anchors


def test_every_alert_the_page_links_has_its_runbook_section() -> None:
    anchors = _alert_anchors()
    headings = re.findall(r"^## (\S+)$", (ROOT / "docs" / "runbooks.md").read_text(), flags=re.MULTILINE)
    page = render_landing(snapshot(), NOW, PageLinks(RUNBOOKS, GRAFANA))
    linked = set(re.findall(rf'href="{re.escape(RUNBOOKS)}#([a-z]+)"', page))
    # The sample has an open gap, a 0 % traffic target group, closed gaps, a source down, a failing job.
    assert linked == {a.lower() for a in PAGE_ALERTS}
    for alert in PAGE_ALERTS:
        assert anchors[alert] == alert.lower(), alert  # the alert rule's runbook_url points there too
        assert alert in headings, f"docs/runbooks.md has no '## {alert}' section"
    assert f'href="{RUNBOOKS}">runbooks</a>' in page  # the footer: the runbooks themselves


def test_target_groups_link_to_their_grafana_dashboard_only_with_a_base_url() -> None:
    snap = snapshot()
    assert 'class="dashboard"' not in render_landing(snap, NOW)
    page = render_landing(snap, NOW, PageLinks(grafana_base_url=GRAFANA))
    hrefs = re.findall(r'<a class="dashboard" href="([^"]+)"', page)
    assert len(hrefs) == len(snap.target_groups)
    for href, tg in zip(
        hrefs,
        sorted(snap.target_groups, key=lambda t: t.arn != snap.open_gaps[0].target_group_arn),
        strict=True,
    ):
        url = urlsplit(href.replace("&amp;", "&"))
        assert (
            f"{url.scheme}://{url.netloc}{url.path}"
            == "https://grafana.example.com/d/sgchurn-target-group/sg-churn-target-group"
        )
        query = parse_qs(url.query)
        assert query["var-target_group"] == [tg.name] and query["var-account"] == [tg.aws_account_id]
        assert query["var-namespace"] == [tg.namespace] and query["var-service"] == [tg.service]
    tg_page = render_target_group(snap, CHECKOUT_TG, NOW, links=PageLinks(grafana_base_url=GRAFANA))
    assert tg_page is not None and "target group dashboard</a>" in tg_page


@pytest.mark.parametrize("field", ["runbook_base_url", "grafana_base_url"])
@pytest.mark.parametrize(
    "value", ["grafana.example.com", "javascript:alert(1)", "https://x/#frag", "https://a b"]
)
def test_link_bases_must_be_http_urls(field: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, environ={"AWS_REGION": "eu-west-1"}, overrides={"web": {field: value}})
    assert caught.value.field == f"web.{field}"
    good = load_settings(
        None, environ={"AWS_REGION": "eu-west-1"}, overrides={"web": {field: "https://grafana.example.com/g"}}
    )
    assert getattr(good.web, field) == "https://grafana.example.com/g"


# -- HTML semantics -----------------------------------------------------------------------------------


def test_tables_have_captions_and_scoped_headers_and_headings_do_not_skip() -> None:
    snap = snapshot()
    for page in (render_landing(snap, NOW), render_target_group(snap, CHECKOUT_TG, NOW)):
        assert page is not None and '<html lang="en">' in page
        tables = re.findall(r"<table.*?</table>", page, flags=re.DOTALL)
        assert tables
        for table in tables:
            assert re.search(r"<caption[^>]*>[^<]+</caption>", table), table[:200]
            headers = re.findall(r"<th( [^>]*)?>", table)
            assert headers and all(h and re.search(r'scope="(col|row)"', h) for h in headers), headers
        levels = [int(n) for n in re.findall(r"<h([1-6])[ >]", page)]
        assert levels.count(1) == 1 and levels[0] == 1
        assert all(b - a <= 1 for a, b in itertools.pairwise(levels)), levels
        assert all('aria-label="' in svg for svg in re.findall(r"<svg [^>]*>", page))


# -- in Chromium --------------------------------------------------------------------------------------


#: Run in the page after it loaded: what overflows the viewport, which text fails WCAG AA contrast
#: (4.5:1, 3:1 for large text) against the first opaque background behind it, and which strip shows.
MEASURE = r"""
<script>
window.addEventListener("load", function () {
  function rgb(s) { var m = /rgba?\(([^)]+)\)/.exec(s || ""); if (!m) return null;
    var p = m[1].split(",").map(parseFloat); return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1}; }
  function lum(c) { function f(v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); }
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b); }
  function background(el) { while (el) { var c = rgb(getComputedStyle(el).backgroundColor);
    if (c && c.a > 0.99) return c; el = el.parentElement; } return {r: 255, g: 255, b: 255, a: 1}; }
  var out = {innerWidth: innerWidth, scrollWidth: document.documentElement.scrollWidth, overflow: [],
             contrast: [], texts: 0, cells: 0, hiddenCells: 0};
  function clipped(el) { for (var p = el; p; p = p.parentElement) { if (p.getBoundingClientRect().width <= 1
    && getComputedStyle(p).overflow === "hidden") return true; } return false; }  // .sr-only, a stacked thead
  document.querySelectorAll("body *").forEach(function (el) {
    if (clipped(el)) return;
    var r = el.getBoundingClientRect();
    if (r.width > 1 && r.right > innerWidth + 0.5) out.overflow.push(el.tagName + "." + el.getAttribute("class") + " right=" + Math.round(r.right));
  });
  document.querySelectorAll("td, th").forEach(function (el) {
    var r = el.getBoundingClientRect(); out.cells += 1;
    if (el.closest("caption, thead")) return;
    if (r.width <= 1 || r.right > innerWidth + 0.5 || r.left < -0.5) out.hiddenCells += 1;
  });
  var walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    var node = walker.currentNode, el = node.parentElement;
    if (!node.textContent.trim() || !el || el.closest("title, script, style")) continue;
    var cs = getComputedStyle(el), r = el.getBoundingClientRect();
    if (cs.display === "none" || cs.visibility === "hidden" || r.width <= 1) continue;
    var svg = el.closest("svg");
    var fg = rgb(svg ? cs.fill : cs.color), bg = background(svg ? svg.parentElement : el);
    var a = lum(fg), b = lum(bg), ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    var size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
    var large = size >= 24 || (bold && size >= 18.66);
    out.texts += 1;
    if (ratio < (large ? 3 : 4.5)) out.contrast.push(node.textContent.trim().slice(0, 40) + " " + ratio.toFixed(2));
  }
  out.controls = 0; out.unlabelled = [];
  document.querySelectorAll("input, select, textarea, button").forEach(function (el) {
    out.controls += 1; var r = el.getBoundingClientRect();
    if (el.tagName !== "BUTTON" && !(el.labels && el.labels.length)) out.unlabelled.push(el.outerHTML.slice(0, 80));
    if (r.width < 24 || r.height < 20 || r.right > innerWidth + 0.5) out.unlabelled.push("too small or off screen: " + el.outerHTML.slice(0, 80));
  });
  out.tl6 = Array.prototype.map.call(document.querySelectorAll("svg.tl-6h"), function (e) { return getComputedStyle(e).display; });
  out.tl1 = Array.prototype.map.call(document.querySelectorAll("svg.tl-1h"), function (e) { return getComputedStyle(e).display; });
  var pre = document.createElement("pre"); pre.id = "measure"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


@pytest.fixture
def server() -> Iterator[WebServer]:
    snap = snapshot()
    web = WebServer(
        lambda: snap,
        "127.0.0.1",
        0,
        explain_provider=lambda _, name: {CHECKOUT_TG: "traffic: NOT ADMITTED [source_not_covered]"}.get(
            name
        ),
        clock=lambda: NOW,
        links=PageLinks(RUNBOOKS, GRAFANA),
    )
    web.start()
    yield web
    web.stop()


PAGES = {"landing": "/", "target-group": f"/target-groups/{CHECKOUT_TG}"}


def measure(server: WebServer, tmp_path: Path, path: str, width: int, fragment: str = "") -> dict[str, Any]:
    """The page's HTML with MEASURE at the end of its body, loaded from a file at `width` px."""
    html = requests.get(server.url + path, timeout=TIMEOUT).text
    page = tmp_path / f"measure-{width}-{abs(hash((path, fragment)))}.html"
    page.write_text(html.replace("</body>", MEASURE + "</body>"))
    done = chromium(
        tmp_path, f"profile-m{width}", f"--window-size={width},1000", "--dump-dom", page.as_uri() + fragment
    )
    assert done.returncode == 0, done.stderr[-2000:]
    found = re.search(r'<pre id="measure">(.*?)</pre>', done.stdout, flags=re.DOTALL)
    assert found, done.stdout[-2000:]
    result: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return result


@pytest.mark.parametrize("width", [1400, 800])
@pytest.mark.parametrize("page", sorted(PAGES))
def test_in_chromium_every_column_fits_and_all_text_has_aa_contrast(
    server: WebServer, tmp_path: Path, page: str, width: int
) -> None:
    screenshot = tmp_path / f"{page}-{width}.png"
    done = chromium(
        tmp_path,
        f"profile-s{width}",
        f"--screenshot={screenshot}",
        f"--window-size={width},1400",
        server.url + PAGES[page],
    )
    print(f"{page} at {width} px: {screenshot}")
    assert done.returncode == 0 and screenshot.stat().st_size > 10_000, done.stderr[-2000:]

    result = measure(server, tmp_path, PAGES[page], width)
    assert result["innerWidth"] == width
    assert result["scrollWidth"] <= width, result["overflow"]
    assert result["overflow"] == [], result["overflow"]
    assert result["cells"] > 10 and result["hiddenCells"] == 0
    assert result["texts"] > 40 and result["contrast"] == [], result["contrast"]
    assert result["unlabelled"] == [], result["unlabelled"]
    # The 6 h strips show and the last-hour ones wait for the zoom.
    assert result["tl6"] and set(result["tl6"]) == {"block"} and set(result["tl1"]) == {"none"}


@pytest.fixture
def fleet_server() -> Iterator[WebServer]:
    """250 target groups: the landing page has three pages, the filter and the pager."""
    snap = build_snapshot(250)
    web = WebServer(lambda: snap, "127.0.0.1", 0, clock=lambda: SYNTH_NOW, links=PageLinks(RUNBOOKS, GRAFANA))
    web.start()
    yield web
    web.stop()


@pytest.mark.parametrize("width", [1400, 800])
def test_in_chromium_the_filter_and_pager_fit_are_labelled_and_have_aa_contrast(
    fleet_server: WebServer, tmp_path: Path, width: int
) -> None:
    path = "/?q=TEAM&page=2"
    html = requests.get(fleet_server.url + path, timeout=TIMEOUT).text
    assert 'value="TEAM"' in html and html.count('<nav class="pager"') == 2
    result = measure(fleet_server, tmp_path, path, width)
    assert result["scrollWidth"] <= width and result["overflow"] == [], result["overflow"]
    assert result["cells"] > 100 and result["hiddenCells"] == 0
    assert result["texts"] > 40 and result["contrast"] == [], result["contrast"]
    assert result["controls"] == 2 and result["unlabelled"] == [], result["unlabelled"]
    screenshot = tmp_path / f"landing-page2-{width}.png"
    done = chromium(
        tmp_path,
        f"profile-p{width}",
        f"--screenshot={screenshot}",
        f"--window-size={width},1000",
        fleet_server.url + path,
    )
    print(f"landing page 2, filtered, at {width} px: {screenshot}")
    assert done.returncode == 0 and screenshot.stat().st_size > 10_000, done.stderr[-2000:]


def test_in_chromium_the_zoom_shows_the_last_hour(server: WebServer, tmp_path: Path) -> None:
    result = measure(server, tmp_path, "/", 1400, fragment="#last-hour")
    assert set(result["tl6"]) == {"none"} and set(result["tl1"]) == {"block"}
    screenshot = tmp_path / "landing-last-hour.png"
    done = chromium(
        tmp_path,
        "profile-zoom",
        f"--screenshot={screenshot}",
        "--window-size=1400,900",
        server.url + "/#last-hour",
    )
    print(f"landing, last hour: {screenshot}")
    assert done.returncode == 0 and screenshot.is_file(), done.stderr[-2000:]
