#!/usr/bin/env bash
# A throw-away certificate authority for the TLS tests (unit tests of core/tls_client and the
# Dovecot integration tests).
#
#   test_ca.sh DIR [HOSTNAME...]     HOSTNAMEs default to: localhost 127.0.0.1
#
# Writes into DIR (created if missing), all PEM, keys unencrypted (EC P-256, SHA-256):
#   ca.pem, ca.key                 the test CA (self-signed, valid 10 years from now)
#   server.pem, server.key         a server certificate for the HOSTNAMEs, signed by the CA:
#                                  subjectAltName DNS:name for names, IP:addr for IPv4/IPv6
#                                  literals; CN = the first HOSTNAME
#   server-chain.pem               server.pem followed by ca.pem (what a server presents)
#   expired.pem, expired.key       same names, valid only 2020-01-01 .. 2020-01-02 (expired)
#   expired-chain.pem              expired.pem followed by ca.pem
#   wronghost.pem, wronghost.key   a valid certificate for wrong.example only
#   wronghost-chain.pem            wronghost.pem followed by ca.pem
#
# Idempotent: when DIR already holds a complete set for the same HOSTNAMEs, nothing is done (so
# concurrent tests may share a DIR; a lock serialises them). Prints nothing on success; on failure
# prints openssl's complaint to stderr and exits non-zero. Needs the `openssl` command; as root it
# installs Debian's openssl package when the command is missing.
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 DIR [HOSTNAME...]" >&2
  exit 2
fi
readonly dir=$1
shift
names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  names=(localhost 127.0.0.1)
fi

if ! command -v openssl >/dev/null 2>&1; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null 2>&1 || true
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    echo "$0: the openssl command is missing (Debian package openssl)" >&2
    exit 1
  fi
fi

mkdir -p "$dir"
exec 9>"$dir/.test_ca.lock"
flock -w 60 9 || { echo "$0: $dir is locked by another run for 60 s" >&2; exit 1; }

readonly stamp="$dir/.test_ca.names"
readonly outputs=(ca.pem ca.key server.pem server.key server-chain.pem expired.pem expired.key
  expired-chain.pem wronghost.pem wronghost.key wronghost-chain.pem)
wanted="${names[*]}"
complete=1
for file in "${outputs[@]}"; do
  [[ -s "$dir/$file" ]] || complete=0
done
if [[ $complete -eq 1 && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  exit 0
fi
rm -f "$stamp"

# subjectAltName for the requested names.
san=""
for name in "${names[@]}"; do
  if [[ $name =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || $name == *:* ]]; then
    san+="${san:+,}IP:$name"
  else
    san+="${san:+,}DNS:$name"
  fi
done

work=$(mktemp -d "$dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
touch "$work/index.txt"
openssl rand -hex 8 >"$work/serial"
cat >"$work/ca.cnf" <<EOF
[ ca ]
default_ca = test_ca

[ test_ca ]
database = $work/index.txt
new_certs_dir = $work
serial = $work/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = mailring test CA

[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ server_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = \$ENV::TEST_CA_SAN
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

run() {
  local output
  if ! output=$("$@" 2>&1); then
    echo "$0: failed: $*" >&2
    echo "$output" >&2
    exit 1
  fi
}

new_key() {  # FILE
  run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
}

# issue NAME CN SAN [openssl ca date options...]: NAME.key, NAME.pem, NAME-chain.pem in $work.
issue() {
  local name=$1 cn=$2 alt=$3
  shift 3
  new_key "$work/$name.key"
  run openssl req -new -key "$work/$name.key" -subj "/CN=$cn" -out "$work/$name.csr"
  TEST_CA_SAN=$alt run openssl ca -batch -notext -config "$work/ca.cnf" -extensions server_ext \
    -cert "$work/ca.pem" -keyfile "$work/ca.key" -in "$work/$name.csr" -out "$work/$name.pem" "$@"
  cat "$work/$name.pem" "$work/ca.pem" >"$work/$name-chain.pem"
}

new_key "$work/ca.key"
TEST_CA_SAN=DNS:unused run openssl req -new -x509 -config "$work/ca.cnf" -extensions ca_ext \
  -key "$work/ca.key" -days 3650 -out "$work/ca.pem"
issue server "${names[0]}" "$san" -days 3650
issue expired "${names[0]}" "$san" -startdate 20200101000000Z -enddate 20200102000000Z
issue wronghost wrong.example DNS:wrong.example -days 3650

chmod 600 "$work"/*.key
for file in "${outputs[@]}"; do
  mv -f "$work/$file" "$dir/$file"
done
echo "$wanted" >"$stamp"
