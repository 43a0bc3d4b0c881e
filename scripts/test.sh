#!/usr/bin/env bash
# Runs the whole test suite: doc tests, a build of the benchmarks (so they
# cannot rot), then the unit tests and the integration tests that drive the
# real gateway binary. Installs missing build tools first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages
cargo test --workspace --doc
cargo test --workspace --benches --no-run
cargo test --workspace --lib --bins --tests "$@"
