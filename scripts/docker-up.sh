#!/usr/bin/env bash
# Make sure a Docker engine answers; start dockerd in the background when none runs (CI machines have none).
# Idempotent. Its log: /var/log/taskplatform-dockerd.log.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
command -v dockerd >/dev/null || { echo "docker-up: dockerd is not installed (scripts/system-deps.sh docker)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "docker-up: no Docker engine answers, and starting one needs root" >&2; exit 1; }
echo "docker-up: starting dockerd" >&2
nohup dockerd --host unix:///var/run/docker.sock >/var/log/taskplatform-dockerd.log 2>&1 &
for _ in $(seq 1 120); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "docker-up: dockerd did not come up; see /var/log/taskplatform-dockerd.log" >&2
tail -20 /var/log/taskplatform-dockerd.log >&2
exit 1
