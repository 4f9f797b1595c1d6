# Sourced by scripts/build-k8s.sh and scripts/build-node.sh: build commands of k8s.io/kubernetes at one version.
#   build_kubernetes VERSION OUT_DIR WORK_DIR cmd/kube-apiserver cmd/kubelet ...
#
# k8s.io/kubernetes carries `replace` directives pointing into its own tree (./staging/...), so
# `go install pkg@version` refuses it; it is built from a throwaway wrapper module that requires it and maps
# those replaces to the published staging modules (v0.N.P for v1.N.P). The version is stamped as upstream does.
build_kubernetes() {
  local version=$1 out=$2 work=$3; shift 3
  local kube_mod staging_version minor ldflags pkg packages=()
  kube_mod=$(go mod download -json "k8s.io/kubernetes@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  staging_version="v0.${version#v1.}"
  mkdir -p "$work"
  python3 - "$kube_mod" "$version" "$staging_version" > "$work/go.mod" <<'PY'
import re, sys
mod, version, staging = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(mod).read()
go = re.search(r"^go (\S+)", text, re.M).group(1)
staged = re.findall(r"^\s*(k8s\.io/[\w.-]+) => \./staging/", text, re.M)
print(f"module taskplatform.local/k8s\n\ngo {go}\n\nrequire k8s.io/kubernetes {version}\n\nreplace (")
for module in staged:
    print(f"\t{module} => {module} {staging}")
print(")")
PY
  minor=${version#v1.}; minor=${minor%%.*}
  ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  for pkg in "$@"; do packages+=("k8s.io/kubernetes/$pkg"); done
  echo "build: Kubernetes $version: $* (several minutes, once)" >&2
  (cd "$work" && go build -trimpath -ldflags "$ldflags" -o "$out/" "${packages[@]}")
}
