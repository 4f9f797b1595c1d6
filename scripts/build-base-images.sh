#!/usr/bin/env bash
# Local base images from Debian, for a machine without a container registry: debootstrap a minimal rootfs
# with the distribution's packages and `docker import` it. Prints nothing but progress on stderr.
#   taskplatform-base:<suite>    python3 + venv (BASE_IMAGE of Dockerfile.api and Dockerfile.operator)
#   taskplatform-pgbase:<suite>  PostgreSQL 15 server (BASE_IMAGE of Dockerfile.postgres)
#   taskplatform-kindbase:<suite>  systemd, containerd, runc, CNI plugins: the kind node image (tools/kind-node)
#   taskplatform-netbase:<suite>   iptables, ipset, conntrack: kube-proxy and kube-router in the kind node image
# With arguments, only the images named (scripts/build-kind-node.sh imports the last two into kind's daemon).
# Rootfs tarballs are cached in ~/.cache/taskplatform/rootfs keyed by suite and package list (scripts/lib/cache.sh;
# two runs do not write the same tarball at once); an image is re-imported only when its key changes. Needs root,
# debootstrap and a running Docker engine.
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
SUITE=${DEBIAN_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=$(cache_dir rootfs)
mkdir -p "$cache"

build() {  # image name, comma-separated packages
  local image=$1 packages=$2 key tarball rootfs
  key=$(printf '%s %s' "$SUITE" "$packages" | sha256sum | cut -c1-12)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "io.taskplatform.rootfs" }}' "$image:$SUITE" 2>/dev/null)" = "$key" ]; then
    return
  fi
  tarball="$cache/$image-$SUITE-$key.tar"
  cache_lock "$tarball" || { echo "build-base-images: cannot write $cache" >&2; exit 1; }
  if [ ! -f "$tarball" ]; then
    echo "build-base-images: debootstrap $SUITE with $packages" >&2
    rootfs=$(mktemp -d)
    if ! debootstrap --variant=minbase --include="$packages" "$SUITE" "$rootfs" "$MIRROR" >"$cache/$image.log" 2>&1; then
      tail -40 "$cache/$image.log" >&2
      exit 1
    fi
    # What a base image does not need: package lists and caches, docs, man pages, locales.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* "$rootfs"/usr/share/doc/* \
      "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/log/*
    find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'C.*' -exec rm -rf {} + 2>/dev/null || true
    tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  echo "build-base-images: import $image:$SUITE" >&2
  docker import --change "LABEL io.taskplatform.rootfs=$key" --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' "$tarball" "$image:$SUITE" >/dev/null
}

command -v debootstrap >/dev/null || { echo "build-base-images: debootstrap is required" >&2; exit 1; }
declare -A packages=(
  [taskplatform-base]="python3,python3-venv,ca-certificates"
  [taskplatform-pgbase]="postgresql-15,ca-certificates"
  [taskplatform-kindbase]="systemd,containerd,runc,containernetworking-plugins,iptables,conntrack,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,procps,ca-certificates"
  [taskplatform-netbase]="iptables,ipset,conntrack,iproute2,kmod"
)
if [ $# -eq 0 ]; then set -- taskplatform-base taskplatform-pgbase; fi
for image in "$@"; do
  [ -n "${packages[$image]:-}" ] || { echo "build-base-images: no image $image" >&2; exit 2; }
  build "$image" "${packages[$image]}"
done
