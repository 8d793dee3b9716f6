#!/usr/bin/env bash
# Builds mailring and runs every test; exits non-zero if anything fails.
#
#   scripts/test.sh [--quick] [--ktls-vm]
#
# 1. Installs missing Debian packages (apt-get; as root, or through sudo).
# 2. build/       (RelWithDebInfo): unit tests, then the integration tests against a real Dovecot,
#    the fault-injection soak (tests/soak; MAILRING_SOAK_SECONDS, 60; 0: not), the OCI image:
#    scripts/image.sh from build/mailring, tests/image under podman (MAILRING_IMAGE_TEST=0: not).
# 3. build-asan/  (ASan+UBSan): unit tests, then the integration tests against the ASan daemon.
# 4. build-tsan/  (TSan): the tests labelled `tsan`, if any.
# 5. build-fuzz/  (clang, libFuzzer): every fuzz target for MAILRING_FUZZ_SECONDS (15) from its
#    seeds in tests/fuzz/seeds/; a crash fails the run and leaves its input in
#    build-fuzz/artifacts/ (the log names the file).
# --quick stops after step 2. A summary of every step is printed at the end. About 10 minutes
# from scratch on 2 cores; later runs rebuild only what changed.
# The integration tests also run against the ASan+UBSan daemon (MAILRING_ASAN_INTEGRATION=0: not).
# --ktls-vm (opt-in, not in the default run) adds scripts/ktls_vm.sh after step 2: Debian 12's
# kernel (CONFIG_TLS=m) under QEMU TCG proves the kTLS path with Dovecot and a 20 MiB FETCH.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

quick=0
ktls_vm=0
for arg in "$@"; do
  case $arg in
    --quick) quick=1 ;;
    --ktls-vm) ktls_vm=1 ;;
    -h | --help)
      sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

install_missing_packages "${BUILD_PACKAGES[@]}" "${TEST_PACKAGES[@]}"
image_test=${MAILRING_IMAGE_TEST:-1}
((image_test == 0)) || install_missing_packages "${IMAGE_PACKAGES[@]}"

# 200 concurrent sessions through the proxy need a few hundred descriptors per process.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

summary=()
failed=0
# step NAME COMMAND...: runs COMMAND, records PASS/FAIL and its duration, keeps going on failure.
step() {
  local name=$1
  shift
  log "==> $name"
  local start=$SECONDS status=0
  "$@" || status=$?
  local took=$((SECONDS - start))
  if ((status == 0)); then
    summary+=("PASS  ${took}s  $name")
  else
    summary+=("FAIL  ${took}s  $name (exit $status)")
    failed=1
  fi
  return "$status"
}

# Builds only the fuzz targets (tests/fuzz/*_fuzz.cc), with clang.
build_fuzzers() {
  local targets
  targets=$(basename -s .cc tests/fuzz/*_fuzz.cc | tr '\n' ' ')
  CC=clang CXX=clang++ build_targets build-fuzz "$targets" -DMAILRING_FUZZ=ON \
    -DMAILRING_BUILD_PERF=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
}

# Runs every libFuzzer target in build-fuzz/ for a fixed time, each from a copy of its seeds
# (the repository's corpus is not modified); fails if any target finds a crash.
run_fuzzers() {
  local seconds=${MAILRING_FUZZ_SECONDS:-15} failed_targets=() target name
  mkdir -p build-fuzz/artifacts build-fuzz/corpus
  for target in build-fuzz/tests/fuzz/*_fuzz; do
    [[ -x $target ]] || continue
    name=$(basename "$target" _fuzz)
    mkdir -p "build-fuzz/corpus/$name"
    if ! "$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="build-fuzz/artifacts/$name-" -print_final_stats=1 \
      "build-fuzz/corpus/$name" "tests/fuzz/seeds/$name" >"build-fuzz/$name.log" 2>&1; then
      failed_targets+=("$name")
      log "fuzz target $name FAILED; its log: build-fuzz/$name.log"
      grep -E "ERROR|SUMMARY|Test unit written" "build-fuzz/$name.log" | head -n 5 >&2 || true
    else
      log "fuzz target $name: $(grep -m1 -E '^stat::number_of_executed_units' \
        "build-fuzz/$name.log" | awk '{print $2}') runs in ${seconds}s, no crash"
    fi
  done
  ((${#failed_targets[@]} == 0))
}

ctest_in() {
  local dir=$1
  shift
  ctest --test-dir "$dir" --output-on-failure --no-tests=ignore "$@"
}

jobs=-j"$(nproc)"

if step "build build/ (RelWithDebInfo)" build_tree build; then
  step "unit tests (build/)" ctest_in build "$jobs" -LE 'integration|image|soak' || true
  # Alone, not next to the unit tests: it times sessions and opens hundreds of them.
  step "integration tests against Dovecot (build/)" ctest_in build -L integration || true
  if [[ ${MAILRING_SOAK_SECONDS:-60} != 0 ]]; then
    step "fault-injection soak, ${MAILRING_SOAK_SECONDS:-60}s (build/, tests/soak)" \
      ctest_in build -L soak || true
  fi
  if ((image_test != 0)) &&
    step "image: scripts/image.sh from build/mailring" scripts/image.sh --binary build/mailring; then
    step "image under podman: seccomp profile, PREAUTH, 20 MiB FETCH (tests/image)" \
      ctest_in build -L image || true
  fi
fi

if ((ktls_vm != 0)); then
  step "kTLS in a VM (scripts/ktls_vm.sh: Debian kernel under QEMU, Dovecot, 20 MiB FETCH)" \
    scripts/ktls_vm.sh || true
fi

if ((quick == 0)); then
  if step "build build-asan/ (ASan+UBSan)" build_tree build-asan \
    -DMAILRING_SANITIZER=address -DMAILRING_BUILD_PERF=OFF; then
    step "unit tests under ASan+UBSan (build-asan/)" \
      ctest_in build-asan "$jobs" -LE 'integration|image|soak' || true
    if [[ ${MAILRING_ASAN_INTEGRATION:-1} == 1 ]]; then
      step "integration tests under ASan+UBSan (build-asan/)" ctest_in build-asan -L integration ||
        true
    fi
  fi
  if step "build build-fuzz/ (clang, libFuzzer)" build_fuzzers; then
    step "fuzz targets, ${MAILRING_FUZZ_SECONDS:-15}s each (build-fuzz/)" run_fuzzers || true
  fi
  # Only what the tsan-labelled tests need: the lock-free credential cache's stress test.
  if step "build build-tsan/ (TSan)" build_targets build-tsan "credential_cache_test" \
    -DMAILRING_SANITIZER=thread -DMAILRING_BUILD_PERF=OFF; then
    step "tests labelled tsan under TSan (build-tsan/)" ctest_in build-tsan "$jobs" -L tsan || true
  fi
fi

echo
echo "==== scripts/test.sh summary ===="
printf '%s\n' "${summary[@]}"
if ((failed)); then
  echo "RESULT: FAILED"
  exit 1
fi
echo "RESULT: all passed"
