#!/usr/bin/env bash
# perf/compare.sh: mailring next to HAProxy and nginx mail, in one run, on loopback.
#
# Starts the synthetic upstream (perf/harness), then one proxy at a time on its own port:
#   direct          the load generator talks to the upstream itself (no proxy)
#   haproxy         HAProxy 2.6, tcp mode, nbthread 1, stock buffers
#   haproxy-splice  the same with option splice-request / splice-response
#   nginx           nginx mail proxy, 1 worker, auth_http answered by the synthetic upstream
#   mailring-1      mailring --workers 1, logging in upstream itself (PREAUTH to the client)
#   mailring-2      mailring --workers 2
# and runs the three load modes against each (idle, throughput, churn) in interleaved rounds:
# every round starts each proxy afresh and runs all three modes, the proxy order rotating from
# round to round. The proxy's CPU time (utime+stime of its processes from /proc/PID/stat) is
# read before and after each mode. At the end one table of medians, with ratios against
# HAProxy with 1 thread. After the rounds, one bigger idle run per proxy (--idle-big).
#
# Benchmarks are not tests: the script never fails on speed. It exits non-zero only when the
# harness itself cannot run (build, upstream, ports, flags). A proxy that crashes or drops
# sessions shows up as failures in the table's notes.
#
#   perf/compare.sh                # full table, 5 rounds, about 6-8 minutes on 2 cores
#   perf/compare.sh --quick        # 2 rounds, smaller sizes, about 1-2 minutes
#   perf/compare.sh --rounds 7 --proxies haproxy,mailring-1 --mailring /path/to/mailring
#   perf/compare.sh --tls --proxies haproxy,mailring-1   # the TLS upstream leg, see --tls
#
# --tls: the upstream leg is TLS. A second HAProxy (1 thread, not measured) terminates TLS 1.3
# (TLS_AES_128_GCM_SHA256, a certificate from tests/integration/test_ca.sh) in front of the
# synthetic upstream; HAProxy relays to it with `ssl verify required` on its server line and
# mailring with an imap4s route verified against --ca-file. Clients still speak plain IMAP.
# Use it with --proxies haproxy,mailring-1 (splice and nginx do not apply to a TLS leg).
# Both resume TLS sessions by default (HAProxy keeps the last session per server, mailring a
# ticket cache per worker and destination); for churn with a full handshake every session:
#   haproxy-noreuse       HAProxy with no-ssl-reuse on its server line
#   mailring-1-noresume   mailring-1 with --tls-resumption=false
#   mailring-1-wolfssl    mailring-1 with --tls-record-takeover=false: wolfSSL keeps the records
#                         (on the AES-NI device) and its per-connection state for the whole session
#   perf/compare.sh --tls --proxies haproxy,haproxy-noreuse,mailring-1,mailring-1-noresume
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

usage() {
  cat <<EOF
usage: perf/compare.sh [options]
  --rounds N            interleaved rounds (default 5; medians are taken over them)
  --quick               2 rounds, smaller sizes (a smoke run, not a table to quote)
  --proxies LIST        comma list from: direct,haproxy,haproxy-splice,nginx,mailring-1,mailring-2
                        and, with --tls, haproxy-noreuse,mailring-1-noresume,mailring-1-wolfssl
  --build-dir DIR       where to build the harness and mailring (default: build-perf/)
  --no-build            use the binaries already in --build-dir
  --mailring BIN        benchmark this mailring binary instead of building one
  --no-install          do not apt-get install haproxy/nginx (missing ones are skipped)
  --work-dir DIR        logs, configs and raw results (default: a new /tmp/mailring-compare.*)
  --base-port N         first of 11 loopback ports (default 24100)
  --literal-bytes N     FETCH literal size (default 64M)
  --tp-sessions N       throughput sessions (default 8)
  --tp-fetches N        FETCHes per throughput session (default 3)
  --idle-sessions N     idle sessions per round (default 5000)
  --idle-big N          one extra idle run per proxy after the rounds (default 9500, 0: none)
  --hold S              seconds the idle sessions are held (default 2)
  --churn-in-flight N   concurrent churn loops (default 64)
  --churn-duration S    churn seconds (default 4)
  --tls                 TLS on the upstream leg (see the top of this script)
  --mailring-log-level  mailring's --log-level (default warning: no line per session, like the
                        other proxies' configs here)
EOF
}

