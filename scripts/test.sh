#!/usr/bin/env bash
# Runs every test: unit tests beside the code and the end-to-end tests that start real
# berthd daemons (root needed: namespaces, cgroups, overlayfs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh --test
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
