#!/usr/bin/env bash
# A throw-away Dovecot 2.3 for mailring's integration tests and demo.
#
#   dovecot_fixture.sh start DIR PORT [--oauth2-introspection URL] [--tls CERT KEY IMAPS_PORT]
#                                       generate config + mail in DIR, start Dovecot on
#                                       127.0.0.1:PORT, return once PORT accepts connections.
#                                       With --oauth2-introspection, Dovecot also offers XOAUTH2
#                                       and OAUTHBEARER and checks their bearer tokens with an
#                                       RFC 7662 POST to URL (the response's "username" must be
#                                       the login user and "active" must be true); PLAIN and
#                                       LOGIN keep using the passwd-file.
#                                       With --tls (PEM files; CERT may be a chain), Dovecot runs
#                                       with `ssl = yes`: STARTTLS is offered on PORT and IMAPS
#                                       (TLS from the first byte) listens on 127.0.0.1:IMAPS_PORT;
#                                       the start waits for both. CERT and KEY are copied into
#                                       DIR/tls (readable by the Dovecot user). Without --tls:
#                                       `ssl = no`, plaintext only, no STARTTLS capability.
#                                       More protocols (each option names its port):
#                                       --pop3 PORT, --pop3s PORT (needs --tls): POP3 (STLS
#                                       offered with --tls) and POP3S.
#                                       --submission PORT SINK_PORT, --submissions PORT (needs
#                                       --tls): Dovecot's SMTP submission service (STARTTLS
#                                       offered with --tls), relaying what it accepts to a sink
#                                       on 127.0.0.1:SINK_PORT (smtp_sink.py, started here) that
#                                       stores message N as DIR/sink/N.eml and DIR/sink/N.env.
#   dovecot_fixture.sh stop DIR         stop that Dovecot (idempotent; fine if never started)
#
# Everything lives in DIR (config, sockets, state, logs, Maildirs): nothing outside it is read or
# written except, when run as root, the creation of the system user `mailring-test`.
#
# Dovecot refuses to access mail as root, and a root master would need the dovecot/dovenull users
# and chroots set up the Debian way. Instead the whole Dovecot runs as one unprivileged user
# ("rootless" mode): as root we drop to `mailring-test`; as any other user we run as ourselves.
# DIR and its parents must be traversable by that user (mktemp -d under /tmp is fine; DIR itself
# is chowned to the user).
#
# What the tests may rely on after `start` (all files in DIR):
#   users          alice / secret
#                  bob   / b"o b  (a space and a double quote: exercises quoting)
#                  carol / p{5}ass\ (a brace literal lookalike and a backslash)
#   INBOX of alice 1: "Welcome to mailring" text "Hello from the mailring test fixture."
#                  2: "Second message" text "The second fixture message."
#                  3: "Third message" text "The third fixture message."
#                  4: "Twenty mebibytes", a deterministic ~20 MiB message with CRLF line ends
#   big.eml        exactly the bytes of message 4 (what BODY[] returns)
#   big.sha256     lowercase hex SHA-256 of big.eml, no newline
#   big.size       byte size of big.eml, no newline
#   dovecot.log    Dovecot's log
#   dovecot.conf   the generated config (`dovecot -n -c DIR/dovecot.conf` shows it)
#   dovecot-oauth2.conf.ext  the oauth2 passdb's settings (only with --oauth2-introspection)
#   tls/server.pem, tls/server.key  the certificate and key Dovecot presents (only with --tls)
#   Login lines in dovecot.log name the transport: "... mpid=N, TLS, session=<...>" for a login
#   over TLS (IMAPS or after STARTTLS), "secured" for a plaintext login from loopback.
set -euo pipefail

readonly kTestUser=mailring-test
readonly kStartTimeoutSeconds=15

die() {
  echo "dovecot_fixture: $*" >&2
  exit 1
}

usage() {
  echo "usage: $0 start DIR PORT [--oauth2-introspection URL] [--tls CERT KEY IMAPS_PORT]" \
    "[--pop3 PORT] [--pop3s PORT] [--submission PORT SINK_PORT] [--submissions PORT] | stop DIR" >&2
  exit 2
}

# Prints the user Dovecot runs as, creating the system user when we are root.
run_user() {
  if [[ $(id -u) -ne 0 ]]; then
    id -un
    return
  fi
  if ! id "$kTestUser" >/dev/null 2>&1; then
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
      --user-group "$kTestUser" >/dev/null
  fi
  echo "$kTestUser"
}