ROUNDS=5
PROXIES="direct,haproxy,haproxy-splice,nginx,mailring-1,mailring-2"
BUILD_DIR="$REPO/build-perf"
DO_BUILD=1
MAILRING_BIN=""
DO_INSTALL=1
WORK_DIR=""
BASE_PORT=24100
LITERAL_BYTES=64M
TP_SESSIONS=8
TP_FETCHES=3
IDLE_SESSIONS=5000
IDLE_BIG=9500
HOLD=2
CHURN_IN_FLIGHT=64
CHURN_DURATION=4
MAILRING_LOG_LEVEL=warning
TLS=0
# --quick changes the defaults; flags given with it still win, wherever they stand.
for arg in "$@"; do
  if [[ $arg == --quick ]]; then
    ROUNDS=2
    TP_FETCHES=1
    IDLE_SESSIONS=1000
    IDLE_BIG=0
    HOLD=1
    CHURN_DURATION=2
  fi
done

while [[ $# -gt 0 ]]; do
  arg=$1
  value=""
  if [[ $arg == --*=* ]]; then
    value=${arg#*=}
    arg=${arg%%=*}
  elif [[ $# -gt 1 && $2 != --* ]]; then
    value=$2
  fi
  takes_value=1
  case $arg in
    --rounds) ROUNDS=$value ;;
    --quick) takes_value=0 ;;
    --tls) TLS=1; takes_value=0 ;;
    --proxies) PROXIES=$value ;;
    --build-dir) BUILD_DIR=$value ;;
    --no-build) DO_BUILD=0; takes_value=0 ;;
    --mailring) MAILRING_BIN=$value ;;
    --no-install) DO_INSTALL=0; takes_value=0 ;;
    --work-dir) WORK_DIR=$value ;;
    --base-port) BASE_PORT=$value ;;
    --literal-bytes) LITERAL_BYTES=$value ;;
    --tp-sessions) TP_SESSIONS=$value ;;
    --tp-fetches) TP_FETCHES=$value ;;
    --idle-sessions) IDLE_SESSIONS=$value ;;
    --idle-big) IDLE_BIG=$value ;;
    --hold) HOLD=$value ;;
    --churn-in-flight) CHURN_IN_FLIGHT=$value ;;
    --churn-duration) CHURN_DURATION=$value ;;
    --mailring-log-level) MAILRING_LOG_LEVEL=$value ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
  if [[ $takes_value == 1 ]]; then
    if [[ -z $value ]]; then echo "compare.sh: $arg needs a value" >&2; exit 2; fi
    [[ $1 == *=* ]] || shift
  fi
  shift
done

for n in ROUNDS BASE_PORT TP_SESSIONS TP_FETCHES IDLE_SESSIONS IDLE_BIG CHURN_IN_FLIGHT; do
  [[ ${!n} =~ ^[0-9]+$ ]] || { echo "compare.sh: ${n} must be a number" >&2; exit 2; }
done
[[ $ROUNDS -ge 1 ]] || { echo "compare.sh: --rounds must be at least 1" >&2; exit 2; }

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "harness error: $*"; exit 1; }

