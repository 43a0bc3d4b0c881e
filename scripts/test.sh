#!/usr/bin/env bash
# Runs the whole test suite: doc tests, a build of the benchmarks (so they
# cannot rot), a smoke run of the load comparison (every proxy of perf/run.sh
# answers correctly and every table is written; no figure is judged) and of
# the gRPC one (perf/grpc.sh: the calls end with grpc-status 0) and of the
# cache one (perf/cache.sh: cached rows answer HIT, stored bytes stay within
# cache.max_size while 10x that is requested), then the
# unit tests and the integration tests that drive the real gateway binary.
# Installs missing build tools first (perf/run.sh installs nginx, HAProxy, wrk
# and h2load for the smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages
cargo test --workspace --doc
cargo test --workspace --benches --no-run
smoke_out=$(mktemp -d)
trap 'rm -rf "$smoke_out"' EXIT
perf/run.sh --smoke --debug --out "$smoke_out/RESULTS.md"
perf/grpc.sh --smoke --debug
perf/cache.sh --smoke --debug --out "$smoke_out/CACHE-RESULTS.md"
cargo test --workspace --lib --bins --tests "$@"
