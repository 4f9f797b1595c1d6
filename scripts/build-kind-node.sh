#!/usr/bin/env bash
# Build a kind node image on this machine, in the kind daemon (scripts/kind-docker.sh), and print its name:
# kind's node layout (entrypoint, systemd units, /kind files from the kind module), Debian's containerd 1.6, runc
# and CNI plugins (taskplatform-kindbase), Kubernetes built from the Go module proxy (scripts/build-k8s.sh), and
# the images a cluster starts with preloaded: the control plane's, etcd, CoreDNS, kube-proxy, the sandbox (tools/pause),
# the network plugin (kube-router, tools/kind-node/kube-router.yaml) and the storage provisioner
# (local-path-provisioner, kind's default StorageClass `standard`). No registry is needed. The image is named by a
# hash of everything that goes into it, so it is built once per change and kept in the kind daemon's store.
# docs/e2e.md, "kind on this machine".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cache.sh
. "$root/scripts/lib/cache.sh"
KIND_VERSION=${KIND_VERSION:-v0.30.0}
CRI_TOOLS_VERSION=${CRI_TOOLS_VERSION:-v1.34.0}  # of the versions near v1.35, the one the proxy serves
LOCAL_PATH_VERSION=${LOCAL_PATH_VERSION:-v0.0.30}
SUITE=${DEBIAN_SUITE:-bookworm}

k8s=$("$root/scripts/build-k8s.sh")
node=$("$root/scripts/build-node.sh")
kube_router=$("$root/scripts/build-netpol.sh")
tools=$(cache_dir "kind-node-tools-crictl-$CRI_TOOLS_VERSION-local-path-$LOCAL_PATH_VERSION")
(
  cached_or_continue "$tools" crictl local-path-provisioner
  go_env
  echo "build-kind-node: building crictl $CRI_TOOLS_VERSION, local-path-provisioner $LOCAL_PATH_VERSION" >&2
  go_install "$tools" -trimpath -ldflags "-s -w" "sigs.k8s.io/cri-tools/cmd/crictl@$CRI_TOOLS_VERSION"
  go_install "$tools" -trimpath -ldflags "-s -w" "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
  cache_done "$tools" crictl local-path-provisioner
) >/dev/null
go_env
kind_src=$(go_mod_download Dir "sigs.k8s.io/kind@$KIND_VERSION")
local_path_src=$(go_mod_download Dir "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION")

# The daemon is stopped again at the end if this script started it (`make test` builds before any cluster runs).
stop_daemon=""
if ! DOCKER_HOST=$("$root/scripts/kind-docker.sh" host) docker info >/dev/null 2>&1; then stop_daemon=1; fi
work=$(mktemp -d)
cleanup() {
  rm -rf "$work"
  if [ -n "$stop_daemon" ]; then "$root/scripts/kind-docker.sh" down; fi
}
trap cleanup EXIT
DOCKER_HOST=$("$root/scripts/kind-docker.sh" up)
export DOCKER_HOST
kube_version=$("$k8s/kubeadm" version -o short)
pause_image="taskplatform-pause:$(basename "$node" | sed 's/.*pause-//')"
kube_router_image="taskplatform-kube-router:$(basename "$(dirname "$kube_router")" | sed 's/^kube-router-//')"
local_path_image="taskplatform-local-path-provisioner:$LOCAL_PATH_VERSION"
helper_image="taskplatform-netbase:$SUITE"

