#!/usr/bin/env bash
# Runs the public HTTP caching test suite (https://github.com/http-tests/cache-tests)
# against Portico acting as a shared cache and writes the suite's raw results as JSON.
# A manual tool: CI does not run it and `cargo test` does not need it.
# See CACHE-TESTS.md beside this file.
#
# usage: run-cache-tests.sh CACHE_TESTS_DIR [PORTICO_BIN [OUT_JSON]]
#
#   CACHE_TESTS_DIR  a checkout of the suite; its CLI runner needs the npm package
#                    node-fetch-with-proxy where Node finds it from the checkout
#   PORTICO_BIN      default: target/debug/portico under the repository root
#   OUT_JSON         default: ${TMPDIR:-/tmp}/cache-tests-results.json
#
# environment (all optional):
#   CACHE_TESTS_ORIGIN_PORT  suite's origin server port   (default 18000)
#   CACHE_TESTS_PROXY_PORT   Portico's proxy listener port (default 18080)
#   CACHE_TESTS_ADMIN_PORT   Portico's admin listener port (default 18901)
#   CACHE_TESTS_ONLY=ID      run the one test ID, print the suite's dump of it to
#                            stdout and write no JSON
#   CACHE_TESTS_KEEP=1       keep the work directory (logs) after a successful run
#
# Everything listens on 127.0.0.1. The origin server and Portico are stopped on
# exit, however the script ends. Exit status: 0 when the suite ran to the end
# (whatever the tests' outcomes), 1 when the run failed, 2 for bad input.

set -euo pipefail

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
bad_input() { echo "$prog: $*" >&2; exit 2; }
usage() { sed -n '7,20p' "$0" | sed 's/^# \{0,1\}//' >&2; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_root=$(cd "$script_dir/../.." && pwd)
config=$script_dir/portico.yaml
helper=$script_dir/bind-loopback.mjs

case ${1:-} in
  -h | --help) usage; exit 0 ;;
esac
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
  usage
  exit 2
fi

# --- inputs ------------------------------------------------------------------

suite_arg=$1
bin_arg=${2:-$repo_root/target/debug/portico}
out_arg=${3:-${TMPDIR:-/tmp}/cache-tests-results.json}
only=${CACHE_TESTS_ONLY:-}

[ -d "$suite_arg" ] || bad_input "cache-tests checkout not found: $suite_arg"
suite=$(cd "$suite_arg" && pwd)
for f in test-engine/cli.mjs test-engine/server/server.mjs tests/index.mjs \
  test-engine/lib/results.mjs; do
  [ -f "$suite/$f" ] ||
    bad_input "$suite does not look like a cache-tests checkout (no $f)"
done

[ -f "$bin_arg" ] || bad_input "Portico binary not found: $bin_arg (build it with cargo build)"
[ -x "$bin_arg" ] || bad_input "Portico binary is not executable: $bin_arg"
bin=$(cd "$(dirname "$bin_arg")" && pwd)/$(basename "$bin_arg")