# --- processes we start, and their clean-up ---------------------------------------------------
STARTED_PIDS=()
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${STARTED_PIDS[@]}"; do
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- tools ----------------------------------------------------------------------------------
install_proxies() {
  local missing=()
  command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
  [[ -x /usr/sbin/nginx ]] || missing+=(nginx)
  [[ -f /usr/lib/nginx/modules/ngx_mail_module.so ]] || missing+=(libnginx-mod-mail)
  [[ ${#missing[@]} -gt 0 ]] || return 0
  if [[ $DO_INSTALL == 0 ]]; then
    log "not installing ${missing[*]} (--no-install): those proxies are skipped"
    return 0
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >"$WORK_DIR/apt.log" 2>&1; then
    log "apt-get install failed; running apt-get update once"
    apt-get update >>"$WORK_DIR/apt.log" 2>&1 || true
    apt-get install -y --no-install-recommends "${missing[@]}" >>"$WORK_DIR/apt.log" 2>&1 ||
      log "could not install ${missing[*]} (see $WORK_DIR/apt.log): those proxies are skipped"
  fi
}

build() {
  local targets=(mailring_synthetic_upstream mailring_load_generator)
  [[ -n $MAILRING_BIN ]] || targets+=(mailring)
  if [[ $DO_BUILD == 1 ]]; then
    if [[ ! -f $BUILD_DIR/build.ninja ]]; then
      log "configuring $BUILD_DIR (RelWithDebInfo)"
      cmake -S "$REPO" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DMAILRING_BUILD_TESTS=OFF >"$WORK_DIR/cmake.log" 2>&1 ||
        die "cmake configure failed, see $WORK_DIR/cmake.log"
    fi
    log "building ${targets[*]}"
    cmake --build "$BUILD_DIR" -j"$(nproc)" --target "${targets[@]}" >>"$WORK_DIR/cmake.log" 2>&1 ||
      die "build failed, see $WORK_DIR/cmake.log"
  fi
  UPSTREAM_BIN=$BUILD_DIR/perf/harness/mailring_synthetic_upstream
  LOADGEN_BIN=$BUILD_DIR/perf/harness/mailring_load_generator
  [[ -n $MAILRING_BIN ]] || MAILRING_BIN=$BUILD_DIR/mailring
  for bin in "$UPSTREAM_BIN" "$LOADGEN_BIN" "$MAILRING_BIN"; do
    [[ -x $bin ]] || die "missing $bin"
  done
}

# --- /proc helpers ----------------------------------------------------------------------------
# True while something listens on 127.0.0.1:$1 (read from /proc/net/tcp: state 0A = LISTEN).
listening() {
  local hex
  hex=$(printf '%04X' "$1")
  awk -v suffix=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == suffix { found = 1 }
                         END { exit !found }' /proc/net/tcp
}

# utime + stime, in clock ticks, summed over the given pids (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name).
cpu_ticks() {
  local total=0 pid fields
  for pid in "$@"; do
    fields=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || { echo -1; return; }
    # shellcheck disable=SC2086
    set -- $fields
    total=$((total + ${12} + ${13}))
  done
  echo "$total"
}

# One counter from the upstream's stats file, freshly written (SIGUSR1, then wait for seq).
upstream_counter() {
  local key=$1 file=$WORK_DIR/upstream.stats seq_before seq_now
  seq_before=$(stat_field seq "$file")
  kill -USR1 "$UPSTREAM_PID"
  for _ in $(seq 1 100); do
    seq_now=$(stat_field seq "$file")
    [[ $seq_now != "$seq_before" ]] && break
    sleep 0.02
  done
  stat_field "$key" "$file"
}
stat_field() {
  tr ' ' '\n' <"$2" | awk -F= -v key="$1" '$1 == key { print $2 }'
}

# --- proxies ----------------------------------------------------------------------------------
port_of() {
  case $1 in
    direct) echo "$UPSTREAM_PORT" ;;
    haproxy) echo $((BASE_PORT + 1)) ;;
    haproxy-splice) echo $((BASE_PORT + 2)) ;;
    nginx) echo $((BASE_PORT + 3)) ;;
    mailring-1) echo $((BASE_PORT + 4)) ;;
    mailring-2) echo $((BASE_PORT + 5)) ;;
    haproxy-noreuse) echo $((BASE_PORT + 7)) ;;
    mailring-1-noresume) echo $((BASE_PORT + 8)) ;;
    mailring-1-wolfssl) echo $((BASE_PORT + 10)) ;;
  esac
}

