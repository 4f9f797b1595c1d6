# shellcheck shell=bash
# Sourced by scripts/build-k8s.sh and scripts/build-node.sh, after scripts/lib/cache.sh: build commands of
# k8s.io/kubernetes at one version.
#   build_kubernetes VERSION OUT_DIR WORK_DIR cmd/kube-apiserver cmd/kubelet ...
#
# k8s.io/kubernetes carries `replace` directives pointing into its own tree (./staging/...), so
# `go install pkg@version` refuses it; it is built from a throwaway wrapper module (wrapper_module) that requires it
# and maps those replaces to the published staging modules (v0.N.P for v1.N.P). The version is stamped as upstream
# does.
build_kubernetes() {
  local version=$1 out=$2 work=$3
  shift 3
  local kube_mod go_version staging_version minor ldflags pkg staged=() packages=()
  kube_mod=$(go_mod_download GoMod "k8s.io/kubernetes@$version")
  go_version=$(sed -n '/^go /{s/^go \([^[:space:]]*\).*/\1/p;q;}' "$kube_mod")
  staging_version="v0.${version#v1.}"
  mapfile -t staged < <(sed -n "s|^[[:space:]]*\(k8s\.io/[[:alnum:]_.-]*\) => \./staging/.*|\1@$staging_version|p" \
    "$kube_mod")
  wrapper_module "$work" k8s "$go_version" "k8s.io/kubernetes@$version" "${staged[@]}"
  minor=${version#v1.}
  minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for pkg in "$@"; do packages+=("k8s.io/kubernetes/$pkg"); done
  echo "build: Kubernetes $version: $* (several minutes, once)" >&2
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$out/" "${packages[@]}")
}
