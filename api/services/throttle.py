"""Login throttling: slow password guessing down, per account and per client address, on every replica.

Failed logins are rows in the database the replicas already share, so the limit holds however requests are
spread. Within a sliding window each scope (an account, a client address) has some free failures; after
those every further attempt must wait a delay that doubles with each failure, up to a ceiling. The ceiling
is what keeps this a slow-down, not a lock-out: a guesser cannot keep the real user out of their account,
only make everyone's next attempt wait at most `login_delay_max_s`. A throttled attempt is answered 429
before any bcrypt work, so a login flood no longer burns the API's CPU either.
"""

from __future__ import annotations

import hashlib
import math
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
    account: str
    client: str | None  # None when the server does not know the peer (no address to count against)

    @classmethod
    def of(cls, email: str, client_host: str | None) -> LoginScopes:
        return cls(scope_key("account", email), scope_key("client", client_host) if client_host else None)

    def all(self) -> list[str]:
        return [self.account] + ([self.client] if self.client else [])


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


async def check(session: AsyncSession, settings: Settings, scopes: LoginScopes, now: datetime) -> None:
    """Raise 429 (with Retry-After) while any of the scopes must still wait."""
    since = now - timedelta(seconds=settings.login_throttle_window_s)
    result = await session.exec(
        sa.select(col(LoginFailure.scope), sa.func.count(), sa.func.max(col(LoginFailure.failed_at)))  # type: ignore[call-overload]
        .where(col(LoginFailure.scope).in_(scopes.all()), col(LoginFailure.failed_at) > since)
        .group_by(col(LoginFailure.scope))
    )
    free = {scopes.account: settings.login_free_failures_per_account}
    if scopes.client:
        free[scopes.client] = settings.login_free_failures_per_client
    wait = 0.0
    for scope, failures, last in result.all():
        last_at = last if last.tzinfo else last.replace(tzinfo=UTC)
        wait = max(wait, (last_at - now).total_seconds() + delay_after(failures, free[scope], settings))
    if wait > 0:
        raise too_many_attempts(wait)


async def record_failure(session: AsyncSession, settings: Settings, scopes: LoginScopes, now: datetime) -> None:
    """Count a failed login against every scope (committed by the caller), and drop what fell out of the window."""
    session.add_all([LoginFailure(scope=scope, failed_at=now) for scope in scopes.all()])
    cutoff = now - timedelta(seconds=settings.login_throttle_window_s)
    await session.exec(sa.delete(LoginFailure).where(col(LoginFailure.failed_at) < cutoff))


async def forget_account_failures(session: AsyncSession, scopes: LoginScopes) -> None:
    """The account's owner got in: its earlier failures stop counting. The client's do not (one known
    password must not reset a guesser's count against every other account)."""
    await session.exec(sa.delete(LoginFailure).where(col(LoginFailure.scope) == scopes.account))
