#!/usr/bin/env bash
# Builds mailring's OCI image into the local containers storage as localhost/mailring:latest and
# localhost/mailring:<version>, with buildah from ./Containerfile (FROM scratch: no registry).
#
#   scripts/image.sh [--binary PATH] [--tag NAME]
#
# 1. Installs buildah, podman and runc (apt-get; as root, or through sudo) and the build packages.
# 2. Builds build-image/mailring (Release, no tests) with CMake, unless --binary names one.
# 3. Stages rootfs/: the stripped binary, every shared library `ldd` lists (and the dynamic
#    loader), the CA bundle, /etc/passwd and /etc/group with the user 65532, nsswitch.conf.
# 4. buildah bud with the OCI labels version, revision and source taken from `mailring --version`.
# Then checks the image is at most 64 MB and prints its name and size.
# Run it: podman --runtime runc --cgroup-manager cgroupfs run --rm --network host --read-only \
#   --security-opt seccomp=k8s/mailring-seccomp.json -v ./destinations.json:/etc/mailring/d.json:ro \
#   localhost/mailring:latest --destinations /etc/mailring/d.json
set -euo pipefail
# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$REPO_ROOT"

binary=""
image=localhost/mailring
while (($# > 0)); do
  case $1 in
    --binary) binary=$2; shift 2 ;;
    --tag) image=$2; shift 2 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (try --help)" >&2; exit 2 ;;
  esac
done
readonly max_bytes=$((64 * 1000 * 1000))

install_missing_packages "${IMAGE_PACKAGES[@]}"
if [[ -z $binary ]]; then
  install_missing_packages "${BUILD_PACKAGES[@]}"
  build_targets build-image mailring -DCMAKE_BUILD_TYPE=Release -DMAILRING_BUILD_TESTS=OFF \
    -DMAILRING_BUILD_PERF=OFF
  binary=build-image/mailring
fi
[[ -x $binary ]] || { log "$binary is not an executable"; exit 1; }

# "mailring 0.1.0 (revision 0123abcd4567) liburing 2.3 wolfSSL 5.5.4"
read -r _ version _ revision _ < <("$binary" --version)
revision=${revision%)}
[[ $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { log "cannot read the version of $binary"; exit 1; }

context=$(mktemp -d /tmp/mailring-image.XXXXXX)
trap 'rm -rf "$context"' EXIT
rootfs=$context/rootfs
mkdir -p "$rootfs/usr/bin" "$rootfs/etc/ssl/certs" "$rootfs/etc/mailring" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
strip --strip-unneeded -o "$rootfs/usr/bin/mailring" "$binary"

# Every library the dynamic loader maps, at the path it maps it from (and the loader itself).
# glibc 2.36 has nss_files and nss_dns inside libc, so name resolution needs no dlopen'ed module.
while read -r library; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done < <(ldd "$binary" | grep -o '/[^ ]*' | sort -u)

cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/usr/sbin/nologin\nmailring:x:65532:65532:mailring:/nonexistent:/usr/sbin/nologin\n' \
  >"$rootfs/etc/passwd"
printf 'root:x:0:\nmailring:x:65532:\n' >"$rootfs/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"

log "building $image:$version (revision $revision) from $binary"
buildah bud --quiet --layers=false -f "$REPO_ROOT/Containerfile" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" \
  --build-arg SOURCE="${MAILRING_SOURCE_URL:-$(git -C "$REPO_ROOT" remote get-url origin 2>/dev/null || echo unknown)}" \
  -t "$image:latest" -t "$image:$version" "$context" >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$image:latest")
if ((size > max_bytes)); then
  log "$image:latest is $size bytes, over the 64 MB budget"
  exit 1
fi
log "built $image:latest and $image:$version: $((size / 1000 / 1000)) MB ($size bytes)"
