#!/usr/bin/env bash
# `make e2e`: the end-to-end suite (tests/e2e) on a cluster whose pods really run, torn down afterwards
# (KEEP=1 keeps it and prints how to reach it). docs/e2e.md.
#
# kind, with no flag: one control plane and KIND_NODES workers (2). Where the host's Docker starts privileged
# containers (a laptop), kind runs there with its own node image (or KIND_NODE_IMAGE). On this machine it cannot
# (CAP_SYS_RESOURCE is missing): kind then runs on a Docker daemon of its own (scripts/kind-docker.sh) with a node
# image built here (scripts/build-kind-node.sh). E2E_CLUSTER=local runs the suite on one real node on this
# machine instead (scripts/node-up.sh). The images come from `make images`. On a failure, kind's logs are exported.
# The last line: `e2e: cluster=<kind|local> nodes=<n> passed=<n> failed=<n> skipped=<n> seconds=<s>`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k8s=$(scripts/build-k8s.sh)
helm_dir=$(dirname "$(scripts/build-helm.sh)")
export PATH="$k8s:$helm_dir:$PATH" E2E_KUBECTL_DIR="$k8s"
choice=${E2E_CLUSTER:-kind}
export CLUSTER_DIR="$root/.e2e"
kubeconfig="$CLUSTER_DIR/kubeconfig"
start=$(date +%s)
case "$choice" in
  kind)
    scripts/kind-up.sh
    export E2E_LOAD_IMAGES="$root/scripts/kind-load-images.sh"
    teardown() { scripts/kind-down.sh; }
    ;;
  local)
    CLUSTER_NODE=local scripts/cluster-up.sh
    export E2E_LOAD_IMAGES="$root/scripts/node-load-images.sh"
    teardown() { scripts/cluster-down.sh >/dev/null; }
    ;;
  *) echo "e2e: E2E_CLUSTER is kind or local, not '$choice'" >&2; exit 2 ;;
esac

nodes=$(kubectl --kubeconfig "$kubeconfig" get nodes --no-headers | wc -l)
status=0
# xunit1: the tests' recorded figures (record_property: the drain's outage, the HPA's scale-up) go into the report.
E2E_KUBECONFIG="$kubeconfig" "${PYTHON:-.venv/bin/python}" -m pytest tests/e2e -p no:cacheprovider \
  --junitxml "$CLUSTER_DIR/junit.xml" -o junit_family=xunit1 ${PYTEST_ARGS:-} || status=$?
if [ "$status" -ne 0 ] && [ "$choice" = kind ]; then scripts/kind-export-logs.sh "$root/.e2e-logs" || true; fi
counts=$("${PYTHON:-.venv/bin/python}" scripts/lib/junit_counts.py "$CLUSTER_DIR/junit.xml")
if [ -n "${KEEP:-}" ]; then
  echo "e2e: kept the $choice cluster: export KUBECONFIG=$kubeconfig PATH=$k8s:\$PATH; kubectl get tp,pods -A"
  if [ "$choice" = local ]; then echo "e2e: remove it with: CLUSTER_DIR=$CLUSTER_DIR scripts/cluster-down.sh"; fi
  if [ "$choice" = kind ]; then echo "e2e: remove it with: CLUSTER_DIR=$CLUSTER_DIR scripts/kind-down.sh"; fi
else
  teardown
fi
echo "e2e: cluster=$choice nodes=$nodes $counts seconds=$(( $(date +%s) - start ))"
exit "$status"
