"""The contract between `taskplatform-migrate` and what runs it as a Kubernetes Job (the operator's DataMigration:
operator/specs/datamigration.py builds the Job, operator/status.py reads its outcome): the exit codes, the
environment the CLI reads, and the JSON it leaves behind — the summary it writes to `--summary-file` (the Job points
that at its termination log) and the progress lines of `--progress json` (the operator reads the last one from the
running pod's log). Both sides import these names; neither spells the values itself.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any


@enum.unique
class ExitCode(enum.IntEnum):
    DONE = 0  # done (and verified, with --verify)
    # Bad arguments or mapping, or the source or target unreachable at the start: nothing was written.
    FAILED = 2
    # --verify found differences: running again would find them again (the Job ends at once: podFailurePolicy).
    VERIFICATION_FAILED = 3
    # The source or the target failed mid-run: what was committed stays, and a re-run resumes from the checkpoints.
    INTERRUPTED = 4


# The environment the CLI reads (each also a command-line option, which wins).
SOURCE_URI_ENV = "SOURCE_URI"
SOURCE_URI_FALLBACK_ENV = "MONGODB_URI"
SOURCE_DB_ENV = "SOURCE_DB"
TARGET_URL_ENV = "TARGET_URL"
TARGET_URL_FALLBACK_ENV = "DATABASE_URL"
BATCH_SIZE_ENV = "BATCH_SIZE"
BATCH_BYTES_ENV = "BATCH_BYTES"
# A batch (one transaction) ends at BATCH_SIZE documents or BATCH_BYTES bytes of BSON, whichever comes first; a
# larger document is a batch of its own. Bounded by bytes too because a document may hold up to 16 MB: with two
# batches read ahead, the one being written and a server reply being decoded, the process stays within a few
# hundred MB at the default whatever the documents' sizes (the DataMigration Job's default memory limit).
BATCH_SIZE_DEFAULT, BATCH_SIZE_MAX = 5000, 100_000
BATCH_BYTES_DEFAULT, BATCH_BYTES_MAX = 32 << 20, 1 << 30
COLLECTIONS_ENV = "COLLECTIONS"
MAPPING_FILE_ENV = "MAPPING_FILE"
READ_ORDER_ENV = "READ_ORDER"
BCRYPT_MAX_ROUNDS_ENV = "BCRYPT_MAX_ROUNDS"  # the API's setting of the same name: one value for both
PROGRESS_INTERVAL_ENV = "PROGRESS_INTERVAL"
SUMMARY_FILE_ENV = "SUMMARY_FILE"
# Seconds to retry the first connection to PostgreSQL (0: one try). The DataMigration Job waits: where
# NetworkPolicies are enforced, a new pod's address is admitted by the database's policy a moment after the pod
# starts (the enforcer learns it from the API server), and until then its connections are refused.
CONNECT_WAIT_ENV = "CONNECT_WAIT"
JOB_CONNECT_WAIT_S = 120

# The summary: one compact JSON object, {"exitCode": 0, "dryRun": false, "collections": [...], "verified": true} or
# with "error" (a message for a user: no host, no credentials). A Kubernetes termination message keeps at most
# 4 KiB, so the summary is cut there.
SUMMARY_MAX_CHARS = 4096
EXIT_CODE = "exitCode"
ERROR = "error"
DRY_RUN = "dryRun"
VERIFIED = "verified"
COLLECTIONS = "collections"  # one entry per collection: COLLECTION and the counts below
# A progress line: {"event": "progress", "collection": ..., "total": ..., "read": ..., "written": ..., ...}; the
# last line of a run is {"event": "summary", "collections": [...]} (taskplatform/migration/progress.py writes them).
EVENT = "event"
PROGRESS_EVENT = "progress"
SUMMARY_EVENT = "summary"
COLLECTION = "collection"
TOTAL = "total"
READ = "read"
WRITTEN = "written"
ALTERED = "altered"
REJECTED = "rejected"


def summary_text(exit_code: int, outcome: Mapping[str, Any]) -> str:
    """The summary as the CLI writes it."""
    return json.dumps({EXIT_CODE: exit_code, **outcome}, separators=(",", ":"))[:SUMMARY_MAX_CHARS]
