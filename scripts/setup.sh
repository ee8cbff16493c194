#!/usr/bin/env bash
# The main job, on a fresh Debian machine as root: install what berth needs, build it,
# start berthd with its defaults, make the busybox test image, and run a container.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --release --bins
install -m 0755 target/release/berth target/release/berthd target/release/berth-shim target/release/berth-registry /usr/local/bin/
if ! berth version >/dev/null 2>&1; then
  mkdir -p /var/log
  nohup berthd >/var/log/berthd.log 2>&1 &
  for _ in $(seq 100); do berth version >/dev/null 2>&1 && break; sleep 0.1; done
  berth version >/dev/null || { echo "berthd did not start; see /var/log/berthd.log" >&2; exit 1; }
fi
scripts/import-busybox.sh
berth run --rm busybox echo hello from berth
