#!/usr/bin/env bash
# Shows mailring working: a throw-away Dovecot on loopback, mailring in front of it, and the
# seed's IMAP session replayed through mailring with no LOGIN from the client.
#
#   scripts/demo.sh [--once]
#
# Installs what is missing (apt-get), builds build/mailring if needed, starts Dovecot (as an
# unprivileged user, config and mail in a temp dir) and mailring on 127.0.0.1:1143 (or a free
# port if 1143 is taken), prints the transcript, then keeps serving until Ctrl-C so you can
# connect yourself. --once exits after the transcript. Everything started is stopped and the
# temp dir removed on exit.
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

once=0
for arg in "$@"; do
  case $arg in
    --once) once=1 ;;
    -h | --help)
      sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (try --help)" >&2
      exit 2
      ;;
  esac
done

readonly FIXTURE=$REPO_ROOT/tests/integration/dovecot_fixture.sh
readonly PREFERRED_PORT=1143

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A loopback port nobody listens on right now.
free_port() {
  local port
  for port in $(shuf -i 20000-60999 -n 100); do
    port_open "$port" || { echo "$port"; return 0; }
  done
  log "no free loopback port found"
  return 1
}

install_missing_packages "${BUILD_PACKAGES[@]}" dovecot-imapd

log "building build/mailring"
cmake -S . -B build >/dev/null
cmake --build build -j"$(nproc)" --target mailring >/dev/null

workdir=$(mktemp -d /tmp/mailring-demo-XXXXXX)
chmod 0755 "$workdir"
mailring_pid=
cleanup() {
  trap - EXIT INT TERM
  if [[ -n $mailring_pid ]] && kill -0 "$mailring_pid" 2>/dev/null; then
    kill -TERM "$mailring_pid" 2>/dev/null || true
    wait "$mailring_pid" 2>/dev/null || true
  fi
  "$FIXTURE" stop "$workdir/dovecot" >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT
trap 'echo; log "stopping"; exit 0' INT TERM

dovecot_port=$(free_port)
log "starting Dovecot on 127.0.0.1:$dovecot_port (config in $workdir/dovecot)"
"$FIXTURE" start "$workdir/dovecot" "$dovecot_port"

listen_port=$PREFERRED_PORT
if port_open "$listen_port"; then
  listen_port=$(free_port)
  log "127.0.0.1:$PREFERRED_PORT is taken; mailring listens on 127.0.0.1:$listen_port instead"
fi
cat >"$workdir/destinations.json" <<EOF
{"routes": [
  {"listen": "127.0.0.1:$listen_port",
   "destination": {"Name": "example-dest-imap", "Type": "MAIL",
     "Authentication": "BasicAuthentication", "mail.user": "alice", "mail.password": "secret",
     "mail.transport.protocol": "imap4", "mail.imap4.host": "127.0.0.1",
     "mail.imap4.port": "$dovecot_port", "mail.imap4.auth": "true", "ProxyType": "Internet"}}
]}
EOF

log "starting mailring on 127.0.0.1:$listen_port (log: $workdir/mailring.log)"
build/mailring --destinations "$workdir/destinations.json" --log-level info \
  2>"$workdir/mailring.log" &
mailring_pid=$!
deadline=$((SECONDS + 10))
until port_open "$listen_port"; do
  if ! kill -0 "$mailring_pid" 2>/dev/null || ((SECONDS >= deadline)); then
    cat "$workdir/mailring.log" >&2
    log "mailring did not start"
    exit 1
  fi
  sleep 0.1
done

# Replays the seed's session on fd 3 and prints both sides. A response ends with the line tagged
# like the command; literals in these responses are text lines, so reading lines is enough.
replay() {
  local line tag command
  exec 3<>"/dev/tcp/127.0.0.1/$listen_port"
  IFS= read -r -t 10 line <&3 || { log "no greeting"; return 1; }
  echo "S: ${line%$'\r'}"
  for command in '2 LIST "" "*"' '3 SELECT INBOX' '5 FETCH 1 BODY[TEXT]' '6 LOGOUT'; do
    tag=${command%% *}
    echo "C: $command"
    printf '%s\r\n' "$command" >&3
    while true; do
      IFS= read -r -t 10 line <&3 || { log "no answer to: $command"; return 1; }
      echo "S: ${line%$'\r'}"
      [[ $line == "$tag "* ]] && break
    done
  done
  exec 3<&-
}

echo
echo "==== IMAP session through mailring (C: client, S: what mailring relays) ===="
replay
echo "==== end of session ===="
echo
echo "mailring's log for it:"
sed 's/^/  /' "$workdir/mailring.log"

if ((once)); then
  exit 0
fi

cat <<EOF

mailring is serving 127.0.0.1:$listen_port in front of Dovecot on 127.0.0.1:$dovecot_port.
Connect and type IMAP without logging in, for example:

  telnet 127.0.0.1 $listen_port        (or: nc -C 127.0.0.1 $listen_port)
  2 LIST "" "*"
  3 SELECT INBOX
  5 FETCH 1 BODY[TEXT]

Log: $workdir/mailring.log   Press Ctrl-C to stop and clean up.
EOF
wait "$mailring_pid"