write_configs() {
  local splice pipes reuse
  for variant in haproxy haproxy-splice haproxy-noreuse; do
    splice=""
    pipes=""
    reuse=""
    # A full TLS handshake per session: HAProxy otherwise resumes its last session per server.
    [[ $variant == haproxy-noreuse && $TLS == 1 ]] && reuse=" no-ssl-reuse"
    if [[ $variant == haproxy-splice ]]; then
      splice=$'  option splice-request\n  option splice-response'
      # maxpipes defaults to maxconn/4, and its fds would not fit under a 20 000-fd limit.
      pipes="  maxpipes 64"
    fi
    cat >"$WORK_DIR/$variant.cfg" <<EOF
# HAProxy 2.6 as an L4 relay: one thread, default buffer size (16 KiB), no logging. maxconn:
# as many sessions as fit in 20 000 fds (two sockets each).
global
  nbthread 1
  maxconn 9900
$pipes
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
$splice
frontend imap
  bind 127.0.0.1:$(port_of "$variant")
  default_backend upstream
backend upstream
  server synthetic 127.0.0.1:$HAPROXY_SERVER_PORT$HAPROXY_SERVER_TLS$reuse
EOF
  done
  cat >"$WORK_DIR/nginx.conf" <<EOF
# nginx mail proxy: one worker; the client logs in, auth_http (the synthetic upstream) says
# where to go, nginx logs in upstream with the client's credentials and then relays.
load_module /usr/lib/nginx/modules/ngx_mail_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $WORK_DIR/nginx.pid;
error_log $WORK_DIR/nginx-error.log warn;
events { worker_connections 20000; }
mail {
  auth_http 127.0.0.1:$AUTH_HTTP_PORT/auth;
  proxy on;
  server {
    listen 127.0.0.1:$(port_of nginx);
    protocol imap;
  }
}
EOF
  local protocol=imap4 port=$UPSTREAM_PORT
  if [[ $TLS == 1 ]]; then
    protocol=imap4s
    port=$TLS_PORT
  fi
  for variant in mailring-1 mailring-2 mailring-1-noresume mailring-1-wolfssl; do
    cat >"$WORK_DIR/$variant.json" <<EOF
{"routes":[{"listen":"127.0.0.1:$(port_of "$variant")","destination":{"Name":"bench","Type":"MAIL","Authentication":"BasicAuthentication","mail.transport.protocol":"$protocol","mail.user":"u","mail.password":"p","mail.$protocol.host":"127.0.0.1","mail.$protocol.port":"$port","mail.$protocol.auth":"true","ProxyType":"Internet"}}]}
EOF
  done
}

available() {
  case $1 in
    direct|mailring-1|mailring-2) return 0 ;;
    mailring-1-noresume|mailring-1-wolfssl) [[ $TLS == 1 ]] ;;
    haproxy|haproxy-splice) command -v haproxy >/dev/null 2>&1 ;;
    haproxy-noreuse) [[ $TLS == 1 ]] && command -v haproxy >/dev/null 2>&1 ;;
    nginx) [[ -x /usr/sbin/nginx && -f /usr/lib/nginx/modules/ngx_mail_module.so ]] ;;
    *) return 1 ;;
  esac
}

