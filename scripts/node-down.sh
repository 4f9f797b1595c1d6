#!/usr/bin/env bash
# Remove the local node that scripts/node-up.sh started, and everything it made on the host: its processes
# (containerd's shims and the containers included), its mount namespace (with every mount and pod network
# namespace in it), its cgroups, the bridge holding the node's address and the pods, its iptables rules, kube-proxy's
# chains, and kube-router's chains (in every table of both iptables backends) and ipsets.
# Idempotent, and safe after a crash: each step works from what it finds, not from what should be there.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${CLUSTER_DIR:-$root/.cluster}
node="$dir/node"
# shellcheck source=scripts/node/network.sh
. "$root/scripts/node/network.sh"
k8s=$("$root/scripts/build-k8s.sh" 2>/dev/null)

# Every process in the node's mount namespace: the holder, containerd, the kubelet, the shims and what they run.
# The namespace is identified once, up front: the holder dies in the first pass, and a shim containerd was
# forking at that moment appears only after it (seen once: a late shim and its pause survived a teardown).
node_ns=""
if [ -f "$node/namespace.pid" ]; then
  node_ns=$(readlink "/proc/$(cat "$node/namespace.pid")/ns/mnt" 2>/dev/null)
  [ "$node_ns" = "$(readlink /proc/self/ns/mnt)" ] && node_ns=""  # never the host's own namespace
fi
namespace_members() {
  local pid
  [ -n "$node_ns" ] || return 0
  for pid in /proc/[0-9]*; do
    [ "$(readlink "$pid/ns/mnt" 2>/dev/null)" = "$node_ns" ] && echo "${pid#/proc/}"
  done
}
# Containers run in mount namespaces of their own; their shims are in the node's. Kill the shims' children too.
descendants() { local p; for p in $(pgrep -P "$1"); do echo "$p"; descendants "$p"; done; }

if [ -d "$node" ]; then
  for name in coredns kube-proxy; do
    [ -f "$node/$name.pid" ] && kill "$(cat "$node/$name.pid")" 2>/dev/null
  done
  # kube-router leaves its rules in place when it stops (they are removed below); it must be gone first, or it
  # would program them again.
  if [ -f "$node/kube-router.pid" ]; then
    netpol_pid=$(cat "$node/kube-router.pid")
    kill -9 "$netpol_pid" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$netpol_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  # Passes until nothing is left: one pass can miss a process forked while it ran.
  for _ in $(seq 1 50); do
    all=""
    for pid in $(namespace_members); do all+=" $pid $(descendants "$pid" | tr '\n' ' ')"; done
    [ -z "${all// }" ] && break
    # shellcheck disable=SC2086
    kill -9 $all 2>/dev/null
    sleep 0.1
  done
  [ -n "$k8s" ] && [ -x "$k8s/kube-proxy" ] && "$k8s/kube-proxy" --cleanup >/dev/null 2>&1
  for name in coredns kube-proxy; do
    [ -f "$node/$name.pid" ] && kill -9 "$(cat "$node/$name.pid")" 2>/dev/null
  done
fi

# cgroups: deepest first; a cgroup goes once its processes are gone.
if [ -f "$node/cgroup-root" ]; then
  cgroup_root=$(cat "$node/cgroup-root")
  for _ in 1 2 3 4 5; do
    left=0
    for hierarchy in /sys/fs/cgroup/*/; do
      [ -d "$hierarchy$cgroup_root" ] || continue
      find "$hierarchy$cgroup_root" -depth -type d -exec rmdir {} \; 2>/dev/null
      [ -d "$hierarchy$cgroup_root" ] && left=1
    done
    [ "$left" -eq 0 ] && break
    sleep 0.5
  done
fi

# iptables: the FORWARD rules tagged by node-up.sh, and the kubelet's marker chains.
while read -r rule; do
  # shellcheck disable=SC2086
  iptables ${rule/-A/-D}
done < <(iptables -S FORWARD 2>/dev/null | grep -- "--comment $FIREWALL_COMMENT")
# What kube-proxy --cleanup leaves: KUBE-FIREWALL (jumped to from INPUT and OUTPUT) and the marker chains, for
# IPv6 as well as IPv4 (kube-proxy makes an IPv6 KUBE-FIREWALL too, on a host with IPv6, though the node has none).
for ipt in iptables ip6tables; do
  for table in mangle nat filter; do
    for chain in KUBE-FIREWALL KUBE-IPTABLES-HINT KUBE-KUBELET-CANARY; do
      while read -r rule; do
        # shellcheck disable=SC2086
        "$ipt" -t "$table" ${rule/-A/-D}
      done < <("$ipt" -t "$table" -S 2>/dev/null | grep -E -- "^-A [A-Z-]+ .*-j $chain\$")
      "$ipt" -t "$table" -F "$chain" 2>/dev/null && "$ipt" -t "$table" -X "$chain" 2>/dev/null
    done
  done
done

# kube-router's: the rules that jump to its chains (and any rule it tagged), then its chains, in every table of
# both backends and both families, each table changed in one iptables-restore; then its ipsets, which rules no
# longer reference.
netpol_restore_script() {  # iptables-save output in, the iptables-restore --noflush input that removes it out
  awk -v chains="^($NETPOL_CHAINS)\$" '
    /^\*/ { table = $0; n = 0; m = 0; next }
    /^:/ { name = substr($1, 2); if (name ~ chains) own[++m] = name; next }
    /^-A / {
      target = ""
      for (i = 3; i < NF; i++) if ($i == "-j" || $i == "-g") target = $(i + 1)
      if ($2 !~ chains && (target ~ chains || $0 ~ /--comment "?kube-router /)) rule[++n] = "-D" substr($0, 3)
      next
    }
    /^COMMIT/ {
      if (n + m == 0) next
      print table
      for (i = 1; i <= n; i++) print rule[i]
      for (i = 1; i <= m; i++) print "-F " own[i]
      for (i = 1; i <= m; i++) print "-X " own[i]
      print "COMMIT"
    }'
}
for iptables in iptables-nft iptables-legacy ip6tables-nft ip6tables-legacy; do
  command -v "$iptables-save" >/dev/null || continue
  script=$("$iptables-save" 2>/dev/null | netpol_restore_script)
  [ -n "$script" ] && "$iptables-restore" --noflush <<<"$script"
done
if command -v ipset >/dev/null; then
  for _ in 1 2 3; do
    sets=$(ipset list -n 2>/dev/null | grep -E "^($NETPOL_IPSETS)\$")
    [ -z "$sets" ] && break
    for set in $sets; do ipset destroy "$set" 2>/dev/null; done
  done
fi

ip link del "$POD_BRIDGE" 2>/dev/null
rm -rf "$node"
echo "node-down: removed"
