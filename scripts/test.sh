#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the integration tests that drive the
# real gateway binary, and doc tests. Installs missing build tools first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc
