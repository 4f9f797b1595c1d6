#!/usr/bin/env bash
# `make e2e`: the end-to-end suite (tests/e2e) on a cluster whose pods really run, torn down afterwards
# (KEEP=1 keeps it and prints how to reach it). docs/e2e.md.
#
# Which cluster, with no flag needed:
#   - kind, where Docker can run kind's privileged node containers and the node image is present or pullable
#     (KIND_NODE_IMAGE picks it; kind's default otherwise);
#   - else one real node on this machine (scripts/node-up.sh), as on this project's CI machines, where
#     privileged containers cannot start and no registry can be reached.
# E2E_CLUSTER=kind|local forces one. The images come from `make images`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
k8s=$(scripts/build-k8s.sh)
helm_dir=$(dirname "$(scripts/build-helm.sh)")
export PATH="$k8s:$helm_dir:$PATH" E2E_KUBECTL_DIR="$k8s"
KIND_CLUSTER=${KIND_CLUSTER:-taskplatform-e2e}

kind_works() {
  docker run --rm --privileged --entrypoint true "taskplatform-base:${DEBIAN_SUITE:-bookworm}" >/dev/null 2>&1 || {
    echo "e2e: privileged containers cannot start here (docs/e2e.md), so kind cannot; using a local node" >&2
    return 1
  }
  if [ -n "${KIND_NODE_IMAGE:-}" ] && ! docker image inspect "$KIND_NODE_IMAGE" >/dev/null 2>&1 &&
     ! docker pull -q "$KIND_NODE_IMAGE" >/dev/null 2>&1; then
    echo "e2e: $KIND_NODE_IMAGE is neither here nor pullable; using a local node" >&2
    return 1
  fi
  return 0
}

choice=${E2E_CLUSTER:-}
if [ -z "$choice" ]; then if kind_works; then choice=kind; else choice=local; fi; fi
cluster_dir="$root/.e2e"

case "$choice" in
  kind)
    kind=$(scripts/build-kind.sh)
    image_args=(); [ -n "${KIND_NODE_IMAGE:-}" ] && image_args=(--image "$KIND_NODE_IMAGE")
    kubeconfig="$cluster_dir/kubeconfig"; mkdir -p "$cluster_dir"
    "$kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER" ||
      "$kind" create cluster --name "$KIND_CLUSTER" "${image_args[@]}" --kubeconfig "$kubeconfig" --wait 120s
    "$kind" get kubeconfig --name "$KIND_CLUSTER" > "$kubeconfig"
    export E2E_LOAD_IMAGES="$kind load docker-image --name $KIND_CLUSTER"
    teardown() { "$kind" delete cluster --name "$KIND_CLUSTER" >/dev/null 2>&1; rm -rf "$cluster_dir"; }
    ;;
  local)
    CLUSTER_DIR="$cluster_dir" CLUSTER_NODE=local scripts/cluster-up.sh
    kubeconfig="$cluster_dir/kubeconfig"
    export CLUSTER_DIR="$cluster_dir" E2E_LOAD_IMAGES="$root/scripts/node-load-images.sh"
    teardown() { CLUSTER_DIR="$cluster_dir" scripts/cluster-down.sh >/dev/null; }
    ;;
  *) echo "e2e: E2E_CLUSTER is kind or local, not '$choice'" >&2; exit 2 ;;
esac

status=0
E2E_KUBECONFIG="$kubeconfig" "${PYTHON:-.venv/bin/python}" -m pytest tests/e2e -p no:cacheprovider ${PYTEST_ARGS:-} ||
  status=$?
if [ -n "${KEEP:-}" ]; then
  echo "e2e: kept the $choice cluster: export KUBECONFIG=$kubeconfig PATH=$k8s:\$PATH; kubectl get tp,pods -A"
  [ "$choice" = local ] && echo "e2e: remove it with: CLUSTER_DIR=$cluster_dir scripts/cluster-down.sh"
  [ "$choice" = kind ] && echo "e2e: remove it with: $kind delete cluster --name $KIND_CLUSTER"
else
  teardown
fi
exit "$status"
