#!/usr/bin/env bash
# Installs the Debian packages berth needs (idempotent: skips what is already there).
#   scripts/deps.sh          build and run: libseccomp, busybox-static for the test image,
#                            tini (its static build is the init `--init` runs)
#   scripts/deps.sh --test   also the peers the tests compare against (docker.io's CLI,
#                            docker-registry)
set -euo pipefail
packages=(pkg-config libseccomp-dev busybox-static iproute2 util-linux procps tini nftables)
if [ "${1:-}" = "--test" ]; then
  packages+=(docker.io tmux)
  packages+=(docker-compose)  # Compose 1.29 (docker-py) against berthd: tests/e2e/tests/compose.rs
  # berth registry serve's tests and bench: htpasswd, TLS certificates, raw requests, and
  # Distribution 2.8 to compare with.
  packages+=(apache2-utils openssl curl docker-registry)
  # A static probe making raw system calls: tests/e2e/tests/seccomp_enosys.rs
  packages+=(gcc libc6-dev)
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
# docker-registry's package enables a service on :5000, the port `berth registry serve` takes
# by default; the bench starts its own Distribution when it needs one.
if [ "${1:-}" = "--test" ] && command -v systemctl >/dev/null && systemctl is-enabled docker-registry >/dev/null 2>&1; then
  systemctl disable --now docker-registry >/dev/null 2>&1 || true
fi
