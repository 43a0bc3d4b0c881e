#!/usr/bin/env bash
# Portico's response cache under load, on loopback only: cache-hit throughput
# against the same route uncached and against nginx's proxy_cache, then RSS
# and stored bytes while 10x cache.max_size of distinct content is requested.
# Prints Markdown and writes perf/CACHE-RESULTS.md. See perf/README.md.
#
#   perf/cache.sh [--smoke] [--debug] [--no-build] [--duration S] [--max-size MIB] ...
#
# Builds Portico unless --no-build, then hands over to perf/cache.py, which
# stops everything it starts by PID (on exit and on INT, TERM and HUP).
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
      echo "perf/cache.sh's own flags: --no-build, --debug (figures mean nothing)"
      exec python3 perf/cache.py --target-dir . --help ;;
    *) args+=("$arg") ;;
  esac
done

for tool in nginx wrk curl taskset python3; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "perf/cache.sh: $tool is missing (perf/run.sh installs it)" >&2
    exit 2
  }
done

if [ "$build" -eq 1 ]; then
  cargo_profile=$([ "$profile" = debug ] && echo dev || echo release)
  echo "perf: cargo build --profile $cargo_profile --bin portico"
  cargo build --profile "$cargo_profile" --bin portico
fi
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

exec python3 perf/cache.py --target-dir "$target_dir" --build-profile "$profile" \
  ${args[@]+"${args[@]}"}
