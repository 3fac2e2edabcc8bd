"""docs/architecture.md stays true to the tree: every module of the package is named in it, every
module it names exists, and every folder has its paragraph (issue 16: one diagram and a paragraph
per folder)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
FOLDERS = (
    "exporter",
    *(p.name for p in sorted((ROOT / "exporter").iterdir()) if (p / "__init__.py").exists()),
)


def _modules() -> list[Path]:
    return [
        p
        for p in sorted((ROOT / "exporter").rglob("*.py"))
        if p.name not in ("__init__.py", "__main__.py") and "__pycache__" not in p.parts
    ]


def test_every_module_is_named() -> None:
    """By its file name, or (a subcommand's module) by the command's name."""
    missing = [
        str(p.relative_to(ROOT))
        for p in _modules()
        if p.name not in DOC and not (p.parent.name == "commands" and p.stem.replace("_", "-") in DOC)
    ]
    assert not missing, f"not in docs/architecture.md: {missing}"


def test_every_module_named_exists() -> None:
    named = set(re.findall(r"(?<![\w*])([a-z][a-z_]*\.py)\b", DOC))  # not the globs (`*_samples.py`)
    existing = {
        p.name for top in ("exporter", "tests", "benchmarks", "scripts") for p in (ROOT / top).rglob("*.py")
    }
    assert named <= existing, f"named in docs/architecture.md, not in the tree: {sorted(named - existing)}"


def test_every_folder_has_its_paragraph() -> None:
    for folder in (*FOLDERS, "templates", "tests", "benchmarks"):
        assert re.search(rf"^\*\*{folder}/\*\* ", DOC, re.MULTILINE), f"no paragraph for {folder}/"
