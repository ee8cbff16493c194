#!/usr/bin/env bash
# Runs every test: unit tests beside the code and the end-to-end tests that start real
# berthd daemons (root needed: namespaces, cgroups, overlayfs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
cargo build --workspace --bins
# --no-fail-fast: one failing test binary must not hide the results of the others.
cargo test --workspace --no-fail-fast -- --test-threads=2
