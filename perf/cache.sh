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
. perf/lib.sh
perf_launch cache perf/cache.py "nginx wrk curl taskset python3" "--bin portico" "$@"
