#!/usr/bin/env bash
# Build taskplatform-api, taskplatform-operator and taskplatform-postgres on local Debian base images
# (scripts/build-base-images.sh), from the wheelhouse in build/wheels (`make wheels`). Prints image sizes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SUITE=${DEBIAN_SUITE:-bookworm}
VERSION=${VERSION:-0.1.0}
scripts/build-base-images.sh
build() {  # tag, dockerfile, base image
  echo "build-images: $1" >&2
  docker build -q -f "$2" --build-arg "BASE_IMAGE=$3" -t "$1" . >/dev/null
}
build "taskplatform-api:$VERSION" Dockerfile.api "taskplatform-base:$SUITE"
build "taskplatform-operator:$VERSION" Dockerfile.operator "taskplatform-base:$SUITE"
build "taskplatform-postgres:15" Dockerfile.postgres "taskplatform-pgbase:$SUITE"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^taskplatform-(api|operator|postgres):" >&2
