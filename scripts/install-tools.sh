#!/usr/bin/env bash
# Installs the real system parts the tests drive. Idempotent.
set -euo pipefail
mkdir -p .tools
need=()
for bin in prometheus promtool prometheus-alertmanager chromium; do
  command -v "$bin" >/dev/null 2>&1 || need+=("$bin")
done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager chromium chromium-driver >/dev/null
fi
