"""The engine is the pure core: it imports nothing that talks to the world, and nothing from the
layers around it (sources, daemon, commands, web, reports)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ENGINE = Path(__file__).resolve().parent.parent / "exporter" / "engine"
#: Packages whose import would bring I/O, a clock or an outer layer into the engine.
FORBIDDEN = (
    "boto3",
    "botocore",
    "kubernetes",
    "urllib3",
    "socket",
    "sqlite3",
    "http",
    "subprocess",
    "time",
    "exporter.sources",
    "exporter.daemon",
    "exporter.commands",
    "exporter.reports",
    "exporter.web",
    "exporter.metrics",
)


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", sorted(ENGINE.glob("*.py")), ids=lambda p: p.name)
def test_engine_module_imports_nothing_from_the_world(path: Path) -> None:
    bad = [n for n in _imports(path) if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == [], f"{path.name} imports {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\nfrom exporter.sources.aws import Clients\n")
    assert "exporter.sources.aws" in _imports(sample)
