#!/usr/bin/env bash
# Build the local node's NetworkPolicy enforcer from the Go module proxy once per version and print the path of
# the binary: kube-router, of which scripts/node-up.sh runs only the firewall (docs/e2e.md, "NetworkPolicy
# enforcement", says why this one and what else was tried). Cached in ~/.cache/taskplatform/kube-router-<version>.
#
# v2.10.0: of the v2 versions asked for, the proxy serves only v2.1.0 (reported vulnerable: CVE-2026-32254,
# GHSA-v5mh-h5hx-7v92) and v2.10.0, in which both are fixed. Its go.mod names a pseudo-version of
# github.com/vishvananda/netlink that the proxy does not serve, so it is built from a throwaway wrapper module that
# replaces that one module with its latest release (NETLINK_VERSION); nothing else is changed.
set -euo pipefail
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.10.0}
NETLINK_VERSION=${NETLINK_VERSION:-v1.3.1}
out="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/kube-router-$KUBE_ROUTER_VERSION-netlink-$NETLINK_VERSION"
if [ ! -x "$out/kube-router" ]; then
  command -v go >/dev/null || { echo "build-netpol: Go is required" >&2; exit 1; }
  echo "build-netpol: building kube-router $KUBE_ROUTER_VERSION (several minutes, once)" >&2
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
  module=github.com/cloudnativelabs/kube-router/v2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat > "$work/go.mod" <<EOM
module taskplatform.local/kube-router

go 1.26.0

require $module $KUBE_ROUTER_VERSION

replace github.com/vishvananda/netlink => github.com/vishvananda/netlink $NETLINK_VERSION
EOM
  mkdir -p "$out"
  # Under another name first, then renamed: an interrupted build never leaves a binary that looks complete.
  (cd "$work" && go get "$module/cmd/kube-router@$KUBE_ROUTER_VERSION" &&
    go build -trimpath -ldflags "-s -w -X $module/pkg/version.Version=$KUBE_ROUTER_VERSION" \
      -o "$out/kube-router.partial" "$module/cmd/kube-router")
  mv "$out/kube-router.partial" "$out/kube-router"
fi
echo "$out/kube-router"
