"""`taskplatform-migrate`: move the legacy MongoDB data into the API's PostgreSQL schema.

Exit codes: 0 done (and verified, with --verify), 2 bad arguments, mapping or unreachable source/target,
3 verification found differences, 4 the source or target failed mid-run (a re-run resumes). These, the
environment it reads and the JSON it leaves behind are its contract with the operator: migration/contract.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import psycopg2
from bson.errors import InvalidBSON
from pymongo.errors import PyMongoError
from pymongo.uri_parser import parse_uri
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from taskplatform.api.limits import BCRYPT_MAX_ROUNDS_DEFAULT, BCRYPT_ROUNDS_LIMIT, BCRYPT_ROUNDS_MIN
from taskplatform.api.migrate import upgrade_head, wait_for_database
from taskplatform.migration import contract
from taskplatform.migration.collections import KINDS
from taskplatform.migration.contract import ExitCode
from taskplatform.migration.mapping import MappingError, load_mapping
from taskplatform.migration.progress import Reporter
from taskplatform.migration.read_order import DESCRIPTION as READ_ORDER_DESCRIPTION
from taskplatform.migration.read_order import ReadOrder
from taskplatform.migration.runner import Migration, Options
from taskplatform.migration.source import source_client
from taskplatform.migration.target import Target
from taskplatform.migration.verify import verify


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="taskplatform-migrate",
        description="Migrate legacy users and tasks from MongoDB into TaskPlatform's PostgreSQL schema.",
    )
    parser.add_argument(
        "--source-uri",
        default=env(contract.SOURCE_URI_ENV) or env(contract.SOURCE_URI_FALLBACK_ENV),
        help=f"MongoDB URI (env {contract.SOURCE_URI_ENV})",
    )
    parser.add_argument(
        "--source-db", default=env(contract.SOURCE_DB_ENV), help="database name, else the URI's, else 'legacy'"
    )
    parser.add_argument(
        "--target-url",
        default=env(contract.TARGET_URL_ENV) or env(contract.TARGET_URL_FALLBACK_ENV),
        help=f"PostgreSQL URL (env {contract.TARGET_URL_ENV} / {contract.TARGET_URL_FALLBACK_ENV})",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(env(contract.BATCH_SIZE_ENV, str(contract.BATCH_SIZE_DEFAULT))),
        help="documents per transaction",
    )
    parser.add_argument(
        "--batch-bytes",
        type=int,
        default=int(env(contract.BATCH_BYTES_ENV, str(contract.BATCH_BYTES_DEFAULT))),
        help="bytes of BSON per transaction at most (a larger document goes alone; "
        f"default {contract.BATCH_BYTES_DEFAULT})",
    )
    parser.add_argument(
        "--collections", default=env(contract.COLLECTIONS_ENV, ",".join(KINDS)), help="users,tasks (or one of them)"
    )
    parser.add_argument(
        "--mapping",
        type=Path,
        default=env(contract.MAPPING_FILE_ENV),
        help="TOML file overriding names (docs/migration.md)",
    )
    parser.add_argument(
        "--read-order",
        type=ReadOrder,
        choices=list(ReadOrder),
        default=env(contract.READ_ORDER_ENV, ReadOrder.NATURAL.value),  # a string default goes through `type` too
        help=f"{READ_ORDER_DESCRIPTION} (env {contract.READ_ORDER_ENV})",
    )
    parser.add_argument(
        "--bcrypt-max-rounds",
        type=int,
        default=env(contract.BCRYPT_MAX_ROUNDS_ENV, str(BCRYPT_MAX_ROUNDS_DEFAULT)),  # the API's: one value for both
        help=f"the costliest legacy bcrypt hash to import ({BCRYPT_ROUNDS_MIN}-{BCRYPT_ROUNDS_LIMIT}, default "
        f"{BCRYPT_MAX_ROUNDS_DEFAULT}; env {contract.BCRYPT_MAX_ROUNDS_ENV}, the API's setting): the API would not "
        "verify a costlier one, so it is rejected",
    )
    parser.add_argument("--dry-run", action="store_true", help="read, transform and validate; write nothing")
    parser.add_argument("--verify", action="store_true", help="after migrating, compare counts and content checksums")
    parser.add_argument("--verify-only", action="store_true", help="only verify a finished migration")
    mode = parser.add_mutually_exclusive_group()
    # Without this, the first of the two flags' defaults would win: store_false's True, a restart on every run.
    parser.set_defaults(restart=False)
    mode.add_argument("--resume", dest="restart", action="store_false", help="continue from the checkpoints (default)")
    mode.add_argument("--restart", dest="restart", action="store_true", help="forget checkpoints and rejects first")
    parser.add_argument(
        "--connect-wait",
        type=float,
        default=float(env(contract.CONNECT_WAIT_ENV, "0")),
        help=f"seconds to retry the first connection to PostgreSQL (env {contract.CONNECT_WAIT_ENV}; default 0)",
    )
    parser.add_argument(
        "--progress", choices=("auto", "bar", "json"), default="auto", help="bar on a terminal, else JSON lines"
    )
    parser.add_argument(
        "--progress-interval",
        type=float,
        default=float(env(contract.PROGRESS_INTERVAL_ENV, "1")),
        help="seconds between JSON progress lines (0: after every batch)",
    )
    parser.add_argument(
        "--summary-file",
        default=env(contract.SUMMARY_FILE_ENV),
        help=f"also write the outcome (exit code, counts, error) as one JSON object here (env "
        f"{contract.SUMMARY_FILE_ENV})",
    )
    return parser


class _Failure(Exception):
    """A clear, host-only message for the user; ExitCode.FAILED."""


class _Interrupted(Exception):
    """The source or the target failed mid-run; what was committed stays, a re-run resumes. ExitCode.INTERRUPTED."""


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    outcome: dict[str, Any] = {}
    try:
        code = _run(args, outcome)
    except _Failure as exc:
        print(f"taskplatform-migrate: {exc}", file=sys.stderr)
        code, outcome[contract.ERROR] = ExitCode.FAILED, str(exc)
    except _Interrupted as exc:
        print(f"taskplatform-migrate: {exc}", file=sys.stderr)
        code, outcome[contract.ERROR] = ExitCode.INTERRUPTED, str(exc)
    if args.summary_file:
        # A Kubernetes Job points this at /dev/termination-log: the operator reads the counts from the pod's
        # status, no log scraping.
        Path(args.summary_file).write_text(contract.summary_text(code, outcome))
    return int(code)


def _run(args: argparse.Namespace, outcome: dict[str, Any]) -> ExitCode:
    kinds = tuple(k.strip() for k in args.collections.split(",") if k.strip())
    if not args.source_uri:
        raise _Failure(f"no source: give --source-uri or set {contract.SOURCE_URI_ENV}")
    if not args.dry_run and not args.target_url:
        raise _Failure(
            f"no target: give --target-url or set {contract.TARGET_URL_ENV} / {contract.TARGET_URL_FALLBACK_ENV}"
        )
    if not 1 <= args.batch_size <= contract.BATCH_SIZE_MAX:
        raise _Failure(f"--batch-size must be between 1 and {contract.BATCH_SIZE_MAX}")
    if not 1 <= args.batch_bytes <= contract.BATCH_BYTES_MAX:
        bound = contract.BATCH_BYTES_MAX
        raise _Failure(f"--batch-bytes (env {contract.BATCH_BYTES_ENV}) must be between 1 and {bound}")
    if not BCRYPT_ROUNDS_MIN <= args.bcrypt_max_rounds <= BCRYPT_ROUNDS_LIMIT:
        raise _Failure(
            f"--bcrypt-max-rounds (env {contract.BCRYPT_MAX_ROUNDS_ENV}) must be between {BCRYPT_ROUNDS_MIN} and "
            f"{BCRYPT_ROUNDS_LIMIT}"
        )
    if not kinds or any(k not in KINDS for k in kinds):
        raise _Failure(f"--collections takes {', '.join(KINDS)}")
    try:
        mapping = load_mapping(args.mapping)
    except MappingError as exc:
        raise _Failure(str(exc)) from exc

    try:
        source_hosts = ", ".join(f"{h}:{p}" for h, p in parse_uri(args.source_uri)["nodelist"])
        db_name = args.source_db or parse_uri(args.source_uri).get("database") or "legacy"
    except (PyMongoError, ValueError) as exc:
        raise _Failure(f"invalid source URI: {exc}") from exc
    client = source_client(args.source_uri)
    try:
        client.admin.command("ping")
    except PyMongoError as exc:
        raise _Failure(f"cannot reach MongoDB at {source_hosts} ({type(exc).__name__})") from exc

    target = None
    if not args.dry_run or args.verify_only:
        target_host = make_url(args.target_url).host if args.target_url else None
        try:
            wait_for_database(args.target_url, args.connect_wait)
            if not args.verify_only:
                upgrade_head(args.target_url)
            target = Target(args.target_url)
        except (psycopg2.Error, SQLAlchemyError, OSError) as exc:
            reason = type(getattr(exc, "orig", exc)).__name__
            raise _Failure(f"cannot reach PostgreSQL at {target_host} ({reason})") from exc

    progress = {"auto": None, "bar": True, "json": False}[args.progress]
    try:
        with Reporter(interactive=progress, interval_s=args.progress_interval) as reporter:
            options = Options(
                args.batch_size,
                args.batch_bytes,
                kinds,
                args.dry_run,
                args.restart,
                args.read_order,
                mapping,
                args.bcrypt_max_rounds,
            )
            if not args.verify_only:
                stats = Migration(client[db_name], target, options, reporter).run()
                reporter.summary(stats, args.dry_run)
                outcome[contract.DRY_RUN] = args.dry_run
                outcome[contract.COLLECTIONS] = [
                    {contract.COLLECTION: s.name, contract.READ: s.read, contract.WRITTEN: s.written,
                     contract.ALTERED: s.altered, contract.REJECTED: s.rejected}
                    for s in stats
                ]  # fmt: skip
            if (args.verify or args.verify_only) and target is not None:
                results = verify(client[db_name], target, mapping, kinds, options)
                for result in results:
                    reporter.event("verify", **result.as_dict())
                    if reporter.interactive:
                        mark = "ok" if result.ok else "MISMATCH"
                        print(f"verify {result.collection}: {mark} {result.as_dict()}", file=sys.stderr)
                outcome[contract.VERIFIED] = all(r.ok for r in results)
                if not outcome[contract.VERIFIED]:
                    outcome[contract.ERROR] = "verification found differences"
                    print("taskplatform-migrate: verification found differences", file=sys.stderr)
                    return ExitCode.VERIFICATION_FAILED
    except (psycopg2.Error, PyMongoError, InvalidBSON) as exc:
        # Only the class and PostgreSQL's primary message: driver texts can carry hosts and user names.
        side = "PostgreSQL" if isinstance(exc, psycopg2.Error) else "MongoDB"
        primary = getattr(getattr(exc, "diag", None), "message_primary", None)
        reason = type(exc).__name__ + (f": {primary}" if primary else "")
        raise _Interrupted(
            f"the run stopped on a {side} error ({reason}); everything committed is kept: "
            "run the same command again to resume from the last checkpoint"
        ) from exc
    finally:
        client.close()
        if target is not None:
            with contextlib.suppress(psycopg2.Error):
                target.close()
    return ExitCode.DONE


if __name__ == "__main__":
    sys.exit(main())