# Starts proxy $1; sets PROXY_PID (the process we stop) and PROXY_PIDS (what we measure).
# Returns non-zero if it does not come up listening within 10 s.
start_proxy() {
  local name=$1 port log=$WORK_DIR/$1.log
  port=$(port_of "$name")
  PROXY_PID=""
  PROXY_PIDS=""
  case $name in
    direct) return 0 ;;
    haproxy|haproxy-splice|haproxy-noreuse) haproxy -db -f "$WORK_DIR/$name.cfg" >>"$log" 2>&1 & ;;
    nginx) /usr/sbin/nginx -e "$WORK_DIR/nginx-error.log" -p "$WORK_DIR/" \
             -c "$WORK_DIR/nginx.conf" >>"$log" 2>&1 & ;;
    mailring-1|mailring-2)
      "$MAILRING_BIN" --destinations "$WORK_DIR/$name.json" --workers "${name#mailring-}" \
        "${MAILRING_TLS_FLAGS[@]}" --log-level "$MAILRING_LOG_LEVEL" >>"$log" 2>&1 & ;;
    mailring-1-noresume)
      "$MAILRING_BIN" --destinations "$WORK_DIR/$name.json" --workers 1 --tls-resumption=false \
        "${MAILRING_TLS_FLAGS[@]}" --log-level "$MAILRING_LOG_LEVEL" >>"$log" 2>&1 & ;;
    mailring-1-wolfssl)
      "$MAILRING_BIN" --destinations "$WORK_DIR/$name.json" --workers 1 \
        --tls-record-takeover=false "${MAILRING_TLS_FLAGS[@]}" --log-level "$MAILRING_LOG_LEVEL" \
        >>"$log" 2>&1 & ;;
  esac
  PROXY_PID=$!
  STARTED_PIDS+=("$PROXY_PID")
  for _ in $(seq 1 100); do
    kill -0 "$PROXY_PID" 2>/dev/null || { log "$name exited at start (see $log)"; return 1; }
    if listening "$port"; then
      PROXY_PIDS=$PROXY_PID
      if [[ $name == nginx ]]; then
        local children=""
        for _ in $(seq 1 50); do
          children=$(pgrep -P "$PROXY_PID" | paste -sd, -) && [[ -n $children ]] && break
          sleep 0.1
        done
        [[ -n $children ]] || { log "nginx started no worker"; return 1; }
        PROXY_PIDS="$PROXY_PID,$children"
      fi
      return 0
    fi
    sleep 0.1
  done
  log "$name is not listening on $port after 10 s"
  return 1
}

stop_proxy() {
  [[ -n ${PROXY_PID:-} ]] || return 0
  kill -TERM "$PROXY_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$PROXY_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  PROXY_PID=""
}

