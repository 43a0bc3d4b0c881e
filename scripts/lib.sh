# Shared by the setup scripts: installs what a fresh Debian machine lacks.
# Sourced, not run.

need_packages() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  command -v cc >/dev/null 2>&1 || missing+=(build-essential)
  command -v make >/dev/null 2>&1 || missing+=(make)
  command -v perl >/dev/null 2>&1 || missing+=(perl)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
  # The limits shared through Redis are tested against a real server.
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo is not installed. Portico needs Rust 1.85 or newer:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    exit 1
  fi
}