"$root/scripts/build-base-images.sh" taskplatform-kindbase taskplatform-netbase
key=$( {
  echo "$k8s $node $kube_router $tools $KIND_VERSION $SUITE"
  docker image inspect -f '{{.Id}}' "taskplatform-kindbase:$SUITE" "$helper_image"
  cat "$root"/tools/kind-node/* "$0"
} | sha256sum | cut -c1-12)
image="taskplatform-kind-node:$kube_version-$key"
if docker image inspect "$image" >/dev/null 2>&1; then echo "$image"; exit 0; fi

echo "build-kind-node: building $image" >&2
context="$work/context"
mkdir -p "$context/images" "$context/bin" "$context/manifests"
cp -r "$kind_src/images/base/files" "$context/kind"
chmod -R u+w "$context/kind"
cp "$root"/tools/kind-node/{Dockerfile,containerd.service,kernel-settings} "$context/"
sed "s|@SANDBOX_IMAGE@|docker.io/library/$pause_image|" "$root/tools/kind-node/containerd.toml" \
  > "$context/containerd.toml"
cp "$k8s"/{kubeadm,kubelet,kubectl} "$tools/crictl" "$context/bin/"

# --- the images: each binary on the smallest base that runs it, named as kubeadm asks for it ------------------
binary_image() {  # name binary [netbase]: an image of the binary in /usr/local/bin, on scratch or on netbase
  local name=$1 binary=$2
  if [ "${3:-}" = netbase ]; then
    mkdir -p "$work/$name" && cp "$binary" "$work/$name/"
    printf 'FROM %s\nCOPY %s /usr/local/bin/\n' "$helper_image" "$(basename "$binary")" |
      docker build -q -t "$name" -f - "$work/$name" >/dev/null
  else
    tar -C "$(dirname "$binary")" --transform 's|^|usr/local/bin/|' -c "$(basename "$binary")" |
      docker import --change 'ENV PATH=/usr/local/bin' - "$name" >/dev/null
  fi
  docker save "$name" > "$context/images/$(echo "$name" | tr '/:' '__').tar"
}
etcd_version=$("$k8s/etcd" --version | sed -n 's/^etcd Version: //p')
coredns_version=$("$node/coredns" -version | sed -n 's/^CoreDNS-//p')
while read -r wanted; do
  component=${wanted##*/}
  tag=${component#*:}
  component=${component%%:*}
  case "$component" in
    kube-apiserver|kube-controller-manager|kube-scheduler) binary_image "$wanted" "$k8s/$component" ;;
    kube-proxy) binary_image "$wanted" "$k8s/kube-proxy" netbase ;;
    etcd)
      [ "${tag%-*}" = "$etcd_version" ] ||
        { echo "build-kind-node: kubeadm wants etcd $tag, built is $etcd_version (ETCD_VERSION)" >&2; exit 1; }
      binary_image "$wanted" "$k8s/etcd" ;;
    coredns)
      [ "$tag" = "v$coredns_version" ] ||
        { echo "build-kind-node: kubeadm wants CoreDNS $tag, built is $coredns_version (COREDNS_VERSION)" >&2; exit 1; }
      tar -C "$node" -c coredns | docker import --change 'ENTRYPOINT ["/coredns"]' - "$wanted" >/dev/null
      docker save "$wanted" > "$context/images/coredns.tar" ;;
    pause) ;;  # the sandbox is tools/pause (containerd.toml)
    *) echo "build-kind-node: kubeadm wants $wanted, which this script does not build" >&2; exit 1 ;;
  esac
done < <("$k8s/kubeadm" config images list --kubernetes-version "$kube_version")
tar -C "$node" -c pause |
  docker import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' - "$pause_image" >/dev/null
docker save "$pause_image" > "$context/images/pause.tar"
binary_image "$kube_router_image" "$kube_router" netbase
binary_image "$local_path_image" "$tools/local-path-provisioner"
docker save "$helper_image" > "$context/images/helper.tar"

# --- the manifests kind applies when it creates a cluster -------------------------------------------------------
sed "s|@KUBE_ROUTER_IMAGE@|docker.io/library/$kube_router_image|" "$root/tools/kind-node/kube-router.yaml" \
  > "$context/manifests/default-cni.yaml"
# local-path-provisioner's own manifest, as kind ships it: class `standard`, the default, volumes on the node's /var
# (a volume of the node container), images from the node's store.
python3 - "$local_path_src/deploy/local-path-storage.yaml" "$context/manifests/default-storage.yaml" \
  "docker.io/library/$local_path_image" "docker.io/library/$helper_image" <<'EOF'
import sys

source, target, provisioner, helper = sys.argv[1:]
text = open(source).read()
replacements = [
    ("image: rancher/local-path-provisioner:", None),
    ("imagePullPolicy: IfNotPresent\n          command:", "imagePullPolicy: Never\n          command:"),
    ("  name: local-path\nprovisioner:", "  name: standard\n  annotations:\n"
     "    storageclass.kubernetes.io/is-default-class: \"true\"\nprovisioner:"),
    ('"paths":["/opt/local-path-provisioner"]', '"paths":["/var/local-path-provisioner"]'),
    ("image: busybox\n        imagePullPolicy: IfNotPresent", f"image: {helper}\n        imagePullPolicy: Never"),
]
for old, new in replacements:
    if old not in text:
        sys.exit(f"build-kind-node: {source} changed: no {old!r}")
    if new is None:  # the provisioner's image line, whatever its tag
        start = text.index(old)
        end = text.index("\n", start)
        text = text[:start] + f"image: {provisioner}" + text[end:]
    else:
        text = text.replace(old, new)
open(target, "w").write(text)
EOF

docker build -q --build-arg "BASE_IMAGE=taskplatform-kindbase:$SUITE" --build-arg "KUBE_VERSION=$kube_version" \
  -t "$image" "$context" >/dev/null
echo "$image"
