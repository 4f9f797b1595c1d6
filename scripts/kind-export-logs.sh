#!/usr/bin/env bash
# `kind export logs` of the kind cluster of $CLUSTER_DIR (scripts/kind-up.sh) into DIR: each node's journal,
# kubelet, containerd and pod logs. What a failed end-to-end run leaves for its diagnosis.
#   scripts/kind-export-logs.sh DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/kind-env.sh
. "$root/scripts/lib/kind-env.sh"
"$KIND" export logs --name "$KIND_CLUSTER" "$1" >/dev/null 2>&1
echo "kind's logs (each node's journal, kubelet, containerd and pod logs): $1" >&2
