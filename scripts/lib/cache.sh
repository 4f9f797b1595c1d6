# shellcheck shell=bash
# Sourced by scripts/build-*.sh: the cache-and-build pattern, written once. Each tool is built from the Go module
# proxy into a directory of the cache named by everything that decides its bytes (versions, a hash of local
# sources), so a run either finds it there at once or builds it there, once:
#
#   out=$(cache_dir KEY)            ${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform/KEY
#   cached_or_continue DIR FILE...  takes DIR's lock (cache_lock); if every FILE is in DIR, prints the result (as
#                                   cache_done) and exits 0; else creates DIR and returns, and the script builds
#   cache_lock PATH                 holds PATH.lock, beside PATH, until the script exits (returns 1 where it cannot
#                                   write it)
#   cache_done DIR FILE...          prints the result: the path of the one FILE, or DIR where there are several
#   go_env [GOFLAGS]                Go or exit 1; exports GOTOOLCHAIN=local (the installed Go, never a download),
#                                   GOFLAGS (default "-mod=mod -buildvcs=false"), CGO_ENABLED=0 (static binaries)
#   work_dir                        sets $work to a new temporary directory, removed when the script exits
#   go_mod_download FIELD MODULE@VERSION
#                                   a field of `go mod download -json` (Dir: the module's files, GoMod: its go.mod)
#   wrapper_module DIR NAME GO MODULE@VERSION [REPLACED@VERSION...]
#                                   DIR/go.mod of a throwaway module taskplatform.local/NAME that requires MODULE
#                                   and replaces each REPLACED by its published VERSION: how a module whose go.mod
#                                   has `replace` directives into its own tree is built (`go install pkg@version`
#                                   refuses it)
#   go_install DIR ARGS...          `go install ARGS` into DIR; the binary appears there whole or not at all
#
# The lock: two runs that need the same cache (a test and `make`, two worktrees) would otherwise both build it and
# write the same files at once. The second waits for the first (at most CACHE_LOCK_WAIT_S), then finds its files.

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/taskplatform"
CACHE_LOCK_WAIT_S=3600 # a cold build of the Kubernetes binaries takes minutes; at a high load, over ten
BUILD_NAME=$(basename "$0" .sh)

cache_dir() {
  echo "$CACHE_ROOT/$1"
}

cache_complete() {
  local dir=$1 file
  shift
  for file in "$@"; do [ -e "$dir/$file" ] || return 1; done
}

cache_done() {
  local dir=$1
  shift
  if [ $# -eq 1 ]; then echo "$dir/$1"; else echo "$dir"; fi
}

cache_lock() {
  local fd
  { mkdir -p "$(dirname "$1")" && exec {fd}>"$1.lock"; } 2>/dev/null || return 1
  if ! flock -n "$fd"; then
    echo "$BUILD_NAME: another run is building $1; waiting for it (at most $CACHE_LOCK_WAIT_S s)" >&2
    flock -w "$CACHE_LOCK_WAIT_S" "$fd" || { echo "$BUILD_NAME: $1.lock still held" >&2; exit 1; }
  fi
}

cached_or_continue() {
  local dir=$1
  shift
  if ! cache_lock "$dir"; then
    # A cache this user may not write is still used as it is where it is complete.
    if cache_complete "$dir" "$@"; then cache_done "$dir" "$@"; exit 0; fi
    echo "$BUILD_NAME: cannot write beside $dir" >&2
    exit 1
  fi
  if cache_complete "$dir" "$@"; then cache_done "$dir" "$@"; exit 0; fi
  mkdir -p "$dir"
}

# shellcheck disable=SC2120 # GOFLAGS is optional
go_env() {
  command -v go >/dev/null || {
    echo "$BUILD_NAME: Go is required (https://go.dev/dl or apt-get install golang)" >&2
    exit 1
  }
  export GOTOOLCHAIN=local GOFLAGS="${1:--mod=mod -buildvcs=false}" CGO_ENABLED=0
}

work_dir() {
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
}

go_mod_download() {
  go mod download -json "$2" | python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

wrapper_module() {
  local dir=$1 name=$2 go_version=$3 required=$4 replaced
  shift 4
  mkdir -p "$dir"
  {
    printf 'module taskplatform.local/%s\n\ngo %s\n\nrequire %s %s\n' "$name" "$go_version" "${required%@*}" \
      "${required##*@}"
    if [ $# -gt 0 ]; then
      printf '\nreplace (\n'
      for replaced in "$@"; do printf '\t%s => %s %s\n' "${replaced%@*}" "${replaced%@*}" "${replaced##*@}"; done
      printf ')\n'
    fi
  } >"$dir/go.mod"
}

go_install() {
  local dir=$1 staging=$1/.partial
  shift
  rm -rf "$staging"
  GOBIN="$staging" go install "$@"
  mv "$staging"/* "$dir/"
  rmdir "$staging"
}
