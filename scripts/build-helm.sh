#!/usr/bin/env bash
# Build helm from the Go module proxy once per version and print the path of the binary.
# Cached in ~/.cache/taskplatform/helm-<version> (scripts/lib/cache.sh); about a minute cold on two cores.
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
HELM_VERSION=${HELM_VERSION:-v3.22.0}
out=$(cache_dir "helm-$HELM_VERSION")
cached_or_continue "$out" helm

go_env
echo "build-helm: building helm $HELM_VERSION" >&2
# As helm's own Makefile does: the default Kubernetes version of `helm template`/`lint` is the one of
# the client-go it is built with (else v1.20, older than the chart's kubeVersion allows).
gomod=$(go_mod_download GoMod "helm.sh/helm/v3@$HELM_VERSION")
minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
done
go_install "$out" -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
cache_done "$out" helm
