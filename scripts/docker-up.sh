#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd in the background when none runs (CI machines have none).
# Idempotent. Its log: $DOCKERD_LOG (default /var/log/taskplatform-dockerd.log).
set -euo pipefail
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/taskplatform-dockerd.log}
docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || { echo "docker-up: dockerd is not installed (scripts/system-deps.sh docker)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "docker-up: no Docker engine answers, and starting one needs root" >&2; exit 1; }
echo "docker-up: starting dockerd" >&2
# In a subshell that first closes every descriptor above stderr: the daemon outlives this script and must hold
# none of its caller's (a lock the caller holds through `flock`, which it would then keep forever; a pipe someone
# reads to its end).
(
  for fd in /proc/self/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ]; then eval "exec $fd>&-"; fi
  done 2>/dev/null
  exec setsid nohup dockerd --host unix:///var/run/docker.sock </dev/null >"$DOCKERD_LOG" 2>&1
) &
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "docker-up: dockerd did not come up; see $DOCKERD_LOG" >&2
tail -20 "$DOCKERD_LOG" >&2
exit 1
