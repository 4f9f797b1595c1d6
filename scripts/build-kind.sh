#!/usr/bin/env bash
# Build kind from the Go module proxy once per version and print the binary's path (cached like the rest:
# scripts/lib/cache.sh).
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
KIND_VERSION=${KIND_VERSION:-v0.30.0}
out=$(cache_dir "kind-$KIND_VERSION")
cached_or_continue "$out" kind

go_env
echo "build-kind: building kind $KIND_VERSION" >&2
go_install "$out" -trimpath -ldflags "-s -w" "sigs.k8s.io/kind@$KIND_VERSION"
cache_done "$out" kind
