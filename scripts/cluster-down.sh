#!/usr/bin/env bash
# Stop the local control plane started by scripts/cluster-up.sh and remove its state.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  if [ -f "$dir/$name.pid" ]; then
    kill "$(cat "$dir/$name.pid")" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/$name.pid")" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$(cat "$dir/$name.pid")" 2>/dev/null
    rm -f "$dir/$name.pid"
  fi
done
rm -rf "$dir"
echo "cluster-down: stopped"
