# shellcheck shell=bash disable=SC2034
# Shared by scripts/test.sh and scripts/demo.sh; source it, do not run it.
#
# Provides:
#   REPO_ROOT                      the repository root
#   log MSG...                     prints "[script] MSG" to stderr
#   install_missing_packages P...  apt-get installs those of P not yet installed (root or sudo);
#                                  runs `apt-get update` only when something is missing, and stops
#                                  a system Dovecot that the dovecot-imapd package autostarted
#   build_tree DIR [CMAKE_ARGS...] configures DIR and builds it with -j$(nproc)

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO_ROOT

# Everything the build, the tests and the demo use, as Debian 12 packages.
readonly BUILD_PACKAGES=(build-essential cmake pkg-config liburing-dev libwolfssl-dev libssl-dev
  libsimdjson-dev libcurl4-openssl-dev libyaml-cpp-dev libabsl-dev libbenchmark-dev libgtest-dev)
readonly TEST_PACKAGES=(dovecot-imapd dovecot-pop3d dovecot-submissiond python3 clang libclang-rt-14-dev jq
  nlohmann-json3-dev)
# scripts/image.sh and the image test (tests/image): build and run the OCI image. runc, because
# crun refuses this kind of machine's hybrid cgroups.
readonly IMAGE_PACKAGES=(buildah podman runc binutils)

log() {
  echo "[$(basename "$0")] $*" >&2
}

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

install_missing_packages() {
  local missing=() package
  for package in "$@"; do
    package_installed "$package" || missing+=("$package")
  done
  ((${#missing[@]} > 0)) || return 0

  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null ||
      { log "missing packages ${missing[*]} and not root (no sudo): install them first"; return 1; }
    sudo=(sudo)
  fi
  local dovecot_was_installed=0
  package_installed dovecot-core && dovecot_was_installed=1

  log "installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null

  # The package may start a system-wide Dovecot on ports 143/993. The tests and the demo run
  # their own on free ports, so it is only in the way; leave one that was there before alone.
  if ((dovecot_was_installed == 0)) && [[ -f /run/dovecot/master.pid ]]; then
    log "stopping the system Dovecot that dovecot-imapd just started"
    "${sudo[@]}" service dovecot stop >/dev/null 2>&1 ||
      "${sudo[@]}" kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
  fi
}

build_tree() {
  local dir=$1
  shift
  cmake -S "$REPO_ROOT" -B "$dir" "$@" >/dev/null || return 1
  cmake --build "$dir" -j"$(nproc)"
}

# build_targets DIR "TARGET..." CMAKE_ARGS...: configure, then build only the named targets.
build_targets() {
  local dir=$1 targets=$2
  shift 2
  cmake -S "$REPO_ROOT" -B "$dir" "$@" >/dev/null || return 1
  # shellcheck disable=SC2086  # the target list is meant to split
  cmake --build "$dir" -j"$(nproc)" --target $targets
}
