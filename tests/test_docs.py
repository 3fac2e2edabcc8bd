"""The README is the front door: its commands and the IAM policy it shows must be the real ones."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_shows_the_shipped_iam_policy() -> None:
    blocks = re.findall(r"```json\n(.*?)```", README, flags=re.DOTALL)
    shipped = json.loads((ROOT / "docs" / "iam-policy.json").read_text(encoding="utf-8"))
    assert shipped in [json.loads(block) for block in blocks]


def test_readme_names_the_two_commands_and_ci_runs_the_test_one() -> None:
    assert re.search(r"^make demo\b", README, flags=re.MULTILINE)
    assert re.search(r"^make test\b", README, flags=re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_documents_the_readme_links_to_exist() -> None:
    for target in re.findall(r"\]\(((?:docs|alerts|dashboards|helm)/[^)#]*)\)", README):
        assert (ROOT / target).exists(), target


#: The project's own address: runbook_url annotations and the landing page's links use it.
PROJECT_URL = "https://github.com/sg-churn-exporter/sg-churn-exporter/blob/main/"
#: `docs/architecture.md#impact-of-a-closed-gap`, `(runbooks.md#paging-latency)`, or the project URL.
SECTION_REF = re.compile(rf"(?<![\w/.:-])((?:{re.escape(PROJECT_URL)})?[\w./-]*\.md)#([\w-]+)")
#: `[text](#anchor)`: a section of the same document.
SAME_FILE_REF = re.compile(r"\]\(#([\w-]+)\)")


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: its rendered text, lower case, punctuation dropped."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(document: Path) -> set[str]:
    found: set[str] = set()
    fenced = False
    for line in document.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6}\s+(.+?)\s*#*$", line)):
            found.add(_slug(heading.group(1)))
    return found


def _referring_files() -> list[Path]:
    chart = ROOT / "helm" / "sg-churn-exporter"
    return [
        *ROOT.glob("*.md"),
        *(ROOT / "docs").glob("*.md"),
        *(ROOT / "alerts").glob("*.md"),
        *(ROOT / "alerts").glob("*.yml"),
        *(ROOT / "dashboards").glob("*.md"),
        *(ROOT / "exporter").rglob("*.py"),
        chart / "values.yaml",
        *(chart / "templates").iterdir(),
    ]


def test_every_reference_to_a_section_names_a_heading_that_exists() -> None:
    """`docs/x.md#section` in docs, comments, chart values and alert annotations leads somewhere:
    a newcomer following docs/configuration.md's `docs/architecture.md#impact` found no such section."""
    broken: list[str] = []
    checked = 0
    for referrer in _referring_files():
        text = referrer.read_text(encoding="utf-8")
        refs = [(ref, anchor) for ref, anchor in SECTION_REF.findall(text)]
        if referrer.suffix == ".md":
            refs += [(referrer.name, anchor) for anchor in SAME_FILE_REF.findall(text)]
        for ref, anchor in refs:
            relative = ref.removeprefix(PROJECT_URL)
            near, top = referrer.parent / relative, ROOT / relative
            document = near if near.is_file() else top
            where = f"{referrer.relative_to(ROOT)}: {ref}#{anchor}"
            if not document.is_file():
                broken.append(f"{where} (no such file)")
            elif anchor not in _anchors(document):
                broken.append(where)
            checked += 1
    assert checked > 50  # the pattern still finds the references
    assert not broken, broken
