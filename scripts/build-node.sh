#!/usr/bin/env bash
# Build what a node runs besides Kubernetes' own binaries (scripts/build-k8s.sh builds the kubelet and kube-proxy),
# from the Go module proxy, once per version set, and print the directory: coredns and the sandbox's pause binary
# (tools/pause). Cached under ~/.cache/taskplatform like the control plane (scripts/lib/cache.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cache.sh
. "$root/scripts/lib/cache.sh"
COREDNS_VERSION=${COREDNS_VERSION:-v1.13.1}  # what kubeadm v1.35 deploys (registry.k8s.io/coredns/coredns:v1.13.1)
pause_hash=$(cat "$root/tools/pause/go.mod" "$root/tools/pause/main.go" | sha256sum | cut -c1-12)
out=$(cache_dir "node-coredns-$COREDNS_VERSION-pause-$pause_hash")
want=(coredns pause)
cached_or_continue "$out" "${want[@]}"

go_env

# --- CoreDNS (no replace directives: a plain install) ---------------------------------------------------
echo "build-node: building coredns $COREDNS_VERSION" >&2
go_install "$out" -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION"

# --- pause ------------------------------------------------------------------------------------------------
(cd "$root/tools/pause" && go build -trimpath -ldflags "-s -w" -o "$out/pause" .)
cache_done "$out" "${want[@]}"
