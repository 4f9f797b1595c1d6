#!/usr/bin/env bash
# Build metrics-server (sigs.k8s.io/metrics-server) from the Go module proxy once per version and print its
# directory: the binary and the manifests its module ships (manifests/base), which scripts/metrics-server-up.sh
# applies through kustomize. Cached like the rest (scripts/lib/cache.sh).
#
# v0.8.1: v0.9.x needs Go 1.26.10, newer than the Go installed here (1.26.8); v0.8 serves the metrics API for
# Kubernetes 1.31 and later, v1.35 included.
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-v0.8.1}
out=$(cache_dir "metrics-server-$METRICS_SERVER_VERSION")
cached_or_continue "$out" metrics-server manifests/base/kustomization.yaml

go_env
echo "build-metrics-server: building metrics-server $METRICS_SERVER_VERSION" >&2
go_install "$out" -trimpath -ldflags "-s -w" "sigs.k8s.io/metrics-server/cmd/metrics-server@$METRICS_SERVER_VERSION"
source=$(go_mod_download Dir "sigs.k8s.io/metrics-server@$METRICS_SERVER_VERSION")
mkdir -p "$out/manifests"
cp -r "$source/manifests/base" "$out/manifests/"
chmod -R u+w "$out/manifests"
cache_done "$out" metrics-server manifests/base/kustomization.yaml