case $out_arg in
  /*) out=$out_arg ;;
  *) out=$PWD/$out_arg ;;
esac
if [ -z "$only" ]; then
  [ -d "$(dirname "$out")" ] || bad_input "output directory does not exist: $(dirname "$out")"
  [ -w "$(dirname "$out")" ] || bad_input "output directory is not writable: $(dirname "$out")"
  [ ! -d "$out" ] || bad_input "output path is a directory: $out"
fi

[ -f "$config" ] || bad_input "missing $config"
[ -f "$helper" ] || bad_input "missing $helper"

command -v node >/dev/null || bad_input "node is not installed (the suite runs on Node.js)"
command -v curl >/dev/null || bad_input "curl is not installed (used to wait for Portico)"

origin_port=${CACHE_TESTS_ORIGIN_PORT:-18000}
proxy_port=${CACHE_TESTS_PROXY_PORT:-18080}
admin_port=${CACHE_TESTS_ADMIN_PORT:-18901}
for p in "$origin_port" "$proxy_port" "$admin_port"; do
  if ! [[ $p =~ ^[0-9]{1,5}$ ]] || ((10#$p < 1 || 10#$p > 65535)); then
    bad_input "not a port number: $p"
  fi
done
if [ "$origin_port" = "$proxy_port" ] || [ "$origin_port" = "$admin_port" ] ||
  [ "$proxy_port" = "$admin_port" ]; then
  bad_input "the origin, proxy and admin ports must differ"
fi

port_open() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for WHAT PID LOG TRIES CHECK...: runs CHECK every 0.2 s until it
# succeeds; stops the run when PID exits first or TRIES run out.
wait_for() {
  local what=$1 pid=$2 log=$3 tries=$4 i
  shift 4
  for ((i = 1; i <= tries; i++)); do
    "$@" && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      log_tail "$log"
      die "$what exited at start"
    fi
    sleep 0.2
  done
  die "$what was not ready in $((tries / 5)) s"
}
for p in "$origin_port" "$proxy_port" "$admin_port"; do
  if port_open "$p"; then
    bad_input "127.0.0.1:$p is already in use (choose others with CACHE_TESTS_*_PORT)"
  fi
done

# --import needs Node 18.19 / 20.6 or later; this also loads the helper once.
helper_url=$(node -e 'console.log(require("url").pathToFileURL(process.argv[1]).href)' \
  "$helper")
node --import "$helper_url" -e '' 2>/dev/null ||
  bad_input "node $(node --version) cannot preload $helper (needs Node 20.6 or later)"

if grep -q "node-fetch-with-proxy" "$suite/test-engine/cli.mjs" &&
  ! (cd "$suite/test-engine" &&
    node --input-type=module -e "await import('node-fetch-with-proxy')" 2>/dev/null); then
  bad_input "the suite's CLI needs the npm package node-fetch-with-proxy;" \
    "install it, e.g. (cd $suite && npm install node-fetch-with-proxy@0.1.6)"
fi

# --- start the origin and Portico --------------------------------------------

work=$(mktemp -d "${TMPDIR:-/tmp}/portico-cache-tests.XXXXXX")
pids=()

stop() {   # pid: SIGINT (Pingora's fast shutdown), then SIGKILL after 10 s
  local pid=$1 i
  kill -INT "$pid" 2>/dev/null || return 0
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$prog: process $pid ignored SIGINT; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  local i
  trap '' INT TERM   # a second Ctrl-C must not cut the clean-up short
  trap - EXIT
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    stop "${pids[i]}"
  done
  if [ "$rc" -ne 0 ] || [ "${CACHE_TESTS_KEEP:-}" = 1 ]; then
    echo "$prog: logs kept in $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log_tail() {   # file: show the end of a log when something failed
  echo "--- last lines of $1:" >&2
  tail -n 20 "$1" >&2 || true
}

export CACHE_TESTS_WORKDIR=$work
export CACHE_TESTS_ORIGIN_PORT=$origin_port
export CACHE_TESTS_PROXY_PORT=$proxy_port
export CACHE_TESTS_ADMIN_PORT=$admin_port

if ! "$bin" check -c "$config" >"$work/check.log" 2>&1; then
  log_tail "$work/check.log"
  die "portico check rejected $config"
fi

# 1. The suite's own origin server, told its port and pid file through the
#    npm_config_* variables it reads; the helper keeps it on 127.0.0.1.
(cd "$suite" && exec env npm_config_protocol=http npm_config_port="$origin_port" \
  npm_config_pidfile="$work/origin.pid" \
  node --import "$helper_url" test-engine/server/server.mjs) >"$work/origin.log" 2>&1 &
origin_pid=$!
pids+=("$origin_pid")

wait_for "the origin server" "$origin_pid" "$work/origin.log" 100 port_open "$origin_port"

# 2. Portico, in front of it.
(cd "$work" && exec "$bin" run -c "$config") >"$work/portico.log" 2>&1 &
portico_pid=$!
pids+=("$portico_pid")

ready() {
  local code
  code=$(curl -s --noproxy '*' --max-time 2 -o /dev/null -w '%{http_code}' \
    "http://127.0.0.1:$admin_port/readyz" || true)
  [ "$code" = 200 ]
}
wait_for "Portico (/readyz on 127.0.0.1:$admin_port)" "$portico_pid" "$work/portico.log" 150 ready

# --- run the suite -------------------------------------------------------------

# The CLI sends every request through Portico. An empty test id means "all
# tests". no_proxy=* keeps proxy variables in the caller's environment from
# sending the traffic anywhere but loopback. It runs in the background so that
# a signal to this script is handled at once (the trap then stops it too).
run_cli() {   # stdout, stderr
  (cd "$suite" && exec env no_proxy='*' NO_PROXY='*' npm_config_no_proxy='*' \
    npm_config_base="http://127.0.0.1:$proxy_port" \
    npm_config_id="$only" npm_package_config_id="$only" \
    node --no-warnings test-engine/cli.mjs) >"$1" 2>"$2" &
  local cli_pid=$!
  pids+=("$cli_pid")
  wait "$cli_pid"
}

if [ -n "$only" ]; then
  run_cli /dev/stdout /dev/stderr || die "the suite's CLI failed (exit $?)"
  exit 0
fi

echo "$prog: running the suite against Portico ($bin) ..." >&2
start=$(date +%s)
if ! run_cli "$work/results.json" "$work/cli.stderr"; then
  log_tail "$work/cli.stderr"
  die "the suite's CLI failed"
fi
echo "$prog: the suite took $(($(date +%s) - start)) s" >&2

# Summarise with the suite's own classification (dependencies honoured).
# shellcheck disable=SC2016  # JavaScript, not shell: nothing here is to expand
summarise='
import fs from "node:fs"
import { pathToFileURL } from "node:url"
const [suiteDir, file] = process.argv.slice(1)
const load = p => import(pathToFileURL(`${suiteDir}/${p}`).href)
const suites = (await load("tests/index.mjs")).default
const { determineTestResult, resultTypes } = await load("test-engine/lib/results.mjs")
const results = JSON.parse(fs.readFileSync(file, "utf8"))
if (!results || typeof results !== "object" || Array.isArray(results)) {
  throw new Error("results are not a JSON object")
}
const typeName = t => Object.keys(resultTypes).find(k => resultTypes[k] === t)
const n = {}
const add = k => { n[k] = (n[k] || 0) + 1 }
let defined = 0
for (const suite of suites) {
  for (const test of suite.tests) {
    defined++
    if (test.browser_only) { add("browser_only"); continue }
    const raw = results[test.id]
    let cls = typeName(determineTestResult(suites, test.id, results))
    if (Array.isArray(raw) && !["Assertion", "Setup"].includes(raw[0]) &&
        cls !== "dependency_fail") cls = "harness_error"
    add(cls)
  }
}
const g = k => n[k] || 0
console.log(`${Object.keys(results).length} results for ${defined} tests: ` +
  `${g("pass")} pass, ${g("fail")} required failures, ` +
  `${g("optional_fail")} optional failures, checks ${g("yes")} yes / ${g("no")} no, ` +
  `${g("setup_fail")} setup failures, ${g("dependency_fail")} dependency failures, ` +
  `${g("harness_error")} harness errors, ${g("browser_only")} browser-only not run` +
  (g("untested") ? `, ${g("untested")} without a result` : ""))
'
if ! summary=$(node --input-type=module -e "$summarise" "$suite" "$work/results.json" \
  2>"$work/summary.stderr"); then
  log_tail "$work/summary.stderr"
  die "the suite's output is not a usable result set (kept in $work/results.json)"
fi

cp "$work/results.json" "$out.tmp.$$"
mv "$out.tmp.$$" "$out"
echo "$prog: $summary" >&2
echo "$prog: results written to $out" >&2
