#!/usr/bin/env bash
# Build the Versity S3 Gateway (an Apache-2.0 S3-compatible server; its posix backend keeps objects as files)
# from the Go module proxy once per version, and print the binary's path. The backup tests store dumps in it.
# Cached under ~/.cache/taskplatform keyed by version; about a minute cold.
set -euo pipefail
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}
out="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/versitygw-$VERSITYGW_VERSION"
if [ ! -x "$out/versitygw" ]; then
  command -v go >/dev/null || { echo "build-s3server: Go is required (https://go.dev/dl or apt-get install golang)" >&2; exit 1; }
  mkdir -p "$out"
  echo "build-s3server: building versitygw $VERSITYGW_VERSION into $out (one-off)" >&2
  GOTOOLCHAIN=local GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0 GOBIN="$out/tmp" \
    go install -trimpath -ldflags "-s -w" "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION"
  mv "$out/tmp/versitygw" "$out/versitygw"
  rmdir "$out/tmp"
fi
echo "$out/versitygw"
