#!/usr/bin/env bash
# Stop the local control plane started by scripts/cluster-up.sh and remove its state.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
[ -d "$dir/node" ] && "$root/scripts/node-down.sh" >/dev/null  # a real node first: it talks to the API server
pids=()
for name in kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
  [ -f "$dir/$name.pid" ] && pids+=("$(cat "$dir/$name.pid")")
done
if [ ${#pids[@]} -gt 0 ]; then
  # SIGKILL, all at once: the state is thrown away below, so their graceful shutdowns (~2 s each) buy nothing.
  kill -9 "${pids[@]}" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.1; done
fi
rm -rf "$dir"
echo "cluster-down: stopped"
