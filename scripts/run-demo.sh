#!/usr/bin/env bash
# Builds Portico, starts the bundled demo services and runs the gateway with
# conf/portico.yaml in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
need_packages
cargo build --release --bins
./target/release/portico-demo &
demo=$!
trap 'kill $demo 2>/dev/null || true' EXIT
./target/release/portico check -c conf/portico.yaml
echo "portico: listening on http://127.0.0.1:8080 (admin on http://127.0.0.1:9901)"
./target/release/portico run -c conf/portico.yaml
