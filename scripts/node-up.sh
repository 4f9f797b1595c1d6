#!/usr/bin/env bash
# Join one real node on this machine to the control plane that `CLUSTER_NODE=local scripts/cluster-up.sh` starts
# (it calls this script): Debian's containerd 1.6 + runc, a kubelet and kube-proxy (v1.35, scripts/build-k8s.sh),
# CoreDNS for Service names, a CNI bridge, kube-router's firewall to enforce NetworkPolicies (the bridge plugin
# enforces none; scripts/build-netpol.sh), and local PersistentVolumes. Needs root. docs/e2e.md says why each
# setting is what it is. `scripts/node-load-images.sh IMAGE...` copies images from Docker into the node.
#
# Nothing outlives `scripts/node-down.sh`: containerd, its shims and the kubelet run in a mount namespace of
# their own (every mount they make, and every pod network namespace, goes away with it), the cgroups live under
# one root that is removed, the iptables rules carry one comment (node-down.sh deletes them; kube-proxy
# --cleanup removes its chains; node-down.sh removes kube-router's chains and ipsets by their names), and the
# kubelet sees the kernel settings it wants through that namespace instead of writing them to the host.
#   scripts/node-up.sh           # everything (CLUSTER_DIR holds the control plane's kubeconfig)
#   scripts/node-up.sh network   # only the node's address (cluster-up.sh needs it before the API server starts)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
# shellcheck source=scripts/node/network.sh
. "$root/scripts/node/network.sh"
[ "$(id -u)" -eq 0 ] || { echo "node-up: a real node needs root (containerd, kubelet, iptables)" >&2; exit 1; }

if ! ip link show "$POD_BRIDGE" >/dev/null 2>&1; then
  ip link add "$POD_BRIDGE" type bridge
  ip addr add "$NODE_IP/${POD_CIDR#*/}" dev "$POD_BRIDGE"
fi
ip link set "$POD_BRIDGE" up
mkdir -p "$dir/node"  # so cluster-down.sh knows to remove the node (and its address) too
[ "${1:-}" = network ] && exit 0

