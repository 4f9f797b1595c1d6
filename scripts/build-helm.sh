#!/usr/bin/env bash
# Build helm from the Go module proxy once per version and print the path of the binary.
# Cached in ~/.cache/taskplatform/helm-<version>; about a minute cold on two cores.
set -euo pipefail
HELM_VERSION=${HELM_VERSION:-v3.22.0}
out="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/helm-$HELM_VERSION"
if [ ! -x "$out/helm" ]; then
  command -v go >/dev/null || { echo "build-helm: Go is required" >&2; exit 1; }
  echo "build-helm: building helm $HELM_VERSION" >&2
  mkdir -p "$out"
  export GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
  # As helm's own Makefile does: the default Kubernetes version of `helm template`/`lint` is the one of
  # the client-go it is built with (else v1.20, older than the chart's kubeVersion allows).
  gomod=$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  minor=$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$gomod")
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  GOBIN="$out" go install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
fi
echo "$out/helm"
