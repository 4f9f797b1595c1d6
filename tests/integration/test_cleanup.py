"""No table grows without bound: the periodic cleanup prunes what can no longer matter, one replica at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers.support import TEST_JWT_SECRET, LiveServer

from taskplatform.api.config import Settings
from taskplatform.api.db import Database
from taskplatform.api.migrate import upgrade_head
from taskplatform.api.services.cleanup import CLEANUP_BATCH_ROWS, CLEANUP_LOCK_KEY, prune

PRUNED_TABLES = ("idempotency_records", "refresh_tokens", "token_families", "revoked_tokens", "login_failures")


def seed(engine: sa.Engine, now: datetime, settings: Settings) -> None:
    """Per table one row that can no longer matter ('old') and one that still does ('new')."""
    old, new = now - timedelta(days=30), now + timedelta(hours=1)
    failed_long_ago = now - timedelta(seconds=settings.login_throttle_window_s + 5)
    # A session past its end, but within one access-token lifetime of it, is still checked against.
    ended_recently = now - timedelta(seconds=settings.access_token_ttl_s / 2)
    statements = [
        ("INSERT INTO users (id, email, hashed_password, is_active, created_at) VALUES (1, 'c@x.io', 'h', true, :o)",
         {"o": old}),
        ("INSERT INTO token_families (id, user_id, created_at, expires_at) VALUES "
         "('old', 1, :o, :o), ('grace', 1, :o, :r), ('new', 1, :o, :n)", {"o": old, "r": ended_recently, "n": new}),
        ("INSERT INTO refresh_tokens (jti, family_id, expires_at) VALUES ('old', 'new', :o), ('new', 'new', :n)",
         {"o": old, "n": new}),
        ("INSERT INTO revoked_tokens (jti, expires_at, revoked_at) VALUES ('old', :o, :o), ('new', :n, :o)",
         {"o": old, "n": new}),
        ("INSERT INTO idempotency_records (user_id, key, request_hash, status_code, response_body, expires_at) "
         "VALUES (1, 'old', 'h', 201, '{}', :o), (1, 'new', 'h', 201, '{}', :n)",
         {"o": old, "n": new}),
        ("INSERT INTO login_failures (scope, failed_at) VALUES ('old', :f), ('new', :n)",
         {"f": failed_long_ago, "n": now}),
    ]  # fmt: skip
    with engine.begin() as conn:
        for statement, params in statements:
            conn.execute(sa.text(statement), params)


def remaining(engine: sa.Engine) -> dict[str, set[str]]:
    keys = {"idempotency_records": "key", "refresh_tokens": "jti", "token_families": "id",
            "revoked_tokens": "jti", "login_failures": "scope"}  # fmt: skip
    with engine.connect() as conn:
        return {
            table: set(conn.execute(sa.text(f"SELECT {key} FROM {table}")).scalars())  # noqa: S608 (constants)
            for table, key in keys.items()
        }


def one_pass(settings: Settings) -> dict[str, int] | None:
    async def run() -> dict[str, int] | None:
        database = Database.open(settings)
        try:
            async with database.session() as session:
                return await prune(session, settings)
        finally:
            await database.close()

    return asyncio.run(run())


def test_a_pass_prunes_exactly_what_can_no_longer_matter(settings: Settings, db_engine: sa.Engine) -> None:
    seed(db_engine, datetime.now(UTC), settings)
    deleted = one_pass(settings)
    assert deleted == {"idempotency_records": 1, "refresh_tokens": 1, "token_families": 1, "revoked_tokens": 1,
                       "login_failures": 1}  # fmt: skip
    assert remaining(db_engine) == {
        "idempotency_records": {"new"},
        "refresh_tokens": {"new"},
        "token_families": {"grace", "new"},
        "revoked_tokens": {"new"},
        "login_failures": {"new"},
    }
    assert one_pass(settings) == dict.fromkeys(PRUNED_TABLES, 0)


def test_only_one_replica_prunes_at_a_time(settings: Settings, db_engine: sa.Engine) -> None:
    seed(db_engine, datetime.now(UTC), settings)
    with db_engine.begin() as conn:  # another replica in the middle of its pass
        assert conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": CLEANUP_LOCK_KEY}).scalar()
        assert one_pass(settings) is None
    assert all(len(rows) >= 1 for rows in remaining(db_engine).values())
    assert "old" in remaining(db_engine)["revoked_tokens"]
    assert one_pass(settings) is not None  # the lock was the transaction's: gone with it
    assert "old" not in remaining(db_engine)["revoked_tokens"]


def test_a_pass_is_bounded_and_the_next_takes_the_rest(settings: Settings, db_engine: sa.Engine) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=1)
    with db_engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO revoked_tokens (jti, expires_at, revoked_at) "
                "SELECT 'j' || n, :t, :t FROM generate_series(1, :n) AS n"
            ),
            {"t": long_ago, "n": CLEANUP_BATCH_ROWS + 7},
        )
    assert (one_pass(settings) or {})["revoked_tokens"] == CLEANUP_BATCH_ROWS
    assert (one_pass(settings) or {})["revoked_tokens"] == 7


def test_pruning_works_on_the_embedded_sqlite_default(tmp_path: Path) -> None:
    sqlite = Settings(database_url=f"sqlite:///{tmp_path / 'local.db'}", jwt_secret=TEST_JWT_SECRET)  # type: ignore[arg-type]
    upgrade_head(sqlite.database_url)
    engine = sa.create_engine(sqlite.database_url)
    try:
        seed(engine, datetime.now(UTC), sqlite)
        assert one_pass(sqlite) == {"idempotency_records": 1, "refresh_tokens": 1, "token_families": 1,
                                    "revoked_tokens": 1, "login_failures": 1}  # fmt: skip
        assert remaining(engine)["token_families"] == {"grace", "new"}
    finally:
        engine.dispose()


@pytest.mark.slow
def test_a_running_server_prunes_periodically(
    live_server_factory: Callable[..., LiveServer], settings: Settings, db_engine: sa.Engine
) -> None:
    live_server_factory(extra_env={"CLEANUP_INTERVAL_S": "0.2"})
    seed(db_engine, datetime.now(UTC), settings)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and "old" in remaining(db_engine)["revoked_tokens"]:
        time.sleep(0.1)
    assert all("old" not in rows for rows in remaining(db_engine).values())
    assert all("new" in rows for rows in remaining(db_engine).values())
