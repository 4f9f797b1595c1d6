#!/usr/bin/env bash
# `make test`'s pytest, as two runs side by side (they share nothing a test sees):
#   kind    the end-to-end suite on a kind cluster (tests/e2e), then kind's own confinement test
#           (tests/node/test_kind.py): one kind cluster at a time, the suite in file order (it builds on its own
#           earlier steps)
#   others  every other test: PostgreSQL, FerretDB, kwok control planes, the images, the local node (tests/node:
#           a network of its own, no kind)
# The kind tests spend most of their time waiting for pods, so the others run meanwhile. Each run writes its report
# to $TEST_LOG_DIR/<run>.log as it runs; both are printed once the last has ended.
#   scripts/run-tests.sh PYTEST [PYTEST_ARGS...]
# Exit status: 0 only if both passed.
set -uo pipefail
pytest=$1
shift
log_dir=${TEST_LOG_DIR:-$(mktemp -d)}
mkdir -p "$log_dir"
kind_tests=(tests/e2e tests/node/test_kind.py)
names=(kind others)
declare -A pids selections
start() {  # name, pytest arguments...
  local name=$1
  shift
  selections[$name]="$*"
  "$pytest" "$@" > "$log_dir/$name.log" 2>&1 &
  pids[$name]=$!
}
start kind "${kind_tests[@]}" "$@"
start others "${kind_tests[@]/#/--ignore=}" "$@"
status=0
outcomes=()
for name in "${names[@]}"; do
  wait "${pids[$name]}"
  code=$?
  [ "$code" -eq 0 ] || status=1
  outcomes+=("$name exited $code")
done
for name in "${names[@]}"; do
  echo "===== $name: pytest ${selections[$name]} ====="
  cat "$log_dir/$name.log"
done
echo "run-tests: ${outcomes[*]}"
exit "$status"
