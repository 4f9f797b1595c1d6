#!/usr/bin/env bash
# Load images into the kind cluster of $CLUSTER_DIR (scripts/kind-up.sh) with `kind load docker-image`. Where kind
# runs on a daemon of its own, an image is first copied there from the Docker engine that built it (`make images`),
# unless that daemon already holds the same image.
#   scripts/kind-load-images.sh IMAGE...
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ $# -gt 0 ] || { echo "usage: $0 IMAGE..." >&2; exit 2; }
# shellcheck source=scripts/lib/kind-env.sh
. "$root/scripts/lib/kind-env.sh"
if [ -n "$KIND_OWN_DAEMON" ]; then
  missing=()
  for image in "$@"; do
    built=$(DOCKER_HOST=$BUILD_DOCKER_HOST docker image inspect -f '{{.Id}}' "$image")
    present=$(DOCKER_HOST=$KIND_DOCKER_HOST docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
    [ "$built" = "$present" ] || missing+=("$image")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    DOCKER_HOST=$BUILD_DOCKER_HOST docker save "${missing[@]}" | DOCKER_HOST=$KIND_DOCKER_HOST docker load -q >/dev/null
  fi
fi
# Into every node: the platform's pods run on the workers, the suite's client pod on the control plane.
"$KIND" load docker-image --name "$KIND_CLUSTER" "$@"
