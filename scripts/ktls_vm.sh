#!/usr/bin/env bash
# ktls_vm.sh: proves mailring's kTLS path (core/tls/ktls.h) in a VM whose kernel has kernel TLS,
# for machines whose own kernel has not (no CONFIG_TLS) and that have no /dev/kvm (TCG is enough).
#
#   scripts/ktls_vm.sh            (also: scripts/test.sh --ktls-vm)
#
# What it does:
#  1. fetches Debian 12's kernel (linux-image-amd64's 6.1 image: CONFIG_TLS=m) and busybox-static
#     with `apt-get download`, cached in build-ktls-vm/ (never committed);
#  2. builds an initramfs: busybox, the kernel's tls.ko and AES-GCM modules, mailring and
#     ktls_test from build/ (stripped) with their shared libraries, the host's Dovecot with its
#     libraries and a fixture config (tests/integration/dovecot_fixture.sh: IMAPS with a test-CA
#     certificate, alice's INBOX with the ~20 MiB message 4), and ktls_vm_fetch
#     (tests/core/tls/ktls_vm_fetch.cc), a small IMAP client;
#  3. boots it with qemu-system-x86_64 (TCG) under a time bound. The guest runs ktls_test (its
#     kernel tests run there instead of skipping), starts Dovecot and mailring (an imap4s route,
#     --destinations, --admin-listen), FETCHes message 4 through mailring, compares the sha256
#     of what came through with the stored message's, and scrapes /metrics.
#
# Passes only when the guest reports: ktls_test passed, both FETCHes (a route that logs in, a
# relay-only one) byte-identical, both sessions on the kTLS path
# (mailring_tls_relay_sessions_total{path="ktls"} 2) and bytes spliced on the kTLS
# socket (mailring_ktls_spliced_bytes_total > 0). Needs: root (the Dovecot fixture user),
# qemu-system-x86_64, dovecot, openssl, g++, a built build/ (mailring, ktls_test).
# Environment: MAILRING_BUILD (default build), KTLS_VM_DIR (default build-ktls-vm),
# KTLS_VM_TIMEOUT seconds for the guest (default 900).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(cd "${MAILRING_BUILD:-$root/build}" && pwd)
work=${KTLS_VM_DIR:-$root/build-ktls-vm}
timeout_s=${KTLS_VM_TIMEOUT:-900}
mkdir -p "$work"
work=$(cd "$work" && pwd)

say() { echo "ktls_vm: $*" >&2; }
die() {
  say "$*"
  exit 1
}

for tool in qemu-system-x86_64 dovecot openssl g++ apt-get dpkg; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
[[ -x $build/mailring ]] || die "no $build/mailring (build it first)"
ktls_test=$(find "$build/tests" -name ktls_test -type f -perm -u+x | head -n 1)
[[ -n $ktls_test ]] || die "no ktls_test under $build/tests (cmake --build build --target ktls_test)"
started=$SECONDS

