#!/usr/bin/env bash
# Build the local node's NetworkPolicy enforcer from the Go module proxy once per version and print the path of
# the binary: kube-router, of which scripts/node-up.sh runs only the firewall (docs/e2e.md, "NetworkPolicy
# enforcement", says why this one and what else was tried). Cached in ~/.cache/taskplatform/kube-router-<version>
# (scripts/lib/cache.sh).
#
# v2.10.0: of the v2 versions asked for, the proxy serves only v2.1.0 (reported vulnerable: CVE-2026-32254,
# GHSA-v5mh-h5hx-7v92) and v2.10.0, in which both are fixed. Its go.mod names a pseudo-version of
# github.com/vishvananda/netlink that the proxy does not serve, so it is built from a throwaway wrapper module that
# replaces that one module with its latest release (NETLINK_VERSION); nothing else is changed.
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
KUBE_ROUTER_VERSION=${KUBE_ROUTER_VERSION:-v2.10.0}
NETLINK_VERSION=${NETLINK_VERSION:-v1.3.1}
out=$(cache_dir "kube-router-$KUBE_ROUTER_VERSION-netlink-$NETLINK_VERSION")
cached_or_continue "$out" kube-router

go_env
echo "build-netpol: building kube-router $KUBE_ROUTER_VERSION (several minutes, once)" >&2
module=github.com/cloudnativelabs/kube-router/v2
work_dir
wrapper_module "$work" kube-router 1.26.0 "$module@$KUBE_ROUTER_VERSION" \
  "github.com/vishvananda/netlink@$NETLINK_VERSION"
# Under another name first, then renamed: an interrupted build never leaves a binary that looks complete.
(cd "$work" && go get "$module/cmd/kube-router@$KUBE_ROUTER_VERSION" &&
  go build -trimpath -ldflags "-s -w -X $module/pkg/version.Version=$KUBE_ROUTER_VERSION" \
    -o "$out/kube-router.partial" "$module/cmd/kube-router")
mv "$out/kube-router.partial" "$out/kube-router"
cache_done "$out" kube-router