# Runs "$@" as the Dovecot user.
as_user() {
  local user=$1
  shift
  if [[ $(id -u) -eq 0 ]]; then
    # setpriv, not runuser: no PAM session, so the raised descriptor limit survives.
    setpriv --reuid="$user" --regid="$user" --init-groups -- "$@"
  else
    "$@"
  fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Writes one small message with CRLF line ends to $1.
write_small_message() {
  local file=$1 subject=$2 text=$3 date=$4
  printf '%s\r\n' \
    "From: Fixture Sender <sender@example.org>" \
    "To: Alice <alice@example.org>" \
    "Subject: $subject" \
    "Date: $date" \
    "Message-ID: <$(echo "$subject" | tr -c 'A-Za-z0-9' '-')@fixture.mailring>" \
    "MIME-Version: 1.0" \
    "Content-Type: text/plain; charset=us-ascii" \
    "" \
    "$text" >"$file"
}

# Writes the deterministic ~20 MiB message to $1: headers, then 262144 numbered lines of 80 bytes
# (78 + CRLF) so a reordered, dropped or duplicated chunk changes the digest.
write_big_message() {
  local file=$1
  {
    printf '%s\r\n' \
      "From: Fixture Sender <sender@example.org>" \
      "To: Alice <alice@example.org>" \
      "Subject: Twenty mebibytes" \
      "Date: Thu, 04 Jan 2024 12:00:00 +0000" \
      "Message-ID: <big@fixture.mailring>" \
      "MIME-Version: 1.0" \
      "Content-Type: text/plain; charset=us-ascii" \
      ""
    LC_ALL=C awk 'BEGIN {
      alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      doubled = alphabet alphabet;
      for (i = 0; i < 262144; i++) {
        # 9 digits + space + 68 characters rotating with the line number = 78 bytes.
        printf "%09d %s\r\n", i, substr(doubled, (i % 64) + 1, 68);
      }
    }'
  } >"$file"
}

make_maildir() {
  local dir=$1
  mkdir -p "$dir/cur" "$dir/new" "$dir/tmp"
}

write_config() {
  local dir=$1 port=$2 user=$3 uid=$4 gid=$5 introspection_url=$6 imaps_port=$7
  local protocols="imap" more_services=""
  if [[ -n $pop3_port ]]; then
    protocols+=" pop3"
    more_services+="
service pop3-login {
  chroot =
  inet_listener pop3 {
    address = 127.0.0.1
    port = $pop3_port
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = ${pop3s_port:-0}
    ssl = yes
  }
  service_count = 0
  process_min_avail = 1
}
protocol pop3 {
  pop3_uidl_format = %08Xu%08Xv
}"
  fi
  if [[ -n $submission_port ]]; then
    protocols+=" submission"
    more_services+="
hostname = mailring-fixture.test
submission_relay_host = 127.0.0.1
submission_relay_port = $sink_port
submission_relay_ssl = no
service submission-login {
  chroot =
  inet_listener submission {
    address = 127.0.0.1
    port = $submission_port
  }
  inet_listener submissions {
    address = 127.0.0.1
    port = ${submissions_port:-0}
    ssl = yes
  }
  service_count = 0
  process_min_avail = 1
}"
  fi
  local mechanisms="plain login" oauth2_passdb="" penalty_listener=""
  local ssl_settings="ssl = no" imaps_listener="port = 0"
  if [[ -n $imaps_port ]]; then
    # STARTTLS on the plain port, TLS from the first byte on the IMAPS port. Plaintext logins
    # stay allowed (mailring's opportunistic and not-offered cases need them).
    ssl_settings="ssl = yes
ssl_cert = <$dir/tls/server.pem
ssl_key = <$dir/tls/server.key
ssl_min_protocol = TLSv1.2"
    imaps_listener="address = 127.0.0.1
    port = $imaps_port
    ssl = yes"
  fi
  if [[ -n $introspection_url ]]; then
    mechanisms="plain login xoauth2 oauthbearer"
    # The OAuth tests present rejected tokens on purpose, all from 127.0.0.1: Dovecot's per-IP
    # auth penalty (2 s doubling to 15 s, kept by anvil) would delay every later login. Without
    # its socket (mode 0 = not created) the auth process runs with the penalty disabled.
    penalty_listener="unix_listener anvil-auth-penalty {
    mode = 0
  }"
    # Each passdb serves only its own mechanisms: a password is never sent to the introspection
    # endpoint, a bearer token never compared with the passwd-file.
    oauth2_passdb="passdb {
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = $dir/dovecot-oauth2.conf.ext
}"
    cat >"$dir/dovecot-oauth2.conf.ext" <<EOF
# Generated by tests/integration/dovecot_fixture.sh: bearer tokens checked by RFC 7662
# introspection (POST token=...) at the tests' fake authorization server, every time (no cache).
introspection_mode = post
introspection_url = $introspection_url
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
debug = yes
EOF
  fi
  cat >"$dir/dovecot.conf" <<EOF
