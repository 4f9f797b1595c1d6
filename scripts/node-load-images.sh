#!/usr/bin/env bash
# Copy images from the local Docker engine into the local node's containerd (what `kind load docker-image`
# does for kind), so pods start without a registry. Pods must use imagePullPolicy IfNotPresent or Never.
#   scripts/node-load-images.sh taskplatform-api:0.1.0 taskplatform-postgres:15
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
[ $# -gt 0 ] || { echo "usage: $0 IMAGE..." >&2; exit 2; }
docker save "$@" | ctr --address "$dir/node/containerd.sock" -n k8s.io images import --no-unpack - >/dev/null
echo "node-load-images: $*" >&2
