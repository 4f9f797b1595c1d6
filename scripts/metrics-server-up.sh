#!/usr/bin/env bash
# Install metrics-server into the cluster of $KUBECONFIG and wait until the metrics API answers, so that a
# HorizontalPodAutoscaler can act (docs/e2e.md, "Autoscaling"). Idempotent.
#   METRICS_SERVER_LOAD: the command that copies an image from Docker into the cluster's nodes
#   (scripts/kind-load-images.sh, scripts/node-load-images.sh)
#
# metrics-server's own manifests (manifests/base of its module), through kustomize (kubectl apply -k), with two
# changes: the image built here, and --kubelet-insecure-tls, because the kubelets' serving certificates are
# self-signed on kind and on the local node (no kubelet serving-certificate signer runs on either). metrics-server
# still authenticates to the kubelets with its ServiceAccount's token.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
: "${KUBECONFIG:?the cluster}" "${METRICS_SERVER_LOAD:?the command that loads images into its nodes}"
k8s=$("$root/scripts/build-k8s.sh")
built=$("$root/scripts/build-metrics-server.sh")
version=$(basename "$built" | sed 's/^metrics-server-//')
image="taskplatform-metrics-server:$version"
kubectl() { "$k8s/kubectl" --kubeconfig "$KUBECONFIG" "$@"; }

if ! docker image inspect "$image" >/dev/null 2>&1; then
  tar -C "$built" -c metrics-server |
    docker import --change 'ENTRYPOINT ["/metrics-server"]' --change 'USER 65534:65534' - "$image" >/dev/null
fi
$METRICS_SERVER_LOAD "$image" >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$built/manifests/base" "$work/base"
cat > "$work/kustomization.yaml" <<EOK
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [base]
images:
- name: gcr.io/k8s-staging-metrics-server/metrics-server
  newName: docker.io/library/taskplatform-metrics-server
  newTag: "$version"
patches:
- target: {kind: Deployment, name: metrics-server}
  patch: |-
    - {op: add, path: /spec/template/spec/containers/0/args/-, value: --kubelet-insecure-tls}
    - {op: replace, path: /spec/template/spec/containers/0/imagePullPolicy, value: Never}
EOK
kubectl apply -k "$work" >/dev/null
kubectl -n kube-system rollout status deployment/metrics-server --timeout=180s >/dev/null
kubectl wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io --timeout=180s >/dev/null
echo "metrics-server-up: the metrics API answers ($image)" >&2
