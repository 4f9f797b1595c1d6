"""Login throttling: slow password guessing down without letting a guesser keep the owner out, on every replica.

Attempts are rows in the database the replicas already share, so the limits hold however requests are
spread. Each attempt counts against three scopes, as OWASP's guidance on credential attacks suggests:

- the (account, client address) pair: the guesser at one address, throttled soon (a few free failures);
- the client address: one address trying many accounts (credential stuffing);
- the account from anywhere: a guesser spread over many addresses. This bound never stops a client's first
  attempt at an account: it applies only to a client that has already failed for it, so the owner logging in
  from a new address is never kept out by someone else's failures.

Within a sliding window each scope has some free failures; after those every further attempt must wait a
delay that doubles with each failure, up to a ceiling, so guessing is slowed down, never turned into a
lock-out. A throttled attempt is answered 429 before any bcrypt work.

An attempt is recorded as a failure of its pair and its account *before* its password is verified, under a
lock per scope (PostgreSQL advisory locks; one in-process lock on SQLite, the embedded single-process
default), and forgotten if the password was right. So concurrent guesses at one account cannot all pass the
check while the first are still in bcrypt: at most the free ones reach it. The client's count takes only
failures proved (`record_client_failure`): many people behind one address (a NAT, a proxy) signing in at the
same moment are not each other's failures. A burst from one address across many accounts is therefore bounded
by the server's concurrency until its first failures land, then by the client's count.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.errors import ApiError
from taskplatform.api.models import LoginFailure


def scope_key(kind: str, value: str) -> str:
    """A digest, so the table stores no email addresses and no client addresses."""
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LoginScopes:
    pair: str
    client: str
    account: str

    @classmethod
    def of(cls, email: str, client_host: str | None) -> LoginScopes:
        client = client_host or ""  # a server that does not know its peer counts all such peers as one
        return cls(
            pair=scope_key("account-client", f"{email}\0{client}"),
            client=scope_key("client", client),
            account=scope_key("account", email),
        )

    def all(self) -> list[str]:
        return [self.pair, self.client, self.account]

    def recorded_first(self) -> list[str]:
        """The scopes an attempt counts against before its password is checked."""
        return [self.pair, self.account]


def delay_after(failures: int, free: int, settings: Settings) -> float:
    """How long after the last failure the next attempt must wait: 0 within the free failures, then the
    base delay doubling per further failure, capped."""
    extra = failures - free
    if extra < 0:
        return 0.0
    return min(settings.login_delay_max_s, settings.login_delay_base_s * 2.0 ** min(extra, 32))


def too_many_attempts(retry_after_s: float) -> ApiError:
    seconds = max(1, math.ceil(retry_after_s))
    return ApiError(
        429,
        "too-many-login-attempts",
        f"Too many failed logins; try again in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )


def wait_for(settings: Settings, scopes: LoginScopes, counts: dict[str, tuple[int, datetime]], now: datetime) -> float:
    """Seconds the next attempt must still wait, from each scope's (failures in the window, last failure)."""
    free = {
        scopes.pair: settings.login_free_failures_per_account_client,
        scopes.client: settings.login_free_failures_per_client,
        scopes.account: settings.login_free_failures_per_account,
    }
    applies = set(free)
    if scopes.pair not in counts:
        applies.discard(scopes.account)  # this client's first attempt at the account is never held back
    wait = 0.0
    for scope in applies & counts.keys():
        failures, last = counts[scope]
        wait = max(wait, (last - now).total_seconds() + delay_after(failures, free[scope], settings))
    return wait


def _lock_id(scope: str) -> int:
    """A signed 64-bit advisory lock key from a scope digest."""
    return int.from_bytes(bytes.fromhex(scope[:16]), "big", signed=True)


_LOCK_SCOPE = sa.text("SELECT pg_advisory_xact_lock(:key)")
_sqlite_lock = asyncio.Lock()


async def admit(session: AsyncSession, settings: Settings, scopes: LoginScopes, now: datetime) -> list[int]:
    """Raise 429 (with Retry-After) while any scope must still wait; else record this attempt as a failure of
    its pair and its account, commit (which releases the locks: the password is verified after), and return
    its rows, for `forget_attempt` once the password proves right."""
    assert session.bind is not None  # Database.session() binds its engine
    if session.bind.dialect.name == "postgresql":
        for scope in sorted(scopes.recorded_first()):  # one order everywhere: no deadlock between two attempts
            await session.exec(_LOCK_SCOPE.bindparams(key=_lock_id(scope)))  # type: ignore[call-overload]
        rows = await _check_and_record(session, settings, scopes, now)
        await session.commit()
        return rows
    async with _sqlite_lock:
        rows = await _check_and_record(session, settings, scopes, now)
        await session.commit()
        return rows


async def _check_and_record(session: AsyncSession, settings: Settings, scopes: LoginScopes, now: datetime) -> list[int]:
    since = now - timedelta(seconds=settings.login_throttle_window_s)
    result = await session.exec(
        sa.select(col(LoginFailure.scope), sa.func.count(), sa.func.max(col(LoginFailure.failed_at)))  # type: ignore[call-overload]
        .where(col(LoginFailure.scope).in_(scopes.all()), col(LoginFailure.failed_at) > since)
        .group_by(col(LoginFailure.scope))
    )
    counts = {
        scope: (failures, last if last.tzinfo else last.replace(tzinfo=UTC)) for scope, failures, last in result.all()
    }
    wait = wait_for(settings, scopes, counts, now)
    if wait > 0:
        raise too_many_attempts(wait)
    rows = [LoginFailure(scope=scope, failed_at=now) for scope in scopes.recorded_first()]
    session.add_all(rows)
    await session.flush()
    return [row.id for row in rows if row.id is not None]


async def record_client_failure(session: AsyncSession, scopes: LoginScopes, now: datetime) -> None:
    """The password was wrong: the client's count takes it too (the pair's and account's have it already)."""
    session.add(LoginFailure(scope=scopes.client, failed_at=now))
    await session.commit()


async def forget_attempt(session: AsyncSession, scopes: LoginScopes, attempt: Sequence[int]) -> None:
    """The password was right: this attempt was no failure, and the pair's earlier failures stop counting.
    The client's and the account's do not: one known password must not reset a guesser's count against
    every other account, nor a distributed guesser's against this one."""
    await session.exec(
        sa.delete(LoginFailure).where(
            sa.or_(col(LoginFailure.id).in_(list(attempt)), col(LoginFailure.scope) == scopes.pair)
        )
    )