# Generated by tests/integration/dovecot_fixture.sh; throw-away, loopback only, TLS only with --tls.
instance_name = mailring-fixture-$port
base_dir = $dir/run
state_dir = $dir/state
log_path = $dir/dovecot.log
info_log_path = $dir/dovecot.log
debug_log_path = $dir/dovecot.log

protocols = $protocols
listen = 127.0.0.1
$ssl_settings
disable_plaintext_auth = no
auth_mechanisms = $mechanisms
auth_failure_delay = 0
login_greeting = mailring fixture ready.

# Rootless: every process runs as the user that started the master.
default_login_user = $user
default_internal_user = $user
default_internal_group = $user
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid
mail_uid = $uid
mail_gid = $gid
mail_location = maildir:~/Maildir
mailbox_idle_check_interval = 1 secs

# The tests open a few hundred sessions of one user from one address at once.
mail_max_userip_connections = 2000
default_process_limit = 1000
default_client_limit = 6000
default_vsz_limit = 1G

passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%u $dir/passwd
}
$oauth2_passdb
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$dir/home/%u
}

service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $port
  }
  inet_listener imaps {
    $imaps_listener
  }
  # One login process serves many clients: starting one per connection is slow under load.
  service_count = 0
  process_min_avail = 1
  client_limit = 2500
}
service imap {
  process_limit = 1000
}
$more_services
service anvil {
  chroot =
  $penalty_listener
}
service stats {
  unix_listener stats-reader {
    user = $user
  }
  unix_listener stats-writer {
    user = $user
  }
}
EOF
}

start() {
  local dir=$1 port=$2 introspection_url=${3:-} tls_cert=${4:-} tls_key=${5:-} imaps_port=${6:-}
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  command -v dovecot >/dev/null || die "dovecot not installed (apt-get install dovecot-imapd)"
  if port_open "$port"; then
    die "127.0.0.1:$port already accepts connections; pick a free port"
  fi
  if [[ -n $imaps_port ]]; then
    [[ $imaps_port =~ ^[0-9]+$ ]] || die "IMAPS_PORT must be a number, got '$imaps_port'"
    [[ -r $tls_cert && -r $tls_key ]] || die "--tls: cannot read '$tls_cert' or '$tls_key'"
    if port_open "$imaps_port"; then
      die "127.0.0.1:$imaps_port already accepts connections; pick a free port"
    fi
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [[ -f $dir/run/master.pid ]] && kill -0 "$(cat "$dir/run/master.pid")" 2>/dev/null; then
    die "a fixture Dovecot already runs in $dir (stop it first)"
  fi

  local user uid gid
  user=$(run_user)
  uid=$(id -u "$user")
  gid=$(id -g "$user")

  rm -rf "${dir:?}/run" "${dir:?}/state" "${dir:?}/home" "${dir:?}/dovecot.log" \
    "${dir:?}/dovecot-oauth2.conf.ext" "${dir:?}/tls"
  mkdir -p "$dir/run" "$dir/state"
  if [[ -n $imaps_port ]]; then
    # Copies owned by the Dovecot user (chowned with DIR below); the key stays private to it.
    mkdir -p "$dir/tls"
    cp "$tls_cert" "$dir/tls/server.pem"
    cp "$tls_key" "$dir/tls/server.key"
    chmod 0644 "$dir/tls/server.pem"
    chmod 0600 "$dir/tls/server.key"
  fi

  # passwd-file: user:password; passwords are stored as given ({PLAIN} scheme), so any byte but
  # ':' and newline is fine.
  local backslash="\\"
  printf '%s\n' \
    'alice:{PLAIN}secret' \
    'bob:{PLAIN}b"o b' \
    "carol:{PLAIN}p{5}ass$backslash" >"$dir/passwd"

  local inbox=$dir/home/alice/Maildir
  make_maildir "$inbox"
  # Maildir file names start with the delivery time; Dovecot assigns UIDs in name order.
  write_small_message "$inbox/cur/1704067201.M1P1.fixture:2," "Welcome to mailring" \
    "Hello from the mailring test fixture." "Mon, 01 Jan 2024 00:00:01 +0000"
  write_small_message "$inbox/cur/1704067202.M2P1.fixture:2," "Second message" \
    "The second fixture message." "Mon, 01 Jan 2024 00:00:02 +0000"
  write_small_message "$inbox/cur/1704067203.M3P1.fixture:2," "Third message" \
    "The third fixture message." "Mon, 01 Jan 2024 00:00:03 +0000"
  write_big_message "$inbox/cur/1704067204.M4P1.fixture:2,"
  cp "$inbox/cur/1704067204.M4P1.fixture:2," "$dir/big.eml"
  sha256sum "$dir/big.eml" | cut -d' ' -f1 | tr -d '\n' >"$dir/big.sha256"
  stat -c %s "$dir/big.eml" | tr -d '\n' >"$dir/big.size"
  make_maildir "$dir/home/bob/Maildir"
  make_maildir "$dir/home/carol/Maildir"

  write_config "$dir" "$port" "$user" "$uid" "$gid" "$introspection_url" "$imaps_port"
  chown -R "$user:" "$dir"
  chmod 0755 "$dir"
  as_user "$user" test -r "$dir/dovecot.conf" ||
    die "user $user cannot read $dir (are its parent directories traversable?)"

  # Dovecot wants enough descriptors for its client limits; raise the soft limit as far as allowed.
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  if ! as_user "$user" dovecot -c "$dir/dovecot.conf" 2>"$dir/run/start.err"; then
    cat "$dir/run/start.err" >&2
    [[ -f $dir/dovecot.log ]] && tail -n 20 "$dir/dovecot.log" >&2
    die "dovecot failed to start (config: $dir/dovecot.conf)"
  fi

  if [[ -n $submission_port ]]; then
    command -v python3 >/dev/null || die "--submission needs python3 for the SMTP sink"
    mkdir -p "$dir/sink"
    nohup python3 "$(dirname "${BASH_SOURCE[0]}")/smtp_sink.py" "$sink_port" "$dir/sink" \
      >"$dir/run/sink.log" 2>&1 </dev/null &
    echo $! >"$dir/run/sink.pid"
  fi

  local wait_ports=("$port" $imaps_port $pop3_port $pop3s_port $submission_port $submissions_port
    $sink_port)
  all_open() {
    local p
    for p in "${wait_ports[@]}"; do port_open "$p" || return 1; done
  }
  local deadline=$((SECONDS + kStartTimeoutSeconds))
  until all_open; do
    if ((SECONDS >= deadline)); then
      [[ -f $dir/dovecot.log ]] && tail -n 20 "$dir/dovecot.log" >&2
      stop "$dir"
      die "dovecot did not accept on 127.0.0.1 ports ${wait_ports[*]} within ${kStartTimeoutSeconds}s"
    fi
    sleep 0.1
  done
}

