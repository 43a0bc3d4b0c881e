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
. perf/lib.sh
perf_launch grpc perf/grpc.py "h2load curl python3" \
  "--bin portico --example grpc_echo --example minimal_pingora" "$@"
