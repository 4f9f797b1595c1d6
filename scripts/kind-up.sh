#!/usr/bin/env bash
# Create the kind cluster the end-to-end suite runs on (idempotent) and write $CLUSTER_DIR/kubeconfig and
# $CLUSTER_DIR/kind.env (what scripts/kind-load-images.sh and scripts/kind-down.sh need), with metrics-server
# running (scripts/metrics-server-up.sh). docs/e2e.md.
#   KIND_CLUSTER (taskplatform-e2e), KIND_NODES: workers beside one control plane (2), KIND_NODE_IMAGE
#
# Where the host's Docker starts privileged containers (a laptop), kind runs there with its own node image (or
# KIND_NODE_IMAGE). On this machine it cannot (CAP_SYS_RESOURCE is missing from the bounding set): kind then runs
# on a Docker daemon of its own (scripts/kind-docker.sh) with a node image built here (scripts/build-kind-node.sh),
# and the API server is published on that daemon's address.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.e2e}
KIND_CLUSTER=${KIND_CLUSTER:-taskplatform-e2e}
KIND_NODES=${KIND_NODES:-2}
mkdir -p "$dir"
kind=$("$root/scripts/build-kind.sh")

host_docker_runs_kind() {
  docker run --rm --privileged --entrypoint true "taskplatform-base:${DEBIAN_SUITE:-bookworm}" >/dev/null 2>&1
}

# Kubelets from v1.35 refuse cgroup v1 unless told so; this machine has cgroup v1 (docs/e2e.md).
{
  printf '%s\n' "kind: Cluster" "apiVersion: kind.x-k8s.io/v1alpha4" "kubeadmConfigPatches:" "- |" \
    "  kind: KubeletConfiguration" "  failCgroupV1: false" "nodes:" "- role: control-plane"
  for _ in $(seq 1 "$KIND_NODES"); do echo "- role: worker"; done
} > "$dir/kind.yaml"
image_args=()
build_docker=${DOCKER_HOST:-}  # the Docker that built the images (`make images`)
if [ -n "${KIND_NODE_IMAGE:-}" ] || host_docker_runs_kind; then
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then image_args=(--image "$KIND_NODE_IMAGE"); fi
  printf 'KIND=%q\nKIND_CLUSTER=%q\nKIND_OWN_DAEMON=\n' "$kind" "$KIND_CLUSTER" > "$dir/kind.env"
else
  echo "kind-up: the host's Docker cannot start privileged containers; kind runs on a daemon of its own" >&2
  node_image=$("$root/scripts/build-kind-node.sh")
  DOCKER_HOST=$("$root/scripts/kind-docker.sh" up)
  export DOCKER_HOST
  image_args=(--image "$node_image")
  printf '%s\n' "networking:" "  apiServerAddress: \"${KIND_API_ADDRESS:-10.253.0.2}\"" "  apiServerPort: 6443" \
    >> "$dir/kind.yaml"
  printf 'KIND=%q\nKIND_CLUSTER=%q\nKIND_OWN_DAEMON=1\nKIND_DOCKER_HOST=%q\nBUILD_DOCKER_HOST=%q\n' \
    "$kind" "$KIND_CLUSTER" "$DOCKER_HOST" "$build_docker" > "$dir/kind.env"
fi
if ! "$kind" get clusters 2>/dev/null | grep -qx "$KIND_CLUSTER"; then
  "$kind" create cluster --name "$KIND_CLUSTER" --config "$dir/kind.yaml" "${image_args[@]}" \
    --kubeconfig "$dir/kubeconfig" --wait 180s
fi
"$kind" get kubeconfig --name "$KIND_CLUSTER" > "$dir/kubeconfig"
# The metrics API, so that HorizontalPodAutoscalers act (its image is built with the Docker that builds the others).
# KIND_METRICS=0 leaves it out (tests/node/test_kind.py: a cluster only to see what it leaves behind).
if [ "${KIND_METRICS:-1}" != 0 ]; then
  DOCKER_HOST=$build_docker KUBECONFIG="$dir/kubeconfig" CLUSTER_DIR="$dir" \
    METRICS_SERVER_LOAD="$root/scripts/kind-load-images.sh" "$root/scripts/metrics-server-up.sh"
fi
