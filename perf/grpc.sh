#!/usr/bin/env bash
# gRPC unary throughput through Portico against the same tonic server direct,
# with h2load, on loopback only; prints one Markdown table. See perf/README.md.
#
#   perf/grpc.sh [--smoke] [--debug] [--no-build] [--duration S] [--loads 1x1,4x16]
#
# Builds Portico, the echo server (perf/grpc_echo.rs) and the minimal Pingora
# proxy (perf/minimal_pingora.rs) unless --no-build,
# then hands over to perf/grpc.py, which stops everything it starts by PID.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
profile=release
args=()
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --debug) profile=debug ;;
    -h|--help)
      echo "perf/grpc.sh's own flags: --no-build, --debug (figures mean nothing)"
      exec python3 perf/grpc.py --target-dir . --help ;;
    *) args+=("$arg") ;;
  esac
done

for tool in h2load curl python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "perf/grpc.sh: $tool is missing (perf/run.sh installs it: nghttp2-client, curl)" >&2
    exit 2
  }
done

if [ "$build" -eq 1 ]; then
  cargo_profile=$([ "$profile" = debug ] && echo dev || echo release)
  echo "perf: cargo build --profile $cargo_profile (portico, grpc_echo, minimal_pingora)"
  cargo build --profile "$cargo_profile" --bin portico --example grpc_echo \
    --example minimal_pingora
fi
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

exec python3 perf/grpc.py --target-dir "$target_dir" --build-profile "$profile" \
  ${args[@]+"${args[@]}"}
