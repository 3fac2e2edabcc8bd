"""The jinja2 environment of the pages (exporter/templates/): autoescaping on, undefined names an
error, and a template's line breaks for reading only."""

from __future__ import annotations

import re

from jinja2 import Environment, PackageLoader, StrictUndefined
from jinja2.ext import Extension


class _JoinedLines(Extension):
    """A page template's line breaks, and the indentation after them, are for reading only: the
    lines are joined before parsing, so the HTML has exactly the spaces written on the lines."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is None or not name.endswith(".html"):
            return source
        return re.sub(r"\n[ \t]*", "", source)


def environment() -> Environment:
    """A new environment over the packaged templates (each module adds its own globals)."""
    return Environment(
        loader=PackageLoader("exporter", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        extensions=[_JoinedLines],
    )
