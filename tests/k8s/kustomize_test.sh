#!/usr/bin/env bash
# k8s/ as an operator applies it: `kubectl kustomize k8s/` must render the DaemonSet with the
# Localhost seccomp profile, the image scripts/image.sh tags, a read-only root and a non-root
# user; k8s/mailring-seccomp.json must be the runtime default plus exactly the three io_uring
# syscalls (compared with podman's default profile where containers-common is installed).
#   tests/k8s/kustomize_test.sh REPO_ROOT      exit 0 pass, 1 fail, 77 skip (no kubectl)
set -euo pipefail
repo=$1
command -v kubectl >/dev/null || { echo "SKIP: kubectl is not on PATH"; exit 77; }
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

rendered=$(kubectl kustomize "$repo/k8s") || { echo "FAIL: kubectl kustomize k8s/"; exit 1; }
daemonset=$(awk 'BEGIN{RS="\n---\n"} /\nkind: DaemonSet\n/' <<<"$rendered")
[[ -n $daemonset ]] || fail "no DaemonSet rendered"
for want in "type: Localhost" "localhostProfile: mailring-seccomp.json" \
  "image: localhost/mailring:latest" "readOnlyRootFilesystem: true" "runAsNonRoot: true" \
  "runAsUser: 65532" "--log-format=json"; do
  grep -qF -- "$want" <<<"$daemonset" || fail "the DaemonSet lacks '$want'"
done
for kind in Namespace CustomResourceDefinition ServiceAccount DaemonSet; do
  grep -q "^kind: $kind\$" <<<"$rendered" || fail "kubectl kustomize renders no $kind"
done

profile=$repo/k8s/mailring-seccomp.json
allowed=$(jq -r '.syscalls[] | select(.action == "SCMP_ACT_ALLOW") | .names[]' "$profile") ||
  fail "$profile is not JSON"
for syscall in io_uring_setup io_uring_enter io_uring_register; do
  grep -qx "$syscall" <<<"$allowed" || fail "$profile does not allow $syscall"
done
[[ $(jq -r .defaultAction "$profile") == SCMP_ACT_ERRNO ]] || fail "defaultAction is not ERRNO"
default=/usr/share/containers/seccomp.json
if [[ -f $default ]]; then
  added=$(diff <(jq -S '.syscalls[].names |= sort' "$default") \
    <(jq -S '.syscalls[].names |= sort' "$profile") | grep '^>' || true)
  removed=$(diff <(jq -S '.syscalls[].names |= sort' "$default") \
    <(jq -S '.syscalls[].names |= sort' "$profile") | grep '^<' || true)
  [[ -z $removed ]] || fail "the profile drops parts of the default: $removed"
  [[ $(grep -c io_uring <<<"$added") == 3 && $(wc -l <<<"$added") == 3 ]] ||
    fail "the profile adds more than the io_uring syscalls to the default: $added"
fi
if ((failures > 0)); then exit 1; fi
echo "PASS: kubectl kustomize k8s/ renders the DaemonSet with the io_uring seccomp profile"
