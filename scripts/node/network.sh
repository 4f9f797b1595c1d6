# The local node's addresses, sourced by scripts/cluster-up.sh, node-up.sh and node-down.sh (one place).
# Chosen away from Docker's 172.17/16 and kind's defaults; every address stays on this machine.
NODE_NAME=${NODE_NAME:-taskplatform-node}
POD_BRIDGE=tpbr0             # the CNI bridge; node-up.sh makes it early, as the home of the node's address
POD_CIDR=10.251.0.0/24       # pod addresses (host-local IPAM)
NODE_IP=10.251.0.1           # the node's InternalIP and the pods' gateway: the bridge's own address (the kubelet
                             # refuses a loopback node IP, this kernel has no dummy interfaces, and the CNI bridge
                             # plugin accepts no other address on its bridge); the API server, kubelet, CoreDNS use it
SERVICE_CIDR=10.96.0.0/16    # ClusterIPs (kube-proxy, iptables mode)
CLUSTER_DOMAIN=cluster.local
FIREWALL_COMMENT=taskplatform-node  # tags the FORWARD rules node-up.sh adds, so node-down.sh removes exactly those
# The NetworkPolicy enforcer (kube-router's firewall, node-up.sh): its ServiceAccount and ClusterRole, and the names
# of what it makes on the host (extended regular expressions), by which node-down.sh removes them.
NETPOL_ACCOUNT=taskplatform-netpol
NETPOL_FORWARD_CHAIN=KUBE-ROUTER-FORWARD
NETPOL_CHAINS='KUBE-ROUTER-(INPUT|FORWARD|OUTPUT)|KUBE-NWPLCY-[A-Z0-9]+|KUBE-POD-FW-[A-Z0-9]+'
NETPOL_IPSETS='(inet6:)?(KUBE-(SRC|DST)-[A-Z0-9]+|TMP-[A-Z0-9]+|kube-router-[a-z-]+)'
