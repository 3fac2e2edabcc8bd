"""Figure 7: the container image: its size and how long the Dockerfile takes to build.

The Dockerfile is built the way tests/test_image.py builds it (tests/image_builder.py: buildah,
`--isolation chroot`, on the debootstrap'ed Debian bookworm + python3 base passed as BASE_IMAGE,
because the official Python image cannot be pulled here). Cold: `--no-cache`, so every RUN step runs
(the runtime dependencies come from PyPI over the network); warm: a rebuild with every layer cached,
what a test run pays when the sources did not change. The size is the image's uncompressed size; its
baseline is the base image, so the ratio shows what the venv adds. Needs root, buildah and
debootstrap (scripts/install-tools.sh); `--quick` skips the cold build.
Targets: cold build < 180 s on a 2-core machine; the image <= 400 MB.
"""

from __future__ import annotations

import os

from benchmarks.common import Figure
from tests.image_builder import build_image, debian_python_base, image_size_bytes, remove_image

COLD_TARGET_SECONDS = 180.0
SIZE_TARGET_MB = 400.0
MB = 1_000_000


def figures(quick: bool) -> list[Figure]:
    base = debian_python_base()
    tag = f"localhost/sg-churn-exporter:bench-{os.getpid()}"
    found: list[Figure] = []
    try:
        if not quick:
            cold = build_image(base, tag, no_cache=True)
            found.append(
                Figure(
                    key="image_build_cold",
                    title="Image build, cold (no layer cache; dependencies from PyPI)",
                    value=cold.seconds,
                    unit="s",
                    target=f"< {COLD_TARGET_SECONDS:.0f} s",
                    passed=cold.seconds < COLD_TARGET_SECONDS,
                )
            )
        warm = build_image(base, tag)
        found.append(
            Figure(
                key="image_build_warm",
                title="Image rebuild, every layer cached",
                value=warm.seconds,
                unit="s",
                target="informative",
                passed=None,
            )
        )
        size, base_size = image_size_bytes(tag), image_size_bytes(base)
        found.append(
            Figure(
                key="image_size",
                title="Image size (uncompressed), Debian bookworm + python3 base",
                value=size / MB,
                unit="MB",
                target=f"<= {SIZE_TARGET_MB:.0f} MB",
                passed=size / MB <= SIZE_TARGET_MB,
                baseline=base_size / MB,
                baseline_label="the base image",
                ratio=size / base_size,
            )
        )
    finally:
        remove_image(tag)
    return found
