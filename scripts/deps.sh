#!/usr/bin/env bash
# Installs the Debian packages berth needs (idempotent: skips what is already there).
#   scripts/deps.sh          build and run: libseccomp, busybox-static for the test image,
#                            tini (its static build is the init `--init` runs)
#   scripts/deps.sh --test   also the peers the tests compare against (docker.io's CLI)
set -euo pipefail
packages=(pkg-config libseccomp-dev busybox-static iproute2 util-linux procps tini)
if [ "${1:-}" = "--test" ]; then
  packages+=(docker.io tmux)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps docker.io's package scripts from starting a dockerd we did not ask for.
  apt-get install -y -qq "${missing[@]}"
fi
command -v cargo >/dev/null || { echo "cargo (Rust toolchain) is required" >&2; exit 1; }