# --- 1. Debian packages (cached) ----------------------------------------------------------------
mkdir -p "$work/debs"
kernel_package=$(apt-cache depends linux-image-amd64 2>/dev/null |
  awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
[[ -n $kernel_package ]] || die "apt-cache knows no linux-image-amd64 (apt-get update?)"
for package in "$kernel_package" busybox-static; do
  if ! ls "$work/debs/${package}"_*.deb >/dev/null 2>&1; then
    say "downloading $package"
    (cd "$work/debs" && timeout 600 apt-get download "$package" >/dev/null) ||
      die "apt-get download $package failed"
  fi
done
if [[ ! -d $work/kernel/boot ]]; then
  rm -rf "$work/kernel" && mkdir -p "$work/kernel"
  dpkg -x "$(ls "$work/debs/${kernel_package}"_*.deb | head -n 1)" "$work/kernel"
fi
if [[ ! -x $work/busybox/bin/busybox ]]; then
  rm -rf "$work/busybox" && mkdir -p "$work/busybox"
  dpkg -x "$(ls "$work"/debs/busybox-static_*.deb | head -n 1)" "$work/busybox"
fi
vmlinuz=$(ls "$work"/kernel/boot/vmlinuz-* | head -n 1)
kver=${vmlinuz##*/vmlinuz-}
modules=$work/kernel/lib/modules/$kver

# --- 2. the initramfs ---------------------------------------------------------------------------
rootfs=$work/rootfs
rm -rf "$rootfs"
mkdir -p "$rootfs"/{bin,sbin,etc,proc,sys,dev,tmp,run,root,lib/modules/"$kver"/kernel,ktls}
chmod 1777 "$rootfs/tmp"
cp "$work/busybox/bin/busybox" "$rootfs/bin/busybox"

# Copies ELF files and their shared libraries (ldd closure) to the same paths in the rootfs.
copy_elf() {
  local file lib
  for file in "$@"; do
    [[ -f $file ]] || continue
    cp -r --parents --preserve=ownership,timestamps,links "$file" "$rootfs"
    for lib in $(ldd "$file" 2>/dev/null | awk '/=> \// {print $3} $1 ~ /^\// {print $1}'); do
      [[ -e $rootfs$lib ]] || cp -L --parents "$lib" "$rootfs"
    done
  done
}

# mailring and the kTLS unit tests, stripped (debug info would triple the image).
strip -o "$rootfs/ktls/mailring" "$build/mailring"
strip -o "$rootfs/ktls/ktls_test" "$ktls_test"
copy_elf "$build/mailring" "$ktls_test"
rm -f "$rootfs$build/mailring" "$rootfs$ktls_test"
g++ -O2 -std=c++20 -static -o "$rootfs/ktls/ktls_vm_fetch" "$root/tests/core/tls/ktls_vm_fetch.cc"

# Dovecot and what runs it as its unprivileged user.
dovecot_files=(/usr/sbin/dovecot /usr/bin/doveconf /usr/bin/setpriv)
mapfile -t dovecot_libexec < <(find /usr/lib/dovecot -type f)
copy_elf "${dovecot_files[@]}"
cp -r --parents --preserve=ownership,timestamps,links /usr/lib/dovecot "$rootfs"
for file in "${dovecot_libexec[@]}"; do
  if head -c 4 "$file" | grep -q ELF; then copy_elf "$file"; fi
done
[[ -d /usr/share/dovecot ]] && cp -r --parents --preserve=ownership,timestamps,links /usr/share/dovecot "$rootfs"
# libgcc_s is dlopen'ed by glibc for thread cancellation, ldd does not show it.
for lib in /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libnss_files.so.2; do
  [[ -e $lib ]] && cp -L --parents "$lib" "$rootfs"
done
mkdir -p "$rootfs/etc/ssl/certs"
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"

# The certificate and the fixture Dovecot (config, mail, big.sha256), made by the test scripts
# on the host (started once to prove the config, then stopped), copied to the same path.
bash "$root/tests/integration/test_ca.sh" "$work/ca" localhost 127.0.0.1
fixture=$work/dovecot
bash "$root/tests/integration/dovecot_fixture.sh" stop "$fixture" 2>/dev/null || true
bash "$root/tests/integration/dovecot_fixture.sh" start "$fixture" 10143 \
  --tls "$work/ca/server-chain.pem" "$work/ca/server.key" 10993
bash "$root/tests/integration/dovecot_fixture.sh" stop "$fixture"
rm -f "$fixture/big.eml" "$fixture/dovecot.log"
rm -rf "$fixture/run" "$fixture/state" && mkdir -p "$fixture/run" "$fixture/state"
user=$(stat -c %U "$fixture")
uid=$(id -u "$user")
gid=$(id -g "$user")
chown "$uid:$gid" "$fixture/run" "$fixture/state"
cp -r --parents --preserve=ownership,timestamps,links "$fixture" "$rootfs"
printf 'root:x:0:0:root:/root:/bin/sh\n%s:x:%s:%s::/nonexistent:/bin/false\n' "$user" "$uid" \
  "$gid" >"$rootfs/etc/passwd"
printf 'root:x:0:\n%s:x:%s:\n' "$user" "$gid" >"$rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files\n' >"$rootfs/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' >"$rootfs/etc/hosts"

# Kernel TLS and the crypto it asks for (gcm(aes) and friends), with a modules.dep made in the
# guest by busybox depmod.
(cd "$modules" && for sub in net/tls crypto arch/x86/crypto lib/crypto; do
  [[ -d kernel/$sub ]] && cp -r --parents --preserve=ownership,timestamps,links "kernel/$sub" "$rootfs/lib/modules/$kver/"
done)
cp "$modules"/modules.order "$modules"/modules.builtin* "$rootfs/lib/modules/$kver/"

cat >"$rootfs/ktls/destinations.json" <<EOF
{"routes": [
  {"listen": "127.0.0.1:1143",
   "destination": {"Name": "ktls-vm", "Type": "MAIL", "Authentication": "BasicAuthentication",
     "mail.user": "alice", "mail.password": "secret", "mail.transport.protocol": "imap4s",
     "mail.imap4s.host": "localhost", "mail.imap4s.port": "10993", "mail.imap4s.auth": "true",
     "ProxyType": "Internet"}},
  {"listen": "127.0.0.1:1144",
   "destination": {"Name": "ktls-vm-relay-only", "Type": "MAIL",
     "Authentication": "NoAuthentication", "mail.transport.protocol": "imap4s",
     "mail.imap4s.host": "localhost", "mail.imap4s.port": "10993", "mail.imap4s.auth": "false",
     "ProxyType": "Internet"}}
]}
EOF
cp "$work/ca/ca.pem" "$rootfs/ktls/ca.pem"

cat >"$rootfs/init" <<EOF
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
ln -sf /bin/busybox /sbin/modprobe
echo /sbin/modprobe >/proc/sys/kernel/modprobe
ip link set lo up
depmod
modprobe tls && echo "KTLS-VM: tls.ko loaded"
for m in gcm ghash_generic ctr aesni_intel ghash_clmulni_intel; do modprobe \$m 2>/dev/null; done
echo "KTLS-VM: kernel \$(uname -r), \$(nproc) CPU"
result=PASS
fail() { echo "KTLS-VM: FAIL: \$*"; result=FAIL; }

# 1. the kTLS unit tests, with a kernel that has TLS
/ktls/ktls_test >/tmp/ktls_test.out 2>&1
grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) +\]' /tmp/ktls_test.out | sed 's/^/KTLS-VM: ktls_test /'
grep -q '^\[  PASSED  \]' /tmp/ktls_test.out || fail "ktls_test"
grep -q 'SKIPPED' /tmp/ktls_test.out && echo "KTLS-VM: note: skipped tests above"

