"""The project's Dockerfile built and run with buildah (no docker daemon, no registry here).

    base = debian_python_base()            # debootstrap'ed bookworm + Debian's python3, cached in .tools/
    image = build_image(base, "localhost/sg-churn-exporter:test-123")
    with Container(image.tag) as box:      # `buildah from`, removed on exit
        box.run(["sg-churn-exporter", "--version"])   # as the image's user, on the host network

The base comes from scripts/debian-python-base.sh (a root filesystem tar under .tools/cache/), imported
as localhost/sgchurn-debian-python:<hash of that script> when buildah's storage does not have it yet. Builds use `--layers`, so a rebuild
with unchanged sources is quick; `no_cache=True` measures a cold build (benchmarks/image.py).

TLS: pip in the build verifies PyPI with the host's CA bundle (bind-mounted for the build only, with a
pip.conf naming it), because a machine may reach PyPI through a TLS-inspecting proxy whose CA only the
host trusts. Nothing of it stays in the image.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BASE_SCRIPT = ROOT / "scripts" / "debian-python-base.sh"
BASE_REPO = "localhost/sgchurn-debian-python"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
TOOLS = ("buildah", "podman", "debootstrap")
LOCK = ROOT / ".tools" / "cache" / "image.lock"


class ImageToolError(Exception):
    """A build tool is missing or failed; the message is fit for a test failure."""


@contextlib.contextmanager
def _exclusive() -> Iterator[None]:
    """One base creation or build at a time per checkout (pytest-xdist workers share the cache)."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(argv: list[str], *, timeout: float, what: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kwargs)
    if proc.returncode != 0:
        raise ImageToolError(f"{what} failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-4000:]}")
    return proc


def _image_exists(ref: str) -> bool:
    proc = subprocess.run(["buildah", "inspect", "--type", "image", ref], capture_output=True, timeout=60)
    return proc.returncode == 0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def debian_python_base() -> str:
    """The base image reference, making the rootfs tar and importing it only when needed."""
    with _exclusive():
        return _debian_python_base()


def _debian_python_base() -> str:
    # Tagged by the hash of the script that makes it: every checkout on a machine (CI's fresh clone
    # too) finds the imported base, and with it buildah's layer cache; the tar is made only when the
    # image is missing.
    ref = f"{BASE_REPO}:{_sha256(BASE_SCRIPT)[:16]}"
    if _image_exists(ref):
        return ref
    tar = Path(_run(["bash", str(BASE_SCRIPT)], timeout=900, what="debootstrap base").stdout.strip())
    container = _run(["buildah", "from", "scratch"], timeout=60, what="buildah from scratch").stdout.strip()
    try:
        _run(["buildah", "add", "--quiet", container, str(tar), "/"], timeout=300, what="buildah add")
        _run(
            [
                "buildah",
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                container,
            ],
            timeout=60,
            what="buildah config",
        )
        _run(["buildah", "commit", "--quiet", container, ref], timeout=300, what="buildah commit")
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True, timeout=60)
    return ref


def _host_ca_bundle() -> str | None:
    return next((p for p in HOST_CA_BUNDLES if Path(p).is_file()), None)


@dataclass(frozen=True)
class BuiltImage:
    tag: str
    seconds: float
    log: str


def build_image(base: str, tag: str, *, no_cache: bool = False, timeout: float = 1200) -> BuiltImage:
    """`buildah bud` of the project's Dockerfile on `base` (the BASE_IMAGE build argument)."""
    with tempfile.TemporaryDirectory(prefix="sgchurn-build-") as folder:
        argv = ["buildah", "bud", "--isolation", "chroot", "--format", "docker", "--layers"]
        argv += ["--build-arg", f"BASE_IMAGE={base}", "--tag", tag, "--file", str(ROOT / "Dockerfile")]
        if no_cache:
            argv.append("--no-cache")
        bundle = _host_ca_bundle()
        if bundle is not None:
            pip_conf = Path(folder) / "pip.conf"
            pip_conf.write_text("[global]\ncert = /etc/ssl/certs/build-host-ca.crt\n")
            argv += ["--volume", f"{bundle}:/etc/ssl/certs/build-host-ca.crt:ro"]
            argv += ["--volume", f"{pip_conf}:/etc/pip.conf:ro"]
        with _exclusive():  # a second build waits, then finds the first one's layers cached
            started = time.perf_counter()
            proc = _run([*argv, str(ROOT)], timeout=timeout, what=f"buildah bud {tag}")
            return BuiltImage(tag, time.perf_counter() - started, proc.stdout + proc.stderr)


def inspect_image(ref: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        _run(["buildah", "inspect", "--type", "image", ref], timeout=60, what="buildah inspect").stdout
    )
    return data


def image_size_bytes(ref: str) -> int:
    """The image's uncompressed size in bytes (podman reads the same local storage as buildah)."""
    proc = _run(
        ["podman", "image", "inspect", "--format", "{{.Size}}", ref], timeout=60, what="podman inspect"
    )
    return int(proc.stdout.strip())


def remove_image(ref: str) -> None:
    # Under the lock: another worker's build may be about to take this image as its cached last step.
    with _exclusive():
        subprocess.run(["buildah", "rmi", ref], capture_output=True, timeout=120)


class Container:
    """A working container of an image: `run` executes commands in it with chroot isolation."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.name = ""

    def __enter__(self) -> Container:
        self.name = _run(["buildah", "from", self.image], timeout=120, what="buildah from").stdout.strip()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.name:
            subprocess.run(["buildah", "rm", self.name], capture_output=True, timeout=60)

    def argv(
        self,
        command: list[str],
        *,
        env: dict[str, str] | None = None,
        volumes: dict[str, str] | None = None,
        user: str | None = None,
    ) -> list[str]:
        """The `buildah run` command line (volumes: host path -> container path, read-only)."""
        argv = ["buildah", "run", "--isolation", "chroot"]
        if user is not None:
            argv += ["--user", user]
        for key, value in (env or {}).items():
            argv += ["--env", f"{key}={value}"]
        for host, inside in (volumes or {}).items():
            argv += ["--volume", f"{host}:{inside}:ro"]
        return [*argv, self.name, "--", *command]

    def run(
        self, command: list[str], *, timeout: float = 120, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(command, **kwargs), capture_output=True, text=True, timeout=timeout, env=_clean_env()
        )


def _clean_env() -> dict[str, str]:
    """buildah's own environment: nothing of the test's AWS or exporter settings leaks in by accident."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SGCHURN_"))}
