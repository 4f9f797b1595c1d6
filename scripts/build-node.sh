#!/usr/bin/env bash
# Build what a real local node runs, from the Go module proxy, once per version set, and print the directory:
# kubelet and kube-proxy (k8s.io/kubernetes), coredns, and the sandbox's pause binary (tools/pause).
# Cached under ~/.cache/taskplatform like the control plane (scripts/lib/cache.sh); a cold build takes minutes.
#
# The node's Kubernetes is pinned to v1.35, the last minor release that supports containerd 1.x, because the
# runtime is Debian's containerd 1.6 (docs/e2e.md). A v1.35 kubelet under a v1.36 API server is within the
# version skew policy (a kubelet may be up to three minors older).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cache.sh
. "$root/scripts/lib/cache.sh"
# shellcheck source=scripts/lib/build-kubernetes.sh
. "$root/scripts/lib/build-kubernetes.sh"
NODE_KUBE_VERSION=${NODE_KUBE_VERSION:-v1.35.4}
COREDNS_VERSION=${COREDNS_VERSION:-v1.14.7}
pause_hash=$(cat "$root/tools/pause/go.mod" "$root/tools/pause/main.go" | sha256sum | cut -c1-12)
out=$(cache_dir "node-$NODE_KUBE_VERSION-coredns-$COREDNS_VERSION-pause-$pause_hash")
want=(kubelet kube-proxy coredns pause)
cached_or_continue "$out" "${want[@]}"

go_env
work_dir

# --- kubelet, kube-proxy: the same wrapper-module way as scripts/build-k8s.sh --------------------------
build_kubernetes "$NODE_KUBE_VERSION" "$out" "$work/k8s" cmd/kubelet cmd/kube-proxy

# --- CoreDNS (no replace directives: a plain install) ---------------------------------------------------
echo "build-node: building coredns $COREDNS_VERSION" >&2
go_install "$out" -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"

# --- pause ------------------------------------------------------------------------------------------------
(cd "$root/tools/pause" && go build -trimpath -ldflags "-s -w" -o "$out/pause" .)
cache_done "$out" "${want[@]}"