# run_mode ROUND PROXY MODE LOADGEN-ARGS...: runs the load generator, measures the proxy's CPU
# around it, appends one line to results.txt.
run_mode() {
  local round=$1 name=$2 mode=$3
  shift 3
  local port pid_flag=() cpu_before=0 cpu_after=0 logins_before=0 logins_after=0 out status=0
  port=$(port_of "$name")
  local pids=()
  if [[ -n $PROXY_PIDS ]]; then
    IFS=, read -r -a pids <<<"$PROXY_PIDS"
    pid_flag=(--pid="$PROXY_PIDS")
  fi
  [[ $mode == churn ]] && logins_before=$(upstream_counter logins)
  [[ ${#pids[@]} -gt 0 ]] && cpu_before=$(cpu_ticks "${pids[@]}")
  out=$("$LOADGEN_BIN" --port="$port" --mode="$mode" "${pid_flag[@]}" "$@" 2>>"$WORK_DIR/loadgen.err") ||
    status=$?
  [[ ${#pids[@]} -gt 0 ]] && cpu_after=$(cpu_ticks "${pids[@]}")
  [[ $mode == churn ]] && logins_after=$(upstream_counter logins)
  local alive=1
  [[ -z ${PROXY_PID:-} ]] || kill -0 "$PROXY_PID" 2>/dev/null || alive=0
  [[ -n $out ]] || out="mode=$mode complete=0 errors=no_output_exit_$status"
  local extra="round=$round proxy=$name exit=$status proxy_alive=$alive"
  if [[ ${#pids[@]} -gt 0 && $cpu_before -ge 0 && $cpu_after -ge 0 ]]; then
    extra+=" cpu_ticks=$((cpu_after - cpu_before)) clk_tck=$CLK_TCK"
  fi
  [[ $mode == churn ]] && extra+=" upstream_logins=$((logins_after - logins_before))"
  echo "$extra $out" >>"$WORK_DIR/results.txt"
  log "  $name $mode: $(summary_of "$out")"
}

summary_of() {
  local line=$1
  case $line in
    *mode=throughput*) echo "$line" | grep -oE '(gbps|failed|errors)=[^ ]*' | paste -sd' ' - ;;
    *mode=idle*) echo "$line" | grep -oE '(idling|kib_per_session|threads_held|failed|errors)=[^ ]*' |
                   paste -sd' ' - ;;
    *) echo "$line" | grep -oE '(sessions_per_s|p99_us|failed|errors)=[^ ]*' | paste -sd' ' - ;;
  esac
}

# One proxy, one round: start it fresh, idle first (a fresh process shows what idle sessions
# cost, not what an earlier bulk transfer left in its pools), then throughput, then churn.
run_cell() {
  local round=$1 name=$2
  if ! start_proxy "$name"; then
    echo "round=$round proxy=$name mode=start complete=0 errors=did_not_start" \
      >>"$WORK_DIR/results.txt"
    stop_proxy
    return 0
  fi
  local timeout=(--timeout=120)
  if [[ $name != direct ]]; then
    run_mode "$round" "$name" idle --sessions="$IDLE_SESSIONS" --hold="$HOLD" "${timeout[@]}"
  fi
  run_mode "$round" "$name" throughput --sessions="$TP_SESSIONS" --fetches="$TP_FETCHES" \
    "${timeout[@]}"
  run_mode "$round" "$name" churn --in-flight="$CHURN_IN_FLIGHT" --duration="$CHURN_DURATION" \
    "${timeout[@]}"
  stop_proxy
}

# --- main -------------------------------------------------------------------------------------
if [[ -z $WORK_DIR ]]; then
  WORK_DIR=$(mktemp -d /tmp/mailring-compare.XXXXXX)
else
  mkdir -p "$WORK_DIR"
fi
WORK_DIR=$(cd "$WORK_DIR" && pwd)
: >"$WORK_DIR/results.txt"
CLK_TCK=$(getconf CLK_TCK)
UPSTREAM_PORT=$BASE_PORT
AUTH_HTTP_PORT=$((BASE_PORT + 9))
log "work dir $WORK_DIR"

install_proxies
build

IFS=, read -r -a requested <<<"$PROXIES"
SELECTED=()
for name in "${requested[@]}"; do
  [[ -n $(port_of "$name") ]] || die "unknown proxy '$name' in --proxies"
  if available "$name"; then SELECTED+=("$name"); else log "skipping $name: not installed"; fi
done
[[ ${#SELECTED[@]} -gt 0 ]] || die "no proxy to run"

for offset in 0 1 2 3 4 5 7 8 9; do
  listening $((BASE_PORT + offset)) && die "port $((BASE_PORT + offset)) is already in use (--base-port)"
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
HAPROXY_SERVER_TLS=""
HAPROXY_SERVER_PORT=$UPSTREAM_PORT
MAILRING_TLS_FLAGS=()
TLS_PORT=$((BASE_PORT + 6))
if [[ $TLS == 1 ]]; then
  command -v haproxy >/dev/null 2>&1 || die "--tls needs haproxy as the TLS terminator"
  listening "$TLS_PORT" && die "port $TLS_PORT is already in use (--base-port)"
  bash "$REPO/tests/integration/test_ca.sh" "$WORK_DIR/ca" 127.0.0.1 localhost \
    >"$WORK_DIR/ca.log" 2>&1 || die "test_ca.sh failed, see $WORK_DIR/ca.log"
  cat "$WORK_DIR/ca/server-chain.pem" "$WORK_DIR/ca/server.key" >"$WORK_DIR/terminator.pem"
  HAPROXY_SERVER_TLS=" ssl verify required ca-file $WORK_DIR/ca/ca.pem verifyhost localhost"
  MAILRING_TLS_FLAGS=(--ca-file="$WORK_DIR/ca/ca.pem")
  HAPROXY_SERVER_PORT=$TLS_PORT
  cat >"$WORK_DIR/terminator.cfg" <<EOF
# The TLS server both proxies relay to (not measured): TLS 1.3, AES-128-GCM only.
global
  nbthread 1
  maxconn 9900
  ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256
  ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
  mode tcp
  timeout connect 5s
  timeout client 10m
  timeout server 10m
frontend tls
  bind 127.0.0.1:$TLS_PORT ssl crt $WORK_DIR/terminator.pem
  default_backend upstream
backend upstream
  server synthetic 127.0.0.1:$UPSTREAM_PORT
EOF
fi
write_configs

"$UPSTREAM_BIN" --port="$UPSTREAM_PORT" --auth-http-port="$AUTH_HTTP_PORT" \
  --literal-bytes="$LITERAL_BYTES" --stats-file="$WORK_DIR/upstream.stats" \
  >"$WORK_DIR/upstream.log" 2>&1 &
UPSTREAM_PID=$!
STARTED_PIDS+=("$UPSTREAM_PID")
for _ in $(seq 1 50); do
  [[ -s $WORK_DIR/upstream.stats ]] && listening "$UPSTREAM_PORT" && break
  kill -0 "$UPSTREAM_PID" 2>/dev/null || die "the synthetic upstream exited: $(cat "$WORK_DIR/upstream.log")"
  sleep 0.1
done
listening "$UPSTREAM_PORT" || die "the synthetic upstream is not listening on $UPSTREAM_PORT"
if [[ $TLS == 1 ]]; then
  haproxy -db -f "$WORK_DIR/terminator.cfg" >"$WORK_DIR/terminator.log" 2>&1 &
  STARTED_PIDS+=("$!")
  for _ in $(seq 1 50); do listening "$TLS_PORT" && break; sleep 0.1; done
  listening "$TLS_PORT" || die "the TLS terminator is not listening: $(cat "$WORK_DIR/terminator.log")"
fi

{
  echo "date=$(date -u +%Y-%m-%dT%H:%M:%SZ) nproc=$(nproc) kernel=$(uname -r)"
  echo "cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo | tr ' ' '_')"
  echo "haproxy=$(haproxy -v 2>/dev/null | awk 'NR == 1 { print $3 }')" \
    "nginx=$(/usr/sbin/nginx -v 2>&1 | sed 's|.*/||')"
  echo "mailring=$MAILRING_BIN repo_git=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "rounds=$ROUNDS literal_bytes=$LITERAL_BYTES tp=${TP_SESSIONS}x$TP_FETCHES" \
    "idle=$IDLE_SESSIONS idle_big=$IDLE_BIG hold=$HOLD churn=${CHURN_IN_FLIGHT}x${CHURN_DURATION}s" \
    "upstream_tls=$TLS"
} >"$WORK_DIR/machine.txt"
log "$(tr '\n' ' ' <"$WORK_DIR/machine.txt")"

started=$SECONDS
for round in $(seq 1 "$ROUNDS"); do
  log "round $round/$ROUNDS"
  count=${#SELECTED[@]}
  for i in $(seq 0 $((count - 1))); do
    # Rotate the order each round so no proxy always runs first (or right after a heavy one).
    run_cell "$round" "${SELECTED[$(((i + round - 1) % count))]}"
  done
done
if [[ $IDLE_BIG -gt 0 ]]; then
  log "idle at $IDLE_BIG sessions, once per proxy"
  for name in "${SELECTED[@]}"; do
    [[ $name == direct ]] && continue
    if start_proxy "$name"; then
      run_mode big "$name" idle --sessions="$IDLE_BIG" --hold="$HOLD" --timeout=120
    fi
    stop_proxy
  done
fi
log "measured for $((SECONDS - started)) s; raw results in $WORK_DIR/results.txt"

python3 "$REPO/perf/harness/compare_table.py" "$WORK_DIR/results.txt" "$WORK_DIR/machine.txt" ||
  die "could not summarise $WORK_DIR/results.txt"
