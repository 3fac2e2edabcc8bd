# syntax=docker/dockerfile:1
#
# sg-churn-exporter container image.
#
#   docker build -t sg-churn-exporter:0.1.0 .
#   docker run --read-only -p 9877:9877 \
#     -v "$PWD/config.yaml:/etc/sg-churn-exporter/config.yaml:ro" sg-churn-exporter:0.1.0
#
# Runtime dependencies come from requirements.lock: exact pins of the [project] dependencies of
# pyproject.toml and everything they need, taken from the venv the test suite ran in. Refresh it after
# changing dependencies with `.venv/bin/python scripts/lock-requirements.py` (see that script).
# The base image is a build argument, by default the official Python image pinned to a patch release.
# Any Debian-like base with Python 3.11, its venv module (Debian: python3-venv), groupadd and useradd
# works: tests/test_image.py builds on a debootstrap'ed Debian bookworm with Debian's python3.
#   docker build --build-arg BASE_IMAGE=my-registry/debian-python:bookworm -t sg-churn-exporter .
ARG BASE_IMAGE=python:3.11.17-slim-bookworm

# ---------------------------------------------------------------------------------------------
# builder: resolve nothing, install the locked wheels into /opt/venv, build and add our own wheel.
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

# Build tooling lives in its own venv so it never reaches the runtime image.
# python3: Debian's Python has no `python` command; the official image has both.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-deps "setuptools==84.2.1" \
 && python3 -m venv /opt/venv

# Dependencies first (own layer, cached while only the code changes). --no-deps: the lock is complete,
# --only-binary: no sdist build scripts run and no compiler is needed.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-deps --only-binary=:all: --requirement requirements.lock

COPY pyproject.toml ./
COPY exporter ./exporter
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/venv/bin/pip install --no-deps /wheels/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/sg-churn-exporter --version

# ---------------------------------------------------------------------------------------------
# runtime: the venv only, a numeric non-root user, nothing written outside mounted volumes. The same
# base as the builder: the venv's python links to the base's interpreter.
FROM ${BASE_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="sg-churn-exporter" \
      org.opencontainers.image.description="Prometheus exporter that measures security-group rule gaps behind AWS Network Load Balancers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# HOME and TMPDIR point at /tmp, which must be a writable mount under a read-only root filesystem
# (the Helm chart mounts an emptyDir there; `docker run --read-only` gets the anonymous VOLUME below).
# SQLite state goes to /var/lib/sg-churn-exporter (the default state.path), also a volume. No SGCHURN_*
# variable is set here: they would override the mounted config file.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Debian bases ship /var/tmp and /run/lock world-writable: take that away, so that without a read-only
# root filesystem too the only writable paths are the two volumes (tests/test_image.py checks it).
RUN groupadd --system --gid 10001 sgchurn \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin sgchurn \
 && mkdir -p /var/lib/sg-churn-exporter /etc/sg-churn-exporter \
 && chown 10001:10001 /var/lib/sg-churn-exporter \
 && chmod 0750 /var/lib/sg-churn-exporter \
 && printf '%s\n' '# Default config: mount your own at /etc/sg-churn-exporter/config.yaml (docs/configuration.md).' \
      'listen_port: 9877' > /etc/sg-churn-exporter/config.yaml \
 && find / -xdev -path /tmp -prune -o -perm -0002 \( -type d -o -type f \) -exec chmod o-w {} +

COPY --from=builder /opt/venv /opt/venv

VOLUME ["/var/lib/sg-churn-exporter", "/tmp"]

USER 10001:10001
WORKDIR /tmp

EXPOSE 9877

# No curl in slim images: probe /healthz with the standard library. Honours SGCHURN_LISTEN_PORT.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SGCHURN_LISTEN_PORT', '9877'); sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]

ENTRYPOINT ["sg-churn-exporter"]
CMD ["run", "--config", "/etc/sg-churn-exporter/config.yaml"]
