"""The landing page at scale: problems first, paged, filtered by `?q=`, bad queries answered 400,
other queries cached per snapshot in a bounded cache (exporter/web_landing.py, web_limits.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape
from urllib.parse import quote

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.daemon.snapshot import Snapshot, TargetGroupView
from exporter.web import WebServer
from exporter.web_landing import (
    FINE,
    MAX_QUERY_CHARS,
    NOT_FULLY_REACHABLE,
    OPEN_GAP,
    RECENT_GAP,
    BadQuery,
    LandingQuery,
    listing,
    parse_query,
    rank,
)
from exporter.web_limits import PerSnapshot
from exporter.web_page import render_landing
from tests.snapshot_samples import gap, target_group

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMEOUT = 30
DASH = "\u2013"  # en dash: "showing 1-100"

#: One target group's kind: (open gap, admitted traffic of 4 targets, recent closed gap).
KINDS = st.tuples(st.booleans(), st.sampled_from([0, 2, 4, 4, 4]), st.booleans())


def fleet(kinds: list[tuple[bool, int, bool]], accounts: int = 2) -> Snapshot:
    """Target groups of the given kinds, names shared between accounts and namespaces repeated."""
    tgs, open_gaps, recent = [], [], []
    for i, (is_open, traffic_ok, is_recent) in enumerate(kinds):
        tg = target_group(
            f"k8s-ns{i % 3}-svc{i % 5}-{i // accounts:04d}",
            namespace=f"ns{i % 3}",
            service=f"svc{i % 5}",
            mode="sg",
            scheme="internal",
            target_type="ip",
            preserve=False,
            targets=4,
            traffic_ok=traffic_ok,
            health_ok=4,
            account=f"{111111111111 + i % accounts}",
        )
        tgs.append(tg)
        if is_open:
            open_gaps.append(gap(tg, "traffic", NOW - timedelta(minutes=5), None, "pending_restore", "x"))
        if is_recent:
            recent.append(gap(tg, "traffic", NOW - timedelta(hours=1), NOW - timedelta(minutes=50), "c", "x"))
    return Snapshot(
        generated_at=NOW,
        target_groups=tuple(tgs),
        open_gaps=tuple(open_gaps),
        recent_gaps=tuple(recent),
    )


def _ranks(snapshot: Snapshot) -> dict[str, int]:
    open_arns = {g.target_group_arn for g in snapshot.open_gaps}
    recent_arns = {g.target_group_arn for g in snapshot.recent_gaps}
    return {tg.arn: rank(tg, open_arns, recent_arns) for tg in snapshot.target_groups}


def _order_key(tg: TargetGroupView, ranks: dict[str, int]) -> tuple[int, str, str, str, str]:
    return (ranks[tg.arn], tg.namespace, tg.service, tg.name, tg.arn)


# -- order and pages --------------------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(kinds=st.lists(KINDS, max_size=60), page_size=st.integers(1, 25), extra=st.integers(0, 5))
def test_every_target_group_is_on_exactly_one_page_problems_first(
    kinds: list[tuple[bool, int, bool]], page_size: int, extra: int
) -> None:
    snap = fleet(kinds)
    ranks = _ranks(snap)
    first = listing(snap, LandingQuery(), page_size)
    assert first.matched == len(kinds) and first.pages == max(1, -(-len(kinds) // page_size))
    seen: list[TargetGroupView] = []
    for number in range(1, first.pages + 1):
        page = listing(snap, LandingQuery(number), page_size)
        assert page.page == number and page.clamped_from is None
        assert 0 < len(page.rows) <= page_size or (not kinds and not page.rows)
        assert (page.first, page.last) == (
            (len(seen) + 1, len(seen) + len(page.rows)) if page.rows else (0, 0)
        )
        assert (page.previous_href is None) == (number == 1)
        assert (page.next_href is None) == (number == first.pages)
        opened_here = sum(ranks[tg.arn] == OPEN_GAP for tg in page.rows)
        assert page.open_elsewhere == sum(r == OPEN_GAP for r in ranks.values()) - opened_here
        seen.extend(page.rows)
    # Each once, all of them, in problem order then namespace/service/name.
    assert sorted(tg.arn for tg in seen) == sorted(tg.arn for tg in snap.target_groups)
    keys = [_order_key(tg, ranks) for tg in seen]
    assert keys == sorted(keys)
    # A page past the end shows the last one and says which was asked for.
    past = listing(snap, LandingQuery(first.pages + 1 + extra), page_size)
    assert past.page == first.pages and past.clamped_from == first.pages + 1 + extra
    assert past.rows == listing(snap, LandingQuery(first.pages), page_size).rows


def test_ranks_follow_the_problems_and_the_summary_counts_them() -> None:
    # open+unreachable, partly reachable, recent only, fine, unreachable and recent, open only
    snap = fleet(
        [
            (True, 0, False),
            (False, 2, False),
            (False, 4, True),
            (False, 4, False),
            (False, 0, True),
            (True, 4, True),
        ]
    )
    ranks = [_ranks(snap)[tg.arn] for tg in snap.target_groups]
    assert ranks == [OPEN_GAP, NOT_FULLY_REACHABLE, RECENT_GAP, FINE, NOT_FULLY_REACHABLE, OPEN_GAP]
    summary = listing(snap, LandingQuery()).summary
    assert (summary.watched, summary.open_gaps, summary.not_fully_reachable, summary.recent_gaps) == (
        6,
        2,
        3,
        3,
    )
    page = render_landing(snap, NOW)
    text = re.sub(
        r"<[^>]+>", "", page[page.index('id="summary"') : page.index("</p>", page.index('id="summary"'))]
    )
    assert (
        "6 target groups watched · 2 with open gaps · 3 unreachable or partly reachable · 3 with recent gaps"
        in unescape(text)
    )


def test_open_gaps_beyond_the_first_page_are_counted_and_the_banner_lists_them_all() -> None:
    snap = fleet([(True, 4, False)] * 130 + [(False, 4, False)] * 20)
    page = render_landing(snap, NOW)
    assert page.count('class="has-open"') == 100
    assert re.search(r'id="open-elsewhere">30 more with open gaps on other pages\.<', page)
    banner = page[page.index('id="open-gaps"') : page.index('id="target-groups"')]
    assert banner.count("<li>") == 130
    assert f"Showing 1{DASH}100 of 150;" in page and 'href="/?page=2"' in page
    second = render_landing(snap, NOW, query=LandingQuery(2))
    assert second.count('class="has-open"') == 30 and "100 more with open gaps on other pages." in second
    assert 'rel="prev" href="/?page=1"' in second and 'rel="next"' not in second


def test_a_page_past_the_end_shows_the_last_page_and_says_so() -> None:
    snap = fleet([(False, 4, False)] * 150)
    page = render_landing(snap, NOW, query=LandingQuery(7))
    assert "Page 7 is past the end: showing the last page, 2." in page
    assert f"Showing 101{DASH}150 of 150;" in page and page.count("<tr>") + page.count("<tr ") > 50


# -- the filter ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("NS1", lambda tg: tg.namespace == "ns1"),
        ("svc4", lambda tg: tg.service == "svc4"),
        ("-0003", lambda tg: tg.name.endswith("-0003")),
        ("111111111112", lambda tg: tg.aws_account_id == "111111111112"),
        ("nothing-like-it", lambda tg: False),
    ],
)
def test_the_filter_is_a_case_insensitive_substring_of_namespace_service_name_or_account(
    q: str, expected: object
) -> None:
    snap = fleet([(i % 7 == 0, 4, False) for i in range(40)])
    chosen = listing(snap, LandingQuery(1, q))
    assert callable(expected)
    want = {tg.arn for tg in snap.target_groups if expected(tg)}
    assert {tg.arn for tg in chosen.rows} == want and chosen.matched == len(want)
    assert chosen.summary.watched == 40  # the summary is over everything, not the filter
    page = render_landing(snap, NOW, query=LandingQuery(1, q))
    assert f'value="{q}"' in page
    if want:
        assert f"of {len(want)} matching “{q}” (of 40)" in page
    else:
        assert f"No target group matches “{q}” (of 40)." in page and "No target groups match." in page


def test_a_hostile_query_is_escaped_everywhere_it_is_shown() -> None:
    hostile = '"><script>alert(1)</script>&amp;'
    snap = fleet([(False, 4, False)] * 150)
    page = render_landing(snap, NOW, query=LandingQuery(1, hostile))
    assert "<script>" not in page and hostile not in page
    assert 'value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;"' in page
    # The page links keep the filter, percent-encoded.
    many = fleet([(False, 4, False)] * 150)
    assert 'href="/?page=2&amp;q=svc"' in render_landing(many, NOW, query=LandingQuery(1, "svc"))


# -- the query string --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("", LandingQuery()),
        ("page=", LandingQuery()),
        ("page=3", LandingQuery(3)),
        ("q=+Foo+Bar+&page=2", LandingQuery(2, "Foo Bar")),
        ("q=%C3%A9t%C3%A9", LandingQuery(1, "été")),
        ("utm_source=x&q=a", LandingQuery(1, "a")),
        ("q=" + "x" * MAX_QUERY_CHARS, LandingQuery(1, "x" * MAX_QUERY_CHARS)),
    ],
)
def test_good_query_strings(raw: str, expected: LandingQuery) -> None:
    assert parse_query(raw) == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("page=abc", "'page' must be a whole number"),
        ("page=-1", "'page' must be a whole number"),
        ("page=0", "'page' must be a whole number"),
        ("page=1e3", "'page' must be a whole number"),
        ("page=%EF%BC%91", "'page' must be a whole number"),  # a fullwidth digit one
        ("page=99999999999999999999", "'page' must be a whole number"),
        ("page=1&page=2", "'page' is given more than once"),
        ("q=a&q=b", "'q' is given more than once"),
        ("q=" + "x" * (MAX_QUERY_CHARS + 1), f"longer than {MAX_QUERY_CHARS} characters"),
        ("q=" + "x" * 5000, "the query string is too long"),
        ("q=%ff%fe", "not valid percent-encoded UTF-8"),
        ("q=a%00b", "control characters"),
        ("q=a%0d%0aSet-Cookie:x", "control characters"),
        ("&".join(f"k{i}=v" for i in range(30)), "at most 20 fields"),
    ],
)
def test_bad_query_strings_are_refused_with_a_reason_that_does_not_repeat_them(raw: str, says: str) -> None:
    with pytest.raises(BadQuery) as caught:
        parse_query(raw)
    assert says in str(caught.value)
    assert "xxxx" not in str(caught.value) and "Set-Cookie" not in str(caught.value)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_query_string_is_parsed_or_refused_never_crashes(raw: str) -> None:
    try:
        query = parse_query(quote(raw, safe="=&"))
    except BadQuery:
        return
    assert query.page >= 1 and len(query.q) <= MAX_QUERY_CHARS


# -- the bounded cache -------------------------------------------------------------------------------


def test_recent_per_snapshot_keeps_the_most_recently_used_few_and_forgets_on_a_new_snapshot() -> None:
    built: list[str] = []
    cache: PerSnapshot[str, str] = PerSnapshot(lambda _s, key: built.append(key) or key.upper(), size=3)
    one, two = Snapshot(generated_at=NOW), Snapshot(generated_at=NOW)
    assert [cache.get(one, k) for k in "abc"] == ["A", "B", "C"]
    assert cache.get(one, "a") == "A" and built == ["a", "b", "c"]  # a hit, and now the newest
    cache.get(one, "d")  # forgets b, the least recently used
    assert len(cache) == 3
    cache.get(one, "a")
    cache.get(one, "b")
    assert built == ["a", "b", "c", "d", "b"]
    for i in range(1000):
        cache.get(one, f"hostile-{i}")
    assert len(cache) == 3 and cache.builds == 1005
    cache.get(two, "a")  # a new snapshot starts afresh
    assert len(cache) == 1 and built[-1] == "a"
    with pytest.raises(ValueError, match="size"):
        PerSnapshot(lambda _s, key: key, size=0)


@pytest.fixture
def server() -> Iterator[WebServer]:
    snap = fleet([(i % 40 == 0, 4 if i % 9 else 2, False) for i in range(250)])
    web = WebServer(lambda: snap, "127.0.0.1", 0, clock=lambda: NOW)
    web.start()
    yield web
    web.stop()


def test_the_server_answers_pages_and_filters_and_caches_them_per_snapshot(server: WebServer) -> None:
    def get(path: str) -> requests.Response:
        return requests.get(server.url + path, timeout=TIMEOUT)

    for _ in range(3):
        default = get("/")
        assert default.status_code == 200 and f"Showing 1{DASH}100 of 250;" in default.text
    assert server.landing.renders == 1 and len(server.landing_queries) == 0
    # The refresh reloads the same URL (no URL in it), so a filter or page survives it.
    assert '<meta http-equiv="refresh" content="15">' in default.text
    # The search form submits to this origin: the CSP allows that and nothing else.
    assert "form-action 'self'" in default.headers["Content-Security-Policy"]
    assert '<form class="filter" method="get" action="/" role="search"><label for="q">' in default.text

    third = get("/?page=3")
    assert f"Showing 201{DASH}250 of 250;" in third.text
    filtered = get("/?q=SVC4&page=1")
    assert filtered.status_code == 200 and "of 50 matching “SVC4” (of 250)" in filtered.text
    assert get("/?page=3").text == third.text and server.landing_queries.builds == 2

    for i in range(server.landing_queries.size + 20):
        assert get(f"/?q=hostile-{i}").status_code == 200
    assert len(server.landing_queries) == server.landing_queries.size
    assert server.landing_queries.builds == 2 + server.landing_queries.size + 20
    assert server.landing.renders == 1


@pytest.mark.parametrize(
    "path",
    ["/?page=abc", "/?page=-2", "/?q=%ff", "/?q=" + "A" * (MAX_QUERY_CHARS + 1), "/?q=%3Cscript%3E&q=x"],
)
def test_the_server_answers_a_bad_query_400_in_plain_text_without_echoing_it(
    server: WebServer, path: str
) -> None:
    answer = requests.get(server.url + path, timeout=TIMEOUT)
    assert answer.status_code == 400, answer.text[:200]
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert (
        answer.text.startswith("bad request: ")
        and "<script>" not in answer.text
        and "AAAA" not in answer.text
    )
    assert len(server.landing_queries) == 0 and server.landing.renders == 0
