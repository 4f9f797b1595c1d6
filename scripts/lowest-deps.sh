#!/usr/bin/env bash
# The API's tests on the lowest versions pyproject.toml declares, so that its lower bounds stay true:
#   scripts/lowest-deps.sh [pytest arguments]
# A throwaway virtualenv (removed at the end) gets the project with the dev extra's test tools, pip pinning
# fastapi, pydantic, pydantic-settings, sqlmodel, sqlalchemy, uvicorn and kopf to their lower bounds (starlette is
# whatever that FastAPI allows; everything else the newest that fits). Then tests/unit and the API's
# integration tests run on a throwaway PostgreSQL (the migration, dump-store and database-role tests need
# FerretDB and the S3 server, and test no API lower bound).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
LOWEST=(fastapi pydantic pydantic-settings sqlmodel sqlalchemy uvicorn kopf)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/taskplatform-lowest.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# name==lower bound for those, read from the declared requirements; and the test tools the dev extra declares.
"$PYTHON" - "$ROOT/pyproject.toml" "$WORK" "${LOWEST[@]}" <<'PY'
import re, sys, tomllib
from pathlib import Path

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
work = Path(sys.argv[2])
extras = project["optional-dependencies"]
declared = [*project["dependencies"], *(r for extra in extras.values() for r in extra)]
bounds = {}
for requirement in declared:
    match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement)
    if match:
        bounds.setdefault(match[1].lower(), match[2])
missing = [name for name in sys.argv[3:] if name not in bounds]
if missing:
    sys.exit(f"no lower bound declared for {missing}")
(work / "constraints.txt").write_text("".join(f"{name}=={bounds[name]}\n" for name in sys.argv[3:]))
# The API's own dependencies only: the operator extra's kubernetes client needs a newer pydantic than the API's
# lower bound (its own bound, in the operator extra, says so). kopf comes pinned, as the operator declares it.
tools = [r for r in extras["dev"] if not re.match(r"^(taskplatform|ruff|mypy|types-)", r)]
(work / "requirements.txt").write_text("\n".join([*tools, "kopf"]) + "\n")
PY
echo "lowest-deps: $(tr '\n' ' ' <"$WORK/constraints.txt")"

"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q --upgrade pip
# Built into the venv (not editable): nothing is written into the tree.
"$WORK/venv/bin/python" -m pip install -q -c "$WORK/constraints.txt" "$ROOT" -r "$WORK/requirements.txt"
"$WORK/venv/bin/python" -m pip list 2>/dev/null \
  | grep -iE "^(fastapi|starlette|pydantic|pydantic-core|pydantic-settings|sqlmodel|sqlalchemy|uvicorn|kopf) " \
  | sed 's/^/lowest-deps: installed /'

cd "$ROOT"
"$WORK/venv/bin/python" -m pytest -p no:cacheprovider tests/unit tests/integration \
  --ignore=tests/integration/test_migration.py --ignore=tests/integration/test_migration_fidelity.py \
  --ignore=tests/integration/test_dumpstore.py --ignore=tests/integration/test_database_roles.py "$@"
