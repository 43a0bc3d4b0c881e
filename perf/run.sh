#!/usr/bin/env bash
# Runs the whole load comparison on this machine, on loopback only: Portico,
# a minimal Pingora proxy, nginx and HAProxy in front of one upstream, each in
# turn under the same loads (and Portico with each policy, its Redis rate
# limits against a redis-server of the run's own); writes perf/RESULTS.md.
# See perf/README.md.
#
#   perf/run.sh [--smoke] [--duration S] [--threads N] [--scenarios abcdefg] ...
#   perf/run.sh --help            # every flag
#
# Installs what is missing with apt-get, builds the release binaries, then
# hands over to perf/compare.py. Everything started is stopped by PID, on exit
# and on INT, TERM and HUP.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
profile=release
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    --debug) profile=debug ;;
    -h|--help)
      echo "perf/run.sh's own flags: --no-build (use the binaries already built)," \
        "--debug (build and measure the debug profile: for the CI smoke run only)"
      exec python3 perf/compare.py --help ;;
  esac
done

install_missing() {
  local missing=()
  command -v nginx >/dev/null 2>&1 || missing+=(nginx)
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  command -v wrk >/dev/null 2>&1 || missing+=(wrk)
  command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
  command -v python3 >/dev/null 2>&1 || missing+=(python3)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "perf: installing ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    # policy-rc.d keeps the packages' own nginx, HAProxy and Redis services
    # from starting: the harness runs its own instances, on ports of its choosing.
    local policy=/usr/sbin/policy-rc.d added_policy=0
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
      $sudo chmod +x "$policy"
      added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    [ "$added_policy" -eq 0 ] || $sudo rm -f "$policy"
  fi
}

install_missing

# 10,000 idle connections need that many descriptors in the client and the
# proxy; raise the soft limit as far as the hard one allows (root may raise
# both).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

args=(--build-profile "$profile")
for arg in "$@"; do
  case "$arg" in
    --no-build|--debug) ;;
    *) args+=("$arg") ;;
  esac
done

if [ "$build" -eq 1 ]; then
  cargo_profile=$([ "$profile" = debug ] && echo dev || echo release)
  echo "perf: cargo build --profile $cargo_profile --bins --example minimal_pingora"
  cargo build --profile "$cargo_profile" --bins --example minimal_pingora
fi
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

harness_pid=""
stop_harness() {
  if [ -n "$harness_pid" ] && kill -0 "$harness_pid" 2>/dev/null; then
    kill -TERM "$harness_pid" 2>/dev/null || true
    wait "$harness_pid" 2>/dev/null || true
  fi
  harness_pid=""
}
trap 'stop_harness; exit 130' INT TERM HUP
trap stop_harness EXIT

python3 perf/compare.py --target-dir "$target_dir" ${args[@]+"${args[@]}"} &
harness_pid=$!
status=0
wait "$harness_pid" || status=$?
harness_pid=""
exit "$status"
