#!/usr/bin/env bash
# Build the Versity S3 Gateway (an Apache-2.0 S3-compatible server; its posix backend keeps objects as files)
# from the Go module proxy once per version, and print the binary's path. The backup tests store dumps in it.
# Cached under ~/.cache/taskplatform keyed by version (scripts/lib/cache.sh); about a minute cold.
set -euo pipefail
# shellcheck source=scripts/lib/cache.sh
. "$(dirname "$0")/lib/cache.sh"
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
out=$(cache_dir "versitygw-$VERSITYGW_VERSION")
cached_or_continue "$out" versitygw

go_env
echo "build-s3server: building versitygw $VERSITYGW_VERSION into $out (one-off)" >&2
go_install "$out" -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
cache_done "$out" versitygw
