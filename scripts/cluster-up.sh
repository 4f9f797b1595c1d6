#!/usr/bin/env bash
# A local Kubernetes control plane for the operator's tests: etcd + kube-apiserver + kube-controller-manager
# (garbage collection, Deployment/ReplicaSet/StatefulSet/Job controllers) + kube-scheduler + kwok with fake
# nodes (pods get scheduled, become Running/Ready, and Job pods complete). No container runtime, no registry needed.
# CLUSTER_NODE=local instead joins one real node on this machine (scripts/node-up.sh: containerd, kubelet,
# kube-proxy, CoreDNS; docs/e2e.md): the API server then listens on the node's address so pods reach it;
# CLUSTER_METRICS=1 adds metrics-server (scripts/metrics-server-up.sh).
# Writes .cluster/kubeconfig; `scripts/cluster-down.sh` stops it. Idempotent: a running cluster is kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
node=${CLUSTER_NODE:-kwok}
bin=$("$root/scripts/build-k8s.sh")
kubeconfig="$dir/kubeconfig"
# shellcheck source=scripts/node/network.sh
. "$root/scripts/node/network.sh"
case "$node" in
  kwok) api_address=127.0.0.1 ;;
  local) api_address=$NODE_IP ;;
  *) echo "cluster-up: CLUSTER_NODE is 'kwok' or 'local', not '$node'" >&2; exit 2 ;;
esac

if [ -f "$kubeconfig" ] && "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1; then
  echo "cluster-up: already running ($kubeconfig)"
  exit 0
fi
"$root/scripts/cluster-down.sh" >/dev/null 2>&1 || true  # leftovers of a crashed run
mkdir -p "$dir/pki" "$dir/logs" "$dir/etcd"
if [ "$node" = local ]; then "$root/scripts/node-up.sh" network; fi  # the node's address must exist first

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)

pki="$dir/pki"
if [ ! -f "$pki/sa.key" ]; then
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=127.0.0.1" \
    -addext "subjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:${SERVICE_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes.default.svc" \
    -keyout "$pki/apiserver.key" -out "$pki/apiserver.crt" 2>/dev/null
  token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
  echo "$token,admin,admin,system:masters" > "$pki/tokens.csv"
  # The aggregation layer (an API server of its own behind this one: metrics-server's metrics API): a CA for the
  # front proxy and the client certificate this server presents when it forwards a request there.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=front-proxy-ca" \
    -keyout "$pki/front-proxy-ca.key" -out "$pki/front-proxy-ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=front-proxy-client" \
    -keyout "$pki/front-proxy-client.key" -out "$pki/front-proxy-client.csr" 2>/dev/null
  openssl x509 -req -in "$pki/front-proxy-client.csr" -CA "$pki/front-proxy-ca.crt" \
    -CAkey "$pki/front-proxy-ca.key" -CAcreateserial -days 3650 -out "$pki/front-proxy-client.crt" 2>/dev/null
fi
token=$(cut -d, -f1 "$pki/tokens.csv")

start() {  # name, command...
  local name=$1; shift
  nohup "$@" >"$dir/logs/$name.log" 2>&1 &
  echo $! > "$dir/$name.pid"
}

start etcd "$bin/etcd" --data-dir "$dir/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "default=http://127.0.0.1:$peer_port" --unsafe-no-fsync --quota-backend-bytes 4294967296

if [ "$node" = local ]; then
  # Real pods: their ServiceAccount tokens are mounted, and the `kubernetes` Service points at this server.
  node_flags=(--endpoint-reconciler-type lease --kubelet-preferred-address-types InternalIP,Hostname)
else
  node_flags=(--disable-admission-plugins ServiceAccount --endpoint-reconciler-type none)
fi
start kube-apiserver "$bin/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address "$api_address" --advertise-address "$api_address" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --token-auth-file "$pki/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
  --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range "$SERVICE_CIDR" \
  --allow-privileged=true "${node_flags[@]}" \
  --requestheader-client-ca-file "$pki/front-proxy-ca.crt" --requestheader-allowed-names front-proxy-client \
  --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
  --requestheader-extra-headers-prefix X-Remote-Extra- \
  --proxy-client-cert-file "$pki/front-proxy-client.crt" --proxy-client-key-file "$pki/front-proxy-client.key" \
  --enable-aggregator-routing=true

cat > "$kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://$api_address:$api_port
    certificate-authority: $pki/apiserver.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context: {cluster: local, user: admin, namespace: default}
current-context: local
EOK
chmod 600 "$kubeconfig"

for _ in $(seq 1 120); do
  "$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null 2>&1 && break
  sleep 0.5
done
"$bin/kubectl" --kubeconfig "$kubeconfig" get --raw /readyz >/dev/null

start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --leader-elect=false --controllers '*' --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/apiserver.crt" --bind-address 127.0.0.1 --secure-port 0 \
  --enable-hostpath-provisioner  # PVCs of the default StorageClass below get real (host-path) volumes

start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$kubeconfig" \
  --authentication-kubeconfig "$kubeconfig" --authorization-kubeconfig "$kubeconfig" \
  --leader-elect=false --bind-address 127.0.0.1 --secure-port 0

if [ "$node" = local ]; then
  "$root/scripts/node-up.sh"
  # CLUSTER_METRICS=1: the metrics API too (HorizontalPodAutoscalers act); off by default, it takes seconds.
  if [ -n "${CLUSTER_METRICS:-}" ]; then
    KUBECONFIG="$kubeconfig" METRICS_SERVER_LOAD="$root/scripts/node-load-images.sh" "$root/scripts/metrics-server-up.sh"
  fi
  echo "cluster-up: ready with a real node; export KUBECONFIG=$kubeconfig"
  exit 0
fi

# kwok also serves the kubelet API (on 127.0.0.1, the fake nodes' address) so `kubectl logs` works: every
# container named `migrate` prints what $dir/container-logs/migrate.log holds (tests write it).
mkdir -p "$dir/container-logs" && : > "$dir/container-logs/migrate.log"
cat > "$dir/kwok-logs.yaml" <<EOL
apiVersion: kwok.x-k8s.io/v1alpha1
kind: ClusterLogs
metadata: {name: migrate}
spec:
  selector: {}
  logs:
  - containers: [migrate]
    logsFile: $dir/container-logs/migrate.log
EOL
kubelet_port=$(free_port)
start kwok "$bin/kwok" --kubeconfig "$kubeconfig" --config "$bin/kwok-base-stages.yaml" \
  --config "$root/scripts/kwok/job-pods.yaml" --config "$dir/kwok-logs.yaml" --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --node-lease-duration-seconds 40 \
  --cidr 10.244.0.0/16 --node-ip 127.0.0.1 --node-port "$kubelet_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key"

for n in 1 2; do
  cat <<EON | "$bin/kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$n
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$n, type: kwok}
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "500"}
  capacity: {cpu: "64", memory: 512Gi, pods: "500"}
EON
done
cat <<EOS | "$bin/kubectl" --kubeconfig "$kubeconfig" apply -f - >/dev/null
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOS
echo "cluster-up: ready; export KUBECONFIG=$kubeconfig"
