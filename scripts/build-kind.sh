#!/usr/bin/env bash
# Build kind from the Go module proxy once per version and print the binary's path (cached like the rest).
set -euo pipefail
KIND_VERSION=${KIND_VERSION:-v0.30.0}
out="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/kind-$KIND_VERSION"
if [ ! -x "$out/kind" ]; then
  command -v go >/dev/null || { echo "build-kind: Go is required" >&2; exit 1; }
  echo "build-kind: building kind $KIND_VERSION" >&2
  mkdir -p "$out"
  GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOBIN="$out" \
    go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
fi
echo "$out/kind"