# 2. Dovecot (IMAPS on 10993) and mailring (imap4s route on 1143, admin on 9100)
ulimit -n 65536
/usr/bin/setpriv --reuid=$uid --regid=$gid --clear-groups dovecot -c $fixture/dovecot.conf || { fail "dovecot did not start"; tail -n 20 $fixture/dovecot.log; }
/ktls/mailring --destinations /ktls/destinations.json --ca-file /ktls/ca.pem --workers 1 \
  --admin-listen 127.0.0.1:9100 --log-level debug >/tmp/mailring.log 2>&1 &
for i in \$(seq 1 300); do
  nc -z 127.0.0.1 10993 2>/dev/null && nc -z 127.0.0.1 1143 2>/dev/null && break
  sleep 0.2
done

# 3. FETCH the 20 MiB message through mailring, byte for byte: through the route that logs in
# (kTLS takes the keys from mailring's record layer) and through the relay-only one (the keys come
# straight from wolfSSL; the server's session tickets then reach the kernel as control records).
for port in 1143 1144; do
  start=\$(date +%s)
  rm -f /tmp/big.out
  /ktls/ktls_vm_fetch 127.0.0.1 \$port 4 /tmp/big.out || fail "the FETCH through mailring (port \$port) failed"
  end=\$(date +%s)
  got=\$(sha256sum /tmp/big.out | cut -d' ' -f1)
  want=\$(cat $fixture/big.sha256)
  echo "KTLS-VM: port \$port: fetched \$(stat -c %s /tmp/big.out) bytes in \$((end - start)) s, sha256 \$got (stored: \$want)"
  [ "\$got" = "\$want" ] && echo "KTLS-VM: port \$port: FETCH byte-identical" || fail "port \$port: the FETCH differs from the stored message"
done
sleep 1
wget -q -O /tmp/metrics http://127.0.0.1:9100/metrics || fail "no metrics"
grep -E '^mailring_(tls_relay_sessions_total|ktls_fallbacks_total|ktls_spliced_bytes_total|ktls_control_records_total|relayed_bytes_total|tls_handshakes_total|tls_record_takeovers_total)' /tmp/metrics | sed 's/^/KTLS-VM: metric /'
grep -q '^mailring_tls_relay_sessions_total{path="ktls"} 2\$' /tmp/metrics || fail "the sessions did not take the kTLS path"
spliced=\$(awk '/^mailring_ktls_spliced_bytes_total/ {print \$2}' /tmp/metrics)
[ "\${spliced:-0}" -gt 0 ] && echo "KTLS-VM: \$spliced bytes spliced on the kTLS socket" || fail "no bytes spliced on the kTLS socket"
control=\$(awk '/^mailring_ktls_control_records_total/ {print \$2}' /tmp/metrics)
echo "KTLS-VM: \${control:-0} control records (session tickets, close_notify) read from the kTLS sockets"
echo "KTLS-VM: mailring log (session lines):"
grep -E 'kTLS|closed|failed|TLS established|record path|TLS:' /tmp/mailring.log | sed 's/^/KTLS-VM:   /'
echo "KTLS-VM: RESULT \$result"
sync
poweroff -f
EOF
chmod +x "$rootfs/init"

say "packing the initramfs"
(cd "$rootfs" && find . | "$work/busybox/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) \
  >"$work/initrd.gz"
say "initramfs: $(du -h "$work/initrd.gz" | cut -f1), kernel $kver; prepared in $((SECONDS - started)) s"

# --- 3. boot ------------------------------------------------------------------------------------
boot_started=$SECONDS
set +e
timeout "$timeout_s" qemu-system-x86_64 -cpu max -m 1G -smp 2 -nographic -no-reboot \
  -kernel "$vmlinuz" -initrd "$work/initrd.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3" </dev/null | tee "$work/guest.log"
qemu_status=${PIPESTATUS[0]}
set -e
say "guest ran $((SECONDS - boot_started)) s (qemu status $qemu_status); total $((SECONDS - started)) s"
if grep -q 'KTLS-VM: RESULT PASS' "$work/guest.log"; then
  say "PASS"
  exit 0
fi
say "FAIL (guest log: $work/guest.log)"
exit 1
