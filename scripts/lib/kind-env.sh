# shellcheck shell=bash
# Sourced by scripts/kind-down.sh, kind-load-images.sh and kind-export-logs.sh, after they set $root: the kind
# cluster of $CLUSTER_DIR as scripts/kind-up.sh recorded it in kind.env (KIND, KIND_CLUSTER, KIND_OWN_DAEMON,
# KIND_DOCKER_HOST, BUILD_DOCKER_HOST), with DOCKER_HOST naming the daemon its nodes run in.
kind_dir=${CLUSTER_DIR:-$root/.e2e}
# shellcheck source=/dev/null
. "$kind_dir/kind.env"
if [ -n "$KIND_OWN_DAEMON" ]; then export DOCKER_HOST=$KIND_DOCKER_HOST; fi
