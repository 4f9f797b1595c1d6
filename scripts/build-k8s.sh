#!/usr/bin/env bash
# Build the Kubernetes binaries from the Go module proxy, once per version set, and print their directory:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubectl (the local control plane), kubelet and
# kube-proxy (the local node), kubeadm (the kind node image), all of k8s.io/kubernetes at one version; etcd, kwok
# and kwok's stage definitions.
#
# One Kubernetes version for everything: v1.35, the last minor release that supports containerd 1.x, because the
# nodes' runtime is Debian's containerd 1.6 (docs/e2e.md, "Which Kubernetes").
# Cached under ~/.cache/taskplatform (scripts/lib/cache.sh); a cold build takes several minutes on two cores.
#
# k8s.io/kubernetes and etcd's server module carry `replace` directives pointing into their own trees,
# so `go install pkg@version` refuses them; each is built from a throwaway wrapper module that requires
# it and maps those replaces to the published module versions (Kubernetes: scripts/lib/build-kubernetes.sh).
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
# shellcheck source=scripts/lib/build-kubernetes.sh
. "$(dirname "$0")/lib/build-kubernetes.sh"
KUBE_VERSION=${KUBE_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.6}  # what kubeadm v1.35 deploys (registry.k8s.io/etcd:3.6.6-0)
KWOK_VERSION=${KWOK_VERSION:-v0.7.0}
out=$(cache_dir "k8s-$KUBE_VERSION-etcd-$ETCD_VERSION-kwok-$KWOK_VERSION")
kube_commands=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kubeadm)
want=("${kube_commands[@]}" etcd kwok kwok-base-stages.yaml)
cached_or_continue "$out" "${want[@]}"

go_env
work_dir

# --- Kubernetes ---------------------------------------------------------------------------------------
build_kubernetes "$KUBE_VERSION" "$out" "$work/k8s" "${kube_commands[@]/#/cmd/}"

# --- etcd ---------------------------------------------------------------------------------------------
wrapper_module "$work/etcd" etcd 1.24 "go.etcd.io/etcd/server/v3@$ETCD_VERSION" \
  "go.etcd.io/etcd/api/v3@$ETCD_VERSION" "go.etcd.io/etcd/client/pkg/v3@$ETCD_VERSION" \
  "go.etcd.io/etcd/client/v3@$ETCD_VERSION" "go.etcd.io/etcd/pkg/v3@$ETCD_VERSION"
echo "build-k8s: building etcd $ETCD_VERSION" >&2
(cd "$work/etcd" && go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3)

# --- kwok (no replace directives: a plain install) ------------------------------------------------------
echo "build-k8s: building kwok $KWOK_VERSION" >&2
go_install "$out" -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
# kwok's own "fast" stages: nodes initialise and heartbeat, pods become Ready at once. Job pods end as
# scripts/kwok/job-pods.yaml says (cluster-up.sh passes it too).
kwok_src=$(go_mod_download Dir "sigs.k8s.io/kwok@$KWOK_VERSION")
for stage in node/fast/node-initialize node/heartbeat-with-lease/node-heartbeat-with-lease pod/fast/pod-ready \
             pod/fast/pod-delete; do
  cat "$kwok_src/kustomize/stage/$stage.yaml"
  echo "---"
done > "$out/kwok-base-stages.yaml"

cache_done "$out" "${want[@]}"
