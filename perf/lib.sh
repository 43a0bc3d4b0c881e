# Shared by perf/grpc.sh and perf/cache.sh: reads the launcher's own flags
# (--no-build, --debug, --help), checks the tools the run needs, builds the
# binaries, and hands the remaining flags over to the Python driver.
#
#   perf_launch NAME DRIVER "TOOLS" "CARGO TARGET FLAGS" "$@"

perf_launch() {
  local name=$1 driver=$2 tools=$3 targets=$4
  shift 4
  local build=1 profile=release args=() arg tool
  for arg in "$@"; do
    case "$arg" in
      --no-build) build=0 ;;
      --debug) profile=debug ;;
      -h|--help)
        echo "perf/$name.sh's own flags: --no-build, --debug (figures mean nothing)"
        exec python3 "$driver" --target-dir . --help ;;
      *) args+=("$arg") ;;
    esac
  done
  for tool in $tools; do
    command -v "$tool" >/dev/null 2>&1 || {
      echo "perf/$name.sh: $tool is missing (perf/run.sh installs it)" >&2
      exit 2
    }
  done
  if [ "$build" -eq 1 ]; then
    local cargo_profile
    cargo_profile=$([ "$profile" = debug ] && echo dev || echo release)
    echo "perf: cargo build --profile $cargo_profile $targets"
    # shellcheck disable=SC2086 # the target flags are words
    cargo build --profile "$cargo_profile" $targets
  fi
  local target_dir
  target_dir=$(cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
  exec python3 "$driver" --target-dir "$target_dir" --build-profile "$profile" \
    ${args[@]+"${args[@]}"}
}
