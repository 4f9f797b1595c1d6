#!/usr/bin/env bash
# A second Docker daemon for kind, confined to the test setup (docs/e2e.md, "kind on this machine"):
#   scripts/kind-docker.sh up     start it (idempotent) and print its DOCKER_HOST
#   scripts/kind-docker.sh down   stop it and remove everything it made but its image store
#   scripts/kind-docker.sh host   print its DOCKER_HOST
#
# kind's nodes are privileged containers. Docker gives a privileged container every capability it knows, and this
# machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc refuses them. This daemon's default runtime is
# tools/boundedrunc, which removes from each container's capability sets what the bounding set lacks and then runs
# runc. The host's Docker, its configuration and its networks stay untouched:
#   - the daemon runs in a network namespace of its own ($KIND_NETNS): its bridges, iptables rules and published
#     ports live and die there. A veth pair joins it to the host ($KIND_HOST_ADDRESS on the host side,
#     $KIND_API_ADDRESS inside), the one address the host uses: kind publishes the API server on it;
#   - it runs in a mount namespace of its own whose mounts do not propagate back to the host, so every mount it or
#     its containers make goes when it stops;
#   - its cgroups sit under $KIND_CGROUP_PARENT in every hierarchy, removed at `down` (kind gives each node a cgroup
#     namespace of its own);
#   - its socket, pid file and exec root are under $KIND_DOCKER_RUN; its image store under the build cache
#     (~/.cache/taskplatform/kind-docker), kept between runs like every other build, so the node image and the
#     platform's images are loaded once.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cache.sh
. "$root/scripts/lib/cache.sh"
KIND_NETNS=${KIND_NETNS:-taskplatform-kind}
KIND_DOCKER_RUN=${KIND_DOCKER_RUN:-/run/taskplatform-kind}
KIND_CGROUP_PARENT=${KIND_CGROUP_PARENT:-taskplatform-kind}
KIND_HOST_ADDRESS=${KIND_HOST_ADDRESS:-10.253.0.1}
KIND_API_ADDRESS=${KIND_API_ADDRESS:-10.253.0.2}
host_link=tpkind-host
netns_link=tpkind-ns
socket="$KIND_DOCKER_RUN/docker.sock"
docker_host="unix://$socket"

answers() { DOCKER_HOST=$docker_host docker info >/dev/null 2>&1; }

boundedrunc() {  # build tools/boundedrunc once per source (cached) and print its path
  local hash out
  hash=$(cat "$root/tools/boundedrunc/go.mod" "$root/tools/boundedrunc/main.go" | sha256sum | cut -c1-12)
  out=$(cache_dir "boundedrunc-$hash")
  (
    cached_or_continue "$out" boundedrunc
    go_env
    (cd "$root/tools/boundedrunc" && go build -trimpath -ldflags "-s -w" -o "$out/boundedrunc.partial" .)
    mv "$out/boundedrunc.partial" "$out/boundedrunc"
    cache_done "$out" boundedrunc
  )
}

up() {
  [ "$(id -u)" -eq 0 ] || { echo "kind-docker: the kind daemon needs root" >&2; exit 1; }
  if answers; then echo "$docker_host"; return; fi
  local runtime data_root
  runtime=$(boundedrunc)
  data_root=$(cache_dir kind-docker)
  mkdir -p "$KIND_DOCKER_RUN" "$data_root"
  # kind binds the host's /lib/modules into every node; Docker would create it where it is missing (as here), and
  # leave it behind. Made here instead, recorded, and removed at `down` if still empty.
  if [ ! -e /lib/modules ]; then mkdir /lib/modules && touch "$KIND_DOCKER_RUN/made-lib-modules"; fi
  if ! ip netns list | grep -qw "$KIND_NETNS"; then
    ip netns add "$KIND_NETNS"
    ip link add "$host_link" type veth peer name "$netns_link" netns "$KIND_NETNS"
    ip addr add "$KIND_HOST_ADDRESS/30" dev "$host_link"
    ip link set "$host_link" up
    ip -n "$KIND_NETNS" addr add "$KIND_API_ADDRESS/30" dev "$netns_link"
    ip -n "$KIND_NETNS" link set "$netns_link" up
    ip -n "$KIND_NETNS" link set lo up
  fi
  cat > "$KIND_DOCKER_RUN/daemon.json" <<EOF
{
  "runtimes": {"boundedrunc": {"path": "$runtime"}},
  "default-runtime": "boundedrunc",
  "cgroup-parent": "$KIND_CGROUP_PARENT",
  "exec-root": "$KIND_DOCKER_RUN/exec",
  "pidfile": "$KIND_DOCKER_RUN/dockerd.pid",
  "data-root": "$data_root",
  "hosts": ["$docker_host"],
  "ip6tables": false,
  "log-driver": "json-file",
  "log-opts": {"max-size": "10m", "max-file": "2"}
}
EOF
  echo "kind-docker: starting a Docker daemon for kind (network namespace $KIND_NETNS)" >&2
  # Descriptors above stderr are closed first, as in scripts/docker-up.sh: the daemon outlives this script.
  (
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
    done 2>/dev/null
    # Not `ip netns exec`: it mounts a new /sys, without the cgroup hierarchies Docker needs.
    exec setsid nohup nsenter --net="/run/netns/$KIND_NETNS" unshare --mount --propagation slave \
      dockerd --config-file "$KIND_DOCKER_RUN/daemon.json" </dev/null >"$KIND_DOCKER_RUN/dockerd.log" 2>&1
  ) &
  local daemon=$!
  for _ in $(seq 1 120); do
    if answers; then echo "$docker_host"; return; fi
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.5
  done
  echo "kind-docker: the daemon did not come up; $KIND_DOCKER_RUN/dockerd.log:" >&2
  tail -20 "$KIND_DOCKER_RUN/dockerd.log" >&2
  exit 1
}

down() {
  local pid hierarchy
  if answers; then
    # Containers first (kind's nodes), so that nothing holds the namespace, its mounts or its cgroups.
    DOCKER_HOST=$docker_host docker ps -aq | xargs -r env DOCKER_HOST="$docker_host" docker rm -f >/dev/null 2>&1 || true
  fi
  if [ -f "$KIND_DOCKER_RUN/dockerd.pid" ]; then
    pid=$(cat "$KIND_DOCKER_RUN/dockerd.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # Any process still in the namespace (a shim, a container's last process) goes with it.
  if ip netns list | grep -qw "$KIND_NETNS"; then
    ip netns pids "$KIND_NETNS" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$KIND_NETNS"
  fi
  ip link del "$host_link" 2>/dev/null || true
  # Deepest first: a cgroup directory can only be removed once its children are.
  for hierarchy in /sys/fs/cgroup/*/; do
    [ -d "$hierarchy$KIND_CGROUP_PARENT" ] || continue
    find "$hierarchy$KIND_CGROUP_PARENT" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  if [ -f "$KIND_DOCKER_RUN/made-lib-modules" ]; then rmdir /lib/modules 2>/dev/null || true; fi
  rm -rf "$KIND_DOCKER_RUN"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  host) echo "$docker_host" ;;
  *) echo "usage: $0 up|down|host" >&2; exit 2 ;;
esac
