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
