#!/usr/bin/env bash
# Install the Debian packages a target needs, only when missing. Idempotent; apt-get runs at most once.
#   scripts/system-deps.sh postgresql wrk
set -euo pipefail

need=()
for dep in "$@"; do
  case "$dep" in
    postgresql)
      # The tests start their own throwaway cluster from the server binaries; no service is started here.
      compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql postgresql-contrib)
      ;;
    wrk)
      command -v wrk >/dev/null || need+=(wrk)
      ;;
    docker)
      # The engine; a `docker` client alone cannot build. Debian's docker.io brings dockerd, containerd, runc.
      command -v dockerd >/dev/null || need+=(docker.io)
      ;;
    node)
      # A real local node (scripts/node-up.sh): containerd + runc, the CNI plugins, iptables for kube-proxy, and
      # iptables + ipset for kube-router's NetworkPolicy firewall.
      command -v containerd >/dev/null || need+=(containerd)
      command -v runc >/dev/null || need+=(runc)
      [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
      command -v iptables >/dev/null || need+=(iptables)
      command -v ipset >/dev/null || need+=(ipset)
      ;;
    debootstrap)
      command -v debootstrap >/dev/null || need+=(debootstrap)
      ;;
    *)
      echo "system-deps: unknown dependency '$dep'" >&2
      exit 2
      ;;
  esac
done

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "system-deps: missing Debian packages: ${need[*]} (run: sudo apt-get install -y ${need[*]})" >&2
  exit 1
fi
echo "system-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
