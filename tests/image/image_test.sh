#!/usr/bin/env bash
# Runs mailring's OCI image the way a cluster would, in front of the test Dovecot.
#
#   tests/image/image_test.sh [--image NAME]     (default localhost/mailring:latest; built with
#                                                 scripts/image.sh when it is not in storage)
#
# Checks, and fails with a message on the first that does not hold:
#   1. the image is at most 64 MB, its USER is the numeric non-root 65532 and it has no shell;
#   2. under k8s/mailring-seccomp.json, with a read-only root, host network and the routes file
#      mounted read-only, a client is greeted "* PREAUTH" and FETCHes message 4 (~20 MiB): the
#      literal's size and SHA-256 equal the fixture's big.size and big.sha256;
#   3. under podman's default seccomp profile mailring exits non-zero with the one-line io_uring
#      error (naming io_uring, seccomp and the profile), within 20 s.
# Installs podman, buildah and runc (scripts/common.sh). Takes about 20 s with the image built.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/common.sh"
cd "$REPO_ROOT"

image=localhost/mailring:latest
while (($# > 0)); do
  case $1 in
    --image) image=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
readonly FIXTURE=$REPO_ROOT/tests/integration/dovecot_fixture.sh
readonly PROFILE=$REPO_ROOT/k8s/mailring-seccomp.json

fail() {
  log "FAIL: $*"
  exit 1
}

install_missing_packages "${IMAGE_PACKAGES[@]}" "${TEST_PACKAGES[@]}" python3
if ! podman image exists "$image"; then
  log "$image is not in the local storage; building it with scripts/image.sh"
  scripts/image.sh
fi

# This machine's facts: crun refuses hybrid cgroups, and podman's default ulimits exceed the
# hard limits, so ask for what the host allows (capped, mailring needs far less here).
nofile=$(ulimit -Hn)
[[ $nofile == unlimited || $nofile -gt 20000 ]] && nofile=20000
nproc=$(ulimit -Hu)
[[ $nproc == unlimited || $nproc -gt 1000 ]] && nproc=1000
podman=(podman --runtime runc --cgroup-manager cgroupfs)
run_options=(--network host --read-only --ulimit "nofile=$nofile:$nofile"
  --ulimit "nproc=$nproc:$nproc")

workdir=$(mktemp -d /tmp/mailring-image-test.XXXXXX)
chmod 755 "$workdir"
container=mailring-image-test-$$
cleanup() {
  "${podman[@]}" rm -f -t 0 "$container" >/dev/null 2>&1 || true
  "$FIXTURE" stop "$workdir/dovecot" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
free_port() {
  local port
  for ((port = 20000 + RANDOM % 20000; ; port++)); do
    port_open "$port" || { echo "$port"; return 0; }
  done
}

# 1. The image's shape.
size=$(podman image inspect --format '{{.Size}}' "$image")
((size <= 64 * 1000 * 1000)) || fail "$image is $size bytes, over 64 MB"
user=$(podman image inspect --format '{{.Config.User}}' "$image")
[[ $user == 65532:65532 || $user == 65532 ]] || fail "$image runs as '$user', not 65532"
if "${podman[@]}" run --rm "${run_options[@]}" --entrypoint /bin/sh "$image" -c true \
  >/dev/null 2>&1; then
  fail "$image has a shell"
fi
log "image: $((size / 1000 / 1000)) MB, USER $user, no shell"

# 2. A PREAUTH session and the 20 MiB FETCH under the project's profile.
dovecot_port=$(free_port)
"$FIXTURE" start "$workdir/dovecot" "$dovecot_port" >/dev/null
listen_port=$(free_port)
cat >"$workdir/destinations.json" <<JSON
{"routes": [
  {"listen": "127.0.0.1:$listen_port",
   "destination": {"Name": "image-test-imap", "Type": "MAIL",
     "Authentication": "BasicAuthentication", "mail.user": "alice", "mail.password": "secret",
     "mail.transport.protocol": "imap4", "mail.imap4.host": "127.0.0.1",
     "mail.imap4.port": "$dovecot_port", "mail.imap4.auth": "true", "ProxyType": "Internet"}}
]}
JSON
chmod 644 "$workdir/destinations.json"
"${podman[@]}" run -d --name "$container" "${run_options[@]}" \
  --security-opt "seccomp=$PROFILE" \
  -v "$workdir/destinations.json:/etc/mailring/destinations.json:ro" \
  "$image" --destinations /etc/mailring/destinations.json --log-level info >/dev/null
deadline=$((SECONDS + 20))
until port_open "$listen_port"; do
  if [[ $("${podman[@]}" inspect --format '{{.State.Running}}' "$container") != true ]] ||
    ((SECONDS >= deadline)); then
    "${podman[@]}" logs "$container" >&2 || true
    fail "mailring in $image did not listen on 127.0.0.1:$listen_port"
  fi
  sleep 0.2
done

if ! python3 - "$listen_port" "$(cat "$workdir/dovecot/big.size")" \
  "$(cat "$workdir/dovecot/big.sha256")" <<'PY'; then
import hashlib, re, socket, sys
port, want_size, want_sha = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=30)
f = s.makefile("rb")
greeting = f.readline()
if not greeting.startswith(b"* PREAUTH"):
    sys.exit(f"greeting is not PREAUTH: {greeting!r}")
def command(tag, text):
    s.sendall(f"{tag} {text}\r\n".encode())
    body = None
    while True:
        line = f.readline()
        if not line:
            sys.exit(f"connection closed during {text}")
        m = re.search(rb"\{(\d+)\}\r\n$", line)
        if m:
            body = f.read(int(m.group(1)))
            continue
        if line.startswith(tag.encode() + b" "):
            if not line.startswith(tag.encode() + b" OK"):
                sys.exit(f"{text}: {line!r}")
            return body
command("a1", "SELECT INBOX")
body = command("a2", "FETCH 4 BODY[]")
if body is None or len(body) != want_size:
    sys.exit(f"FETCH 4 returned {None if body is None else len(body)} bytes, want {want_size}")
if hashlib.sha256(body).hexdigest() != want_sha:
    sys.exit("FETCH 4 body differs from big.eml (SHA-256)")
command("a3", "LOGOUT")
print(f"PREAUTH session, FETCH 4: {len(body)} bytes, SHA-256 matches")
PY
  "${podman[@]}" logs "$container" >&2 || true
  fail "session through $image under $PROFILE"
fi
"${podman[@]}" logs "$container" 2>&1 | grep -q 'mailring [0-9]' ||
  fail "the start-up log line does not carry the version"
"${podman[@]}" rm -f -t 5 "$container" >/dev/null

# 3. Under the runtime's default profile: the clear error, not a bare errno.
status=0
output=$(timeout 20 "${podman[@]}" run --rm "${run_options[@]}" \
  -v "$workdir/destinations.json:/etc/mailring/destinations.json:ro" \
  "$image" --destinations /etc/mailring/destinations.json 2>&1) || status=$?
((status != 0 && status != 124)) || fail "under the default profile: exit $status, output: $output"
grep -q 'io_uring is blocked.*seccomp.*mailring-seccomp.json' <<<"$output" ||
  fail "under the default profile, no clear io_uring error; output: $output"
log "default profile: exit $status, $(grep -o 'io_uring is blocked[^,]*' <<<"$output" | head -1)"
log "PASS"
