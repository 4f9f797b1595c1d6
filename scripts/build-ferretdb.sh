#!/usr/bin/env bash
# Build tools/ferretdb (FerretDB embedded, a MongoDB wire-protocol server) once per source version and
# print the binary's path. Cached under ~/.cache/taskplatform keyed by the hash of the Go sources
# (scripts/lib/cache.sh), so reruns are instant; the Go module proxy is the only thing it downloads from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib/cache.sh
. "$root/scripts/lib/cache.sh"
src="$root/tools/ferretdb"
key=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-16)
out=$(cache_dir "ferretdb-local-$key")
cached_or_continue "$out" ferretdb-local

# Not -mod=mod: the module is this repository's own, its go.mod and go.sum are kept as they are.
go_env -buildvcs=false
echo "build-ferretdb: building FerretDB into $out (one-off, about a minute)" >&2
(cd "$src" && go build -trimpath -o "$out/ferretdb-local.tmp" .)
mv "$out/ferretdb-local.tmp" "$out/ferretdb-local"
cache_done "$out" ferretdb-local
