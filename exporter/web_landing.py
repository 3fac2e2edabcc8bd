"""What the landing page lists: its query (`?page=N&q=text`), the order, the filter and the page.

Pure functions of the snapshot; exporter/web_page.py renders what they choose.

- Order: problems first. Open gap, then not fully reachable (some flow admits fewer than all
  of its targets), then a recent closed gap, then the rest; within each, namespace, service,
  name (and ARN, so equal names in two accounts keep one order).
- Pages of `PAGE_SIZE`. The open-gap banner above the table lists every open gap whatever the
  page or filter, and a page that does not show every target group with an open gap says how
  many are on other pages (`Listing.open_elsewhere`).
- `q`: a case-insensitive substring of the namespace, service, target-group name or account;
  at most `MAX_QUERY_CHARS` characters, no control characters.
- Bad input: a `page` that is not a whole number from 1 to `MAX_PAGE`, a `q` too long or with
  control characters, a query string that is not valid percent-encoded UTF-8, or a parameter
  given twice raises `BadQuery` (the server answers 400 with its message, which never repeats
  the value). A page past the end is not an error (the list shrinks between refreshes): the
  last page is shown, and says so (`Listing.clamped_from`). Other parameters are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Set
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from exporter.daemon.snapshot import Snapshot, TargetGroupView

PAGE_SIZE = 100
MAX_QUERY_CHARS = 200
MAX_PAGE = 999_999
_PAGE = re.compile(r"[1-9][0-9]{0,5}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

#: Problem ranks, in page order.
OPEN_GAP, NOT_FULLY_REACHABLE, RECENT_GAP, FINE = range(4)


class BadQuery(ValueError):
    """A landing-page query string the page cannot honour; the message says why (never echoing it)."""


@dataclass(frozen=True)
class LandingQuery:
    page: int = 1
    q: str = ""

    @property
    def default(self) -> bool:
        """The page everyone gets at `/`: rendered once per snapshot."""
        return self.page == 1 and not self.q

    def href(self, page: int) -> str:
        """The URL of another page of the same list (the filter kept)."""
        params: dict[str, str | int] = {"page": page}
        if self.q:
            params["q"] = self.q
        return "/?" + urlencode(params)


def parse_query(query_string: str) -> LandingQuery:
    """The landing page's query from a URL's query string; BadQuery when it cannot be honoured."""
    if len(query_string) > 4 * MAX_QUERY_CHARS:
        raise BadQuery(f"the query string is too long (at most {MAX_QUERY_CHARS} characters of search text)")
    try:
        pairs = parse_qsl(query_string, keep_blank_values=True, errors="strict", max_num_fields=20)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadQuery("the query string is not valid percent-encoded UTF-8 with at most 20 fields") from exc
    values: dict[str, str] = {}
    for key, value in pairs:
        if key in ("page", "q"):
            if key in values:
                raise BadQuery(f"'{key}' is given more than once")
            values[key] = value
    page_text = values.get("page", "1").strip() or "1"
    if not _PAGE.fullmatch(page_text):
        raise BadQuery(f"'page' must be a whole number from 1 to {MAX_PAGE}")
    q = values.get("q", "").strip()
    if len(q) > MAX_QUERY_CHARS:
        raise BadQuery(f"'q' is longer than {MAX_QUERY_CHARS} characters")
    if _CONTROL.search(q):
        raise BadQuery("'q' contains control characters")
    return LandingQuery(int(page_text), q)


def not_fully_reachable(tg: TargetGroupView) -> bool:
    """Some flow admits fewer than all of its targets (none: unreachable; some: partly)."""
    return any(s.targets > 0 and s.ratio < 1 for s in tg.flows.values())


def rank(tg: TargetGroupView, open_arns: Set[str], recent_arns: Set[str]) -> int:
    if tg.arn in open_arns:
        return OPEN_GAP
    if not_fully_reachable(tg):
        return NOT_FULLY_REACHABLE
    if tg.arn in recent_arns:
        return RECENT_GAP
    return FINE


def matches(tg: TargetGroupView, needle: str) -> bool:
    """`needle` (case-folded) is in the namespace, service, name or account of `tg`."""
    return any(needle in field.casefold() for field in (tg.namespace, tg.service, tg.name, tg.aws_account_id))


@dataclass(frozen=True)
class Summary:
    """The line at the top: counts over every target group of the snapshot (no filter)."""

    watched: int
    open_gaps: int
    not_fully_reachable: int
    recent_gaps: int


@dataclass(frozen=True)
class Listing:
    """One page of the ordered, filtered target groups."""

    rows: Sequence[TargetGroupView]
    query: LandingQuery
    page: int  # the page shown (the query's, or the last one when it was past the end)
    pages: int  # at least 1, even when nothing matches
    matched: int  # target groups that pass the filter (all of them without one)
    first: int  # 1-based position of the first row shown (0 when none)
    open_elsewhere: int  # matching target groups with an open gap not on this page
    clamped_from: int | None  # the page asked for, when it was past the end
    summary: Summary

    @property
    def last(self) -> int:
        return self.first + len(self.rows) - 1 if self.rows else 0

    @property
    def previous_href(self) -> str | None:
        return self.query.href(self.page - 1) if self.page > 1 else None

    @property
    def next_href(self) -> str | None:
        return self.query.href(self.page + 1) if self.page < self.pages else None


def listing(snapshot: Snapshot, query: LandingQuery, page_size: int = PAGE_SIZE) -> Listing:
    """The target groups `query` asks for: filtered, problems first, one page of them."""
    open_arns = {g.target_group_arn for g in snapshot.open_gaps}
    recent_arns = {g.target_group_arn for g in snapshot.recent_gaps}
    ranked = [(rank(tg, open_arns, recent_arns), tg) for tg in snapshot.target_groups]
    summary = Summary(
        watched=len(ranked),
        open_gaps=sum(r == OPEN_GAP for r, _ in ranked),
        not_fully_reachable=sum(not_fully_reachable(tg) for _, tg in ranked),
        recent_gaps=sum(tg.arn in recent_arns for _, tg in ranked),
    )
    needle = query.q.casefold()
    chosen = sorted(
        ((r, tg) for r, tg in ranked if not needle or matches(tg, needle)),
        key=lambda item: (item[0], item[1].namespace, item[1].service, item[1].name, item[1].arn),
    )
    pages = max(1, -(-len(chosen) // page_size))
    page = min(query.page, pages)
    start = (page - 1) * page_size
    shown = chosen[start : start + page_size]
    open_total = sum(r == OPEN_GAP for r, _ in chosen)
    return Listing(
        rows=[tg for _, tg in shown],
        query=query,
        page=page,
        pages=pages,
        matched=len(chosen),
        first=start + 1 if shown else 0,
        open_elsewhere=open_total - sum(r == OPEN_GAP for r, _ in shown),
        clamped_from=query.page if query.page > pages else None,
        summary=summary,
    )