stop() {
  local dir=$1
  [[ -d $dir ]] || return 0
  if [[ -f $dir/run/sink.pid ]]; then
    kill -TERM "$(cat "$dir/run/sink.pid")" 2>/dev/null || true
    rm -f "$dir/run/sink.pid"
  fi
  local pidfile=$dir/run/master.pid
  [[ -f $pidfile ]] || return 0
  local pid
  pid=$(cat "$pidfile")
  if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
      if ((SECONDS >= deadline)); then
        kill -KILL "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
}

[[ $# -ge 1 ]] || usage
case $1 in
  start)
    [[ $# -ge 3 ]] || usage
    start_dir=$2 start_port=$3 introspection="" cert="" key="" imaps=""
    # Read by write_config and start (bash's dynamic scope).
    pop3_port="" pop3s_port="" submission_port="" submissions_port="" sink_port=""
    shift 3
    while [[ $# -gt 0 ]]; do
      case $1 in
        --oauth2-introspection)
          [[ $# -ge 2 && -z $introspection ]] || usage
          [[ $2 =~ ^https?://[^[:space:]]+$ ]] || die "--oauth2-introspection needs an http(s) URL"
          introspection=$2
          shift 2
          ;;
        --tls)
          [[ $# -ge 4 && -z $imaps ]] || usage
          cert=$2 key=$3 imaps=$4
          [[ -n $imaps ]] || usage
          shift 4
          ;;
        --pop3 | --pop3s | --submissions)
          [[ $# -ge 2 && $2 =~ ^[0-9]+$ ]] || usage
          case $1 in
            --pop3) pop3_port=$2 ;;
            --pop3s) pop3s_port=$2 ;;
            --submissions) submissions_port=$2 ;;
          esac
          shift 2
          ;;
        --submission)
          [[ $# -ge 3 && $2 =~ ^[0-9]+$ && $3 =~ ^[0-9]+$ ]] || usage
          submission_port=$2 sink_port=$3
          shift 3
          ;;
        *) usage ;;
      esac
    done
    if [[ -z $imaps && (-n $pop3s_port || -n $submissions_port) ]]; then
      die "--pop3s and --submissions need --tls"
    fi
    [[ -z $pop3s_port || -n $pop3_port ]] || die "--pop3s needs --pop3"
    [[ -z $submissions_port || -n $submission_port ]] || die "--submissions needs --submission"
    start "$start_dir" "$start_port" "$introspection" "$cert" "$key" "$imaps"
    ;;
  stop)
    [[ $# -eq 2 ]] || usage
    stop "$2"
    ;;
  *) usage ;;
esac