"$root/scripts/system-deps.sh" node docker
bin=$("$root/scripts/build-node.sh")
k8s=$("$root/scripts/build-k8s.sh")
kube_router=$("$root/scripts/build-netpol.sh")
node="$dir/node"
kubeconfig="$dir/kubeconfig"
mkdir -p "$node"/{logs,containerd/root,containerd/state,cni/net.d,cni/ipam,kubelet,pod-logs,var-log,var-lib,volumes}
kubectl() { "$k8s/kubectl" --kubeconfig "$kubeconfig" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
start() {  # name, command... (in the background, its pid in $node/name.pid)
  local name=$1; shift
  nohup "$@" >"$node/logs/$name.log" 2>&1 &
  echo $! > "$node/$name.pid"
}
wait_until() {  # what, seconds, command...
  local what=$1 seconds=$2; shift 2
  for _ in $(seq 1 $((seconds * 4))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "node-up: $what did not come up in ${seconds} s; logs in $node/logs" >&2
  exit 1
}

# --- firewall: Docker sets FORWARD's policy to DROP and bridged frames pass through it (br_netfilter) -------
for direction in -i -o; do
  iptables -C FORWARD "$direction" "$POD_BRIDGE" -m comment --comment "$FIREWALL_COMMENT" -j ACCEPT 2>/dev/null ||
    iptables -I FORWARD "$direction" "$POD_BRIDGE" -m comment --comment "$FIREWALL_COMMENT" -j ACCEPT
done

# --- cgroups: one root per node in every v1 hierarchy (the kubelet's cgroupRoot); node-down.sh removes it ----
cgroup_root="taskplatform-$(basename "$dir")"
echo "$cgroup_root" > "$node/cgroup-root"
for hierarchy in /sys/fs/cgroup/*/; do
  mkdir -p "$hierarchy$cgroup_root"
done
if [ -d "/sys/fs/cgroup/cpuset/$cgroup_root" ]; then  # a new cpuset is empty until given CPUs and memory nodes
  cat /sys/fs/cgroup/cpuset/cpuset.cpus > "/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.cpus"
  cat /sys/fs/cgroup/cpuset/cpuset.mems > "/sys/fs/cgroup/cpuset/$cgroup_root/cpuset.mems"
fi

# --- the mount namespace: private /run, /var/log, /var/lib, and the kernel settings the kubelet insists on ----
# The kubelet writes vm.overcommit_memory=1, kernel.panic=10 and kernel.panic_on_oops=1 unless it reads them
# already set; here it reads them from files bound over /proc/sys inside the namespace, so the host keeps its own.
mkdir -p "$node/sysctl"
echo 1 > "$node/sysctl/overcommit_memory"; echo 0 > "$node/sysctl/panic_on_oom"
echo 10 > "$node/sysctl/panic"; echo 1 > "$node/sysctl/panic_on_oops"
cat > "$node/namespace.sh" <<EON
set -e
mount -t tmpfs -o mode=755 tmpfs /run
mount --bind "$node/var-log" /var/log
mount --bind "$node/var-lib" /var/lib
for key in vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops; do
  mount --bind "$node/sysctl/\${key#*/}" "/proc/sys/\$key"
done
touch "$node/namespace.ready"
exec sleep infinity
EON
if [ ! -f "$node/namespace.pid" ] || ! kill -0 "$(cat "$node/namespace.pid")" 2>/dev/null; then
  rm -f "$node/namespace.ready"
  start namespace unshare --mount --propagation private --fork -- sh "$node/namespace.sh"
  wait_until "the node's mount namespace" 10 test -f "$node/namespace.ready"
fi
holder=$(pgrep -P "$(cat "$node/namespace.pid")" -x sleep)
in_namespace() { nsenter --mount --target "$holder" -- "$@"; }

# --- containerd 1.6 with its CRI plugin, all state under $node --------------------------------------------
pause_image="taskplatform-pause:$(basename "$bin" | sed 's/.*pause-//')"
cat > "$node/containerd.toml" <<EOC
version = 2
root = "$node/containerd/root"
state = "$node/containerd/state"
oom_score = 0
[grpc]
  address = "$node/containerd.sock"
[ttrpc]
  address = "$node/containerd-ttrpc.sock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # Nothing here may lower an oom_score_adj (docs/e2e.md): containers keep the one they inherit or raise it.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node/cni/net.d"
EOC
cat > "$node/cni/net.d/10-taskplatform.conflist" <<EOC
{
  "cniVersion": "1.0.0",
  "name": "taskplatform",
  "plugins": [
    {"type": "bridge", "bridge": "$POD_BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": "$node/cni/ipam", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "loopback"}
  ]
}
EOC
ctr() { command ctr --address "$node/containerd.sock" "$@"; }
if ! ctr version >/dev/null 2>&1; then
  start containerd nsenter --mount --target "$holder" -- containerd --config "$node/containerd.toml"
  wait_until containerd 30 ctr version
fi

# The sandbox image: the pause binary alone (tools/pause), made here so no registry is needed.
if ! ctr -n k8s.io images ls -q | grep -qx "docker.io/library/$pause_image"; then
  "$root/scripts/docker-up.sh" >/dev/null
  if ! docker image inspect "$pause_image" >/dev/null 2>&1; then
    tar -C "$bin" -c pause | docker import --change 'ENTRYPOINT ["/pause"]' --change 'USER 65535:65535' - "$pause_image" >/dev/null
  fi
  "$root/scripts/node-load-images.sh" "$pause_image"
fi

# --- kubelet (in the namespace) ---------------------------------------------------------------------------
kubelet_port=$(free_port)
cat > "$node/kubelet.yaml" <<EOK
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false              # this host is cgroup v1 (hybrid); 1.35 refuses it unless told
cgroupDriver: cgroupfs
cgroupRoot: /$cgroup_root
containerRuntimeEndpoint: unix://$node/containerd.sock
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}, x509: {}}
authorization: {mode: AlwaysAllow}  # listens on the node's own address only; the API server is its only client
clusterDNS: [$NODE_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: ""                   # pods resolve cluster names only; nothing here reaches beyond the machine
failSwapOn: false
makeIPTablesUtilChains: false
podLogsDir: $node/pod-logs
volumePluginDir: $node/kubelet-plugins
imageGCHighThresholdPercent: 100 # the preloaded images cannot be pulled again: never collect them
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
EOK
if ! kubectl get node "$NODE_NAME" >/dev/null 2>&1 || [ ! -f "$node/kubelet.pid" ] || ! kill -0 "$(cat "$node/kubelet.pid")" 2>/dev/null; then
  start kubelet nsenter --mount --target "$holder" -- "$k8s/kubelet" --config "$node/kubelet.yaml" \
    --kubeconfig "$kubeconfig" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --root-dir "$node/kubelet" --cert-dir "$node/kubelet/pki" --oom-score-adj 0 --v 1
fi

# --- kube-proxy (host network namespace: it programs Service addresses for the host and the pods) ---------
cat > "$node/kube-proxy.yaml" <<EOP
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $kubeconfig}
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:$(free_port)
metricsBindAddress: 127.0.0.1:$(free_port)
mode: iptables
clusterCIDR: $POD_CIDR
detectLocalMode: ClusterCIDR
# Replies from a pod on the same bridge must come back through the host to be un-NATed; masquerading every
# Service connection makes that so without touching the host's bridge settings.
iptables: {masqueradeAll: true, localhostNodePorts: false}
nodePortAddresses: [$NODE_IP/32]
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}  # leave the host's alone
oomScoreAdj: 0
EOP
if [ ! -f "$node/kube-proxy.pid" ] || ! kill -0 "$(cat "$node/kube-proxy.pid")" 2>/dev/null; then
  start kube-proxy "$k8s/kube-proxy" --config "$node/kube-proxy.yaml" --v 1
