#!/usr/bin/env bash
# Build tools/ferretdb (FerretDB embedded, a MongoDB wire-protocol server) once per source version and
# print the binary's path. Cached under ~/.cache/taskplatform keyed by the hash of the Go sources, so
# reruns are instant; the Go module proxy is the only thing it downloads from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/tools/ferretdb"
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
out="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/ferretdb-local-$key"
if [ ! -x "$out/ferretdb-local" ]; then
  command -v go >/dev/null || { echo "build-ferretdb: Go is required (https://go.dev/dl or apt-get install golang)" >&2; exit 1; }
  mkdir -p "$out"
  echo "build-ferretdb: building FerretDB into $out (one-off, about a minute)" >&2
  (cd "$src" && GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=0 go build -trimpath -o "$out/ferretdb-local.tmp" .)
  mv "$out/ferretdb-local.tmp" "$out/ferretdb-local"
fi
echo "$out/ferretdb-local"
