"""Pruning what can no longer matter, so no table grows without bound: one replica at a time, periodically.

- idempotency records past their expiry (a repeat after it is a new request anyway);
- refresh tokens past their own expiry (the signature check refuses them before any lookup);
- sessions (token families) past their absolute lifetime, kept one access-token lifetime longer so that
  access tokens minted near the end are still checked against them; their refresh tokens go with them;
- deny-listed access tokens past their expiry (the signature check refuses them);
- login failures older than the throttle's window (they no longer count).

Each pass deletes at most CLEANUP_BATCH_ROWS rows of each table, so one pass is a short transaction however
large the backlog; the next pass takes the rest.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.models import IdempotencyRecord, LoginFailure, RefreshToken, RevokedToken, TokenFamily

log = logging.getLogger(__name__)

CLEANUP_BATCH_ROWS = 10_000
# The advisory lock only one replica holds while it prunes ("tp-clean" as a number).
CLEANUP_LOCK_KEY = int.from_bytes(b"tp-clean", "big")

_TRY_LOCK = sa.text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(key=CLEANUP_LOCK_KEY)


def _expired(settings: Settings, now: datetime) -> dict[str, tuple[Any, Any, sa.ColumnElement[bool]]]:
    """Per table: (its key, the model, what makes a row prunable)."""
    session_grace = timedelta(seconds=settings.access_token_ttl_s)
    window = timedelta(seconds=settings.login_throttle_window_s)
    return {
        "idempotency_records": (
            sa.tuple_(col(IdempotencyRecord.user_id), col(IdempotencyRecord.key)),
            IdempotencyRecord,
            col(IdempotencyRecord.expires_at) < now,
        ),
        "refresh_tokens": (col(RefreshToken.jti), RefreshToken, col(RefreshToken.expires_at) < now),
        "token_families": (col(TokenFamily.id), TokenFamily, col(TokenFamily.expires_at) < now - session_grace),
        "revoked_tokens": (col(RevokedToken.jti), RevokedToken, col(RevokedToken.expires_at) < now),
        "login_failures": (col(LoginFailure.id), LoginFailure, col(LoginFailure.failed_at) < now - window),
    }


async def prune(session: AsyncSession, settings: Settings, now: datetime | None = None) -> dict[str, int] | None:
    """One pass, committed; the rows deleted per table, or None when another replica is pruning."""
    now = now or datetime.now(UTC)
    assert session.bind is not None  # Database.session() binds its engine
    if session.bind.dialect.name == "postgresql" and not (await session.exec(_TRY_LOCK)).scalar():  # type: ignore[call-overload]
        await session.rollback()
        return None
    deleted: dict[str, int] = {}
    for table, (key, model, prunable) in _expired(settings, now).items():
        columns = key.clauses if isinstance(key, sa.Tuple) else [key]
        batch = sa.select(*columns).where(prunable).limit(CLEANUP_BATCH_ROWS)
        result = await session.exec(sa.delete(model).where(key.in_(batch)))
        deleted[table] = int(result.rowcount)
    await session.commit()
    return deleted


async def prune_periodically(
    sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]], settings: Settings
) -> None:
    """prune() every cleanup_interval_s (jittered, so replicas started together do not all try at once),
    until cancelled. A failed pass is logged and retried at the next one."""
    while True:
        await asyncio.sleep(settings.cleanup_interval_s * random.uniform(0.5, 1.5))  # noqa: S311 (not a secret)
        try:
            async with sessions() as session:
                deleted = await prune(session, settings)
            if deleted and any(deleted.values()):
                log.info("pruned expired rows", extra={"deleted": deleted})
        except Exception:
            log.exception("pruning expired rows failed; retried at the next pass")