fi

# --- CoreDNS on the node's address (the kubelet's clusterDNS) ---------------------------------------------
cat > "$node/Corefile" <<EOD
.:53 {
    bind $NODE_IP
    errors
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $kubeconfig
        pods insecure
        ttl 5
    }
}
EOD
if [ ! -f "$node/coredns.pid" ] || ! kill -0 "$(cat "$node/coredns.pid")" 2>/dev/null; then
  start coredns "$bin/coredns" -conf "$node/Corefile"
fi

wait_until "node $NODE_NAME Ready" 120 \
  sh -c "'$k8s/kubectl' --kubeconfig '$kubeconfig' get node '$NODE_NAME' -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' | grep -qx True"

# --- NetworkPolicies: kube-router's firewall alone (docs/e2e.md, "NetworkPolicy enforcement") -------------
# The bridge plugin enforces no policy. kube-router programs the host's iptables (the backend `iptables` is) and
# ipsets from the host's network namespace, like kube-proxy; its jumps go first in INPUT, FORWARD and OUTPUT, ahead
# of the FORWARD rules above, and it lets kube-proxy's Service NAT be. It authenticates as a ServiceAccount
# that may only read what it watches (its informers list Services and EndpointSlices even with the proxy off).
# It starts once the Node object exists (it reads the node's address from it) and before any pod of a test.
kubectl apply -f - >/dev/null <<EOR
apiVersion: v1
kind: ServiceAccount
metadata: {name: $NETPOL_ACCOUNT, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: $NETPOL_ACCOUNT}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [get, list, watch]}
- {apiGroups: [""], resources: [pods, namespaces, services], verbs: [list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: $NETPOL_ACCOUNT}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: $NETPOL_ACCOUNT}
subjects: [{kind: ServiceAccount, name: $NETPOL_ACCOUNT, namespace: kube-system}]
EOR
if [ ! -f "$node/kube-router.pid" ] || ! kill -0 "$(cat "$node/kube-router.pid")" 2>/dev/null; then
  # A bound token (no Secret), valid as long as a kept cluster reasonably lives.
  token=$(kubectl create token "$NETPOL_ACCOUNT" -n kube-system --duration 720h)
  (
    umask 077
    cat > "$node/kube-router.kubeconfig" <<EOK
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "$(sed -n 's/^ *server: //p' "$kubeconfig")", certificate-authority: "$dir/pki/apiserver.crt"}}]
users: [{name: $NETPOL_ACCOUNT, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: $NETPOL_ACCOUNT}}]
current-context: local
EOK
  )
  netpol_health_port=$(free_port)
  echo "$netpol_health_port" > "$node/kube-router.health-port"
  # Only the firewall: no BGP router (and no gRPC admin port), no IPVS proxy, no CNI config, no sysctl writes.
  start kube-router "$kube_router" --kubeconfig "$node/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --run-firewall=true --run-router=false --run-service-proxy=false --run-loadbalancer=false \
    --enable-ipv4=true --enable-ipv6=false --enable-cni=false --service-cluster-ip-range "$SERVICE_CIDR" \
    --health-addr 127.0.0.1 --health-port "$netpol_health_port" --metrics-port 0 --v 1
fi
netpol_health_port=$(cat "$node/kube-router.health-port")
wait_until "kube-router (the NetworkPolicy enforcer)" 90 sh -c "
  iptables -S FORWARD 1 | grep -q -- '-j $NETPOL_FORWARD_CHAIN' &&
  python3 -c 'import urllib.request; urllib.request.urlopen(\"http://127.0.0.1:$netpol_health_port/healthz\", timeout=2)'"

# --- storage: local PersistentVolumes on this node, bound on first use ------------------------------------
# A `local` volume, unlike hostPath, honours the pod's fsGroup, so the database (uid 999) owns its directory.
# Never reused once released (Retain): each platform takes one, each restore a second (its scratch volume).
volumes=${NODE_VOLUMES:-24}
{
  cat <<EOS
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOS
  for n in $(seq 1 "$volumes"); do
    mkdir -p "$node/volumes/pv-$n"
    cat <<EOV
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: local-pv-$n, labels: {taskplatform.dev/local-volume: "true"}}
spec:
  capacity: {storage: ${NODE_VOLUME_SIZE:-20Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: standard
  local: {path: $node/volumes/pv-$n}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}]
EOV
  done
} | kubectl apply -f - >/dev/null
echo "node-up: $NODE_NAME Ready at $NODE_IP (pods $POD_CIDR, Services $SERVICE_CIDR, DNS $NODE_IP)"
