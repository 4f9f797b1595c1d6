#!/usr/bin/env bash
# Remove what scripts/kind-up.sh made: the kind cluster, the kind daemon where it started one (its network and
# mount namespaces, cgroups and processes), and $CLUSTER_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.e2e}
[ -f "$dir/kind.env" ] || { rm -rf "$dir"; exit 0; }
# shellcheck source=scripts/lib/kind-env.sh
. "$root/scripts/lib/kind-env.sh"
"$KIND" delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1 || true
if [ -n "$KIND_OWN_DAEMON" ]; then "$root/scripts/kind-docker.sh" down; fi
rm -rf "$dir"
