"""Accounts and tokens: registration, constant-time login, refresh rotation with reuse detection, revocation.

Every revocation is a database row, so a token revoked through one replica is refused by all of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.db import Database, Statement
from taskplatform.api.db.statements import insert_ignoring_conflicts
from taskplatform.api.errors import ApiError, unauthorized
from taskplatform.api.models import RefreshToken, RevokedToken, TokenFamily, User
from taskplatform.api.schemas import TokenPair, UserCreate
from taskplatform.api.security import (
    TokenClaims,
    TokenError,
    decode_token,
    dummy_hash,
    encode_token,
    hash_password,
    needs_rehash,
    new_token_id,
    verify_password,
)
from taskplatform.api.services import access as access_service
from taskplatform.api.services import throttle
from taskplatform.api.services.access import CheckedAccess, UncheckedAccess


async def register(db: Database, settings: Settings, data: UserCreate) -> User:
    # bcrypt takes ~0.25 s at cost 12: in a worker thread, and before a connection is taken for the insert.
    hashed = await to_thread.run_sync(hash_password, data.password, settings.bcrypt_rounds)
    user = User(email=data.email, full_name=data.full_name, hashed_password=hashed)
    async with db.session() as session:
        session.add(user)
        try:
            await session.commit()
        except IntegrityError as exc:
            # The unique index decides races between concurrent registrations, not a prior SELECT.
            await session.rollback()
            raise ApiError(409, "email-taken", "An account with this email already exists.") from exc
    return user


def _invalid_credentials() -> ApiError:
    return ApiError(401, "invalid-credentials", "Incorrect email or password.", headers={"WWW-Authenticate": "Bearer"})


@dataclass(frozen=True, slots=True)
class VerifiedPassword:
    """A password proved right for a user, outside any transaction: what the write that follows needs."""

    user_id: int
    scopes: throttle.LoginScopes
    attempt: list[int]  # the attempt's throttle rows, forgotten with the write
    hashed: str  # the stored hash that was verified
    rehashed: str | None  # the same password at the configured cost, when the stored hash needs it


_CREDENTIALS_BY_EMAIL = Statement(
    sa.select(
        col(User.id).label("id"), col(User.hashed_password).label("hashed"), col(User.is_active).label("is_active")
    ).where(col(User.email) == sa.bindparam("email", type_=sa.String)),
    ("email",),
)


async def verify_credentials(
    db: Database, settings: Settings, email: str, password: str, client_host: str | None
) -> VerifiedPassword:
    """The throttle's admission, the user's hash and bcrypt, with no connection held while bcrypt runs."""
    email = email.strip().lower()
    scopes = throttle.LoginScopes.of(email, client_host)
    async with db.session() as session:
        # Throttled attempts are refused before any bcrypt work (429 with Retry-After); admitted ones are
        # recorded as failures until the password proves right.
        attempt = await throttle.admit(session, settings, scopes, datetime.now(UTC))
        # No stored email contains NUL, and PostgreSQL refuses it in a query parameter: skip the lookup.
        rows = [] if "\x00" in email else await _CREDENTIALS_BY_EMAIL.fetch_sqlalchemy(session, {"email": email})
        await session.commit()
    user = rows[0] if rows else None
    # Unknown email still pays for one bcrypt verification, so timing does not reveal which emails exist.
    hashed = user["hashed"] if user is not None else dummy_hash(settings.bcrypt_rounds)
    password_ok = await to_thread.run_sync(
        verify_password, password, hashed, settings.bcrypt_rounds, settings.bcrypt_max_rounds
    )
    if user is None or not password_ok or not user["is_active"]:
        async with db.session() as session:
            await throttle.record_client_failure(session, scopes, datetime.now(UTC))
        raise _invalid_credentials()
    rehashed = None
    if needs_rehash(hashed, settings.bcrypt_rounds):
        rehashed = await to_thread.run_sync(hash_password, password, settings.bcrypt_rounds)
    return VerifiedPassword(user["id"], scopes, attempt, hashed, rehashed)


async def _store_password(session: AsyncSession, user_id: int, old_hash: str, new_hash: str) -> bool:
    """Replace the hash only if it is still the one verified: a concurrent password change wins."""
    changed = await session.exec(
        sa.update(User)
        .where(col(User.id) == user_id, col(User.hashed_password) == old_hash)
        .values(hashed_password=new_hash)
    )
    return bool(changed.rowcount == 1)


def _issue_pair(
    session: AsyncSession, settings: Settings, user_id: int, family_id: str, session_ends: datetime
) -> TokenPair:
    access, access_claims = encode_token(
        settings, user_id=user_id, family_id=family_id, token_type="access", not_after=session_ends
    )
    # A rotation never extends the session: refresh_token_ttl_s from login is its absolute lifetime (the
    # family's expires_at), and no refresh token outlives it.
    refresh, refresh_claims = encode_token(
        settings, user_id=user_id, family_id=family_id, token_type="refresh", not_after=session_ends
    )
    session.add(RefreshToken(jti=refresh_claims.jti, family_id=family_id, expires_at=refresh_claims.exp))
    now = datetime.now(UTC)
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        # Whole seconds, rounded up: the claims are (iat and exp are whole seconds since the epoch).
        expires_in=max(0, math.ceil((access_claims.exp - now).total_seconds())),
        refresh_expires_in=max(0, math.ceil((refresh_claims.exp - now).total_seconds())),
    )


async def login(db: Database, settings: Settings, verified: VerifiedPassword) -> TokenPair:
    now = datetime.now(UTC)
    family = TokenFamily(
        id=new_token_id(),
        user_id=verified.user_id,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    async with db.session() as session:
        await throttle.forget_attempt(session, verified.scopes, verified.attempt)
        if verified.rehashed is not None:
            await _store_password(session, verified.user_id, verified.hashed, verified.rehashed)
        session.add(family)
        await session.flush()
        pair = _issue_pair(session, settings, verified.user_id, family.id, family.expires_at)
        await session.commit()
    return pair


async def rotate_refresh_token(db: Database, settings: Settings, token: str) -> TokenPair:
    try:
        claims = decode_token(settings, token, "refresh")
    except TokenError as exc:
        raise unauthorized("Invalid or expired refresh token.") from exc
    async with db.session() as session:
        return await _rotate(session, settings, claims)


async def _rotate(session: AsyncSession, settings: Settings, claims: TokenClaims) -> TokenPair:
    now = datetime.now(UTC)
    live_family = select(TokenFamily.id).where(
        TokenFamily.id == claims.fam,
        col(TokenFamily.revoked_at).is_(None),
        col(TokenFamily.expires_at) > now,  # the session's absolute lifetime, whatever the token's own exp
    )
    # Consume the token atomically: of two concurrent refreshes with one token, exactly one wins.
    consumed = await session.exec(
        sa.update(RefreshToken)
        .where(
            col(RefreshToken.jti) == claims.jti,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.family_id).in_(live_family),
        )
        .values(used_at=now)
    )
    if consumed.rowcount != 1:
        known = await session.get(RefreshToken, claims.jti)
        if known is not None and known.used_at is not None:
            # A rotated token came back: it was stolen or replayed. End the whole session.
            await revoke_families(session, now, "refresh-reuse", family_id=claims.fam)
            await session.commit()
            raise unauthorized("Refresh token reuse detected; the session has been revoked.")
        await session.rollback()
        raise unauthorized("Invalid, revoked or expired refresh token.")
    user = await session.get(User, claims.sub)
    family = await session.get(TokenFamily, claims.fam)
    if user is None or not user.is_active or family is None:
        await session.rollback()
        raise unauthorized("Invalid or revoked refresh token.")
    ends = family.expires_at if family.expires_at.tzinfo else family.expires_at.replace(tzinfo=UTC)
    pair = _issue_pair(session, settings, claims.sub, claims.fam, ends)
    await session.commit()
    return pair


async def revoke_families(
    session: AsyncSession,
    now: datetime,
    reason: str,
    *,
    family_id: str | None = None,
    user_id: int | None = None,
    except_family: str | None = None,
) -> None:
    """Revoke one session (`family_id`), or every session of a user but `except_family`."""
    where: list[sa.ColumnElement[bool]] = [col(TokenFamily.revoked_at).is_(None)]
    if family_id is not None:
        where.append(col(TokenFamily.id) == family_id)
    if user_id is not None:
        where.append(col(TokenFamily.user_id) == user_id)
    if except_family is not None:
        where.append(col(TokenFamily.id) != except_family)
    assert family_id is not None or user_id is not None, "revoke one session or one user's"
    await session.exec(sa.update(TokenFamily).where(*where).values(revoked_at=now, revoked_reason=reason))


async def _deny(session: AsyncSession, claims: TokenClaims, now: datetime) -> None:
    await insert_ignoring_conflicts(
        session, RevokedToken, {"jti": claims.jti, "expires_at": claims.exp, "revoked_at": now}
    )


async def logout(db: Database, caller: CheckedAccess) -> None:
    now = datetime.now(UTC)
    async with db.session() as session:
        await _deny(session, caller.claims, now)
        await revoke_families(session, now, "logout", family_id=caller.claims.fam)
        await session.commit()


async def logout_all(db: Database, caller: CheckedAccess) -> None:
    """Every session of the caller's ends: their refresh tokens die, and their access tokens with them (the
    access check reads the session's row)."""
    now = datetime.now(UTC)
    async with db.session() as session:
        await _deny(session, caller.claims, now)
        await revoke_families(session, now, "logout-all", user_id=caller.user_id)
        await session.commit()


async def current_user(db: Database, caller: CheckedAccess) -> User:
    async with db.session() as session:
        user = await session.get(User, caller.user_id)
    if user is None:  # deleted between the token check and this read
        raise unauthorized("Invalid or expired access token.")
    return user


async def change_password(
    db: Database,
    settings: Settings,
    access: UncheckedAccess,
    current_password: str,
    new_password: str,
    client_host: str | None,
) -> None:
    """A new password for the caller, proved by the current one (throttled like a login: a stolen access
    token must not be a way to guess it). Every other session of the user's ends; this one goes on. The token
    is checked before the password is, and again with the write (not revoked while bcrypt ran)."""
    async with db.session() as session:
        caller = await access_service.check_in_session(session, access)
        email = (await session.exec(select(User.email).where(User.id == caller.user_id))).first()
        await session.commit()
    if email is None:
        raise unauthorized("Invalid or expired access token.")
    try:
        verified = await verify_credentials(db, settings, email, current_password, client_host)
    except ApiError as exc:
        if exc.status != 401:
            raise
        raise ApiError(403, "wrong-password", "The current password is not correct.") from None
    new_hash = await to_thread.run_sync(hash_password, new_password, settings.bcrypt_rounds)
    async with db.session() as session:
        await access_service.check_in_session(session, access)  # not revoked while bcrypt ran
        await throttle.forget_attempt(session, verified.scopes, verified.attempt)
        if not await _store_password(session, caller.user_id, verified.hashed, new_hash):
            await session.rollback()
            raise ApiError(409, "password-changed", "The password was changed meanwhile; sign in again.")
        now = datetime.now(UTC)
        await revoke_families(session, now, "password-changed", user_id=caller.user_id, except_family=caller.claims.fam)
        await session.commit()


async def delete_account(db: Database, caller: CheckedAccess) -> None:
    """The caller's account and everything of it (tasks, sessions, idempotency records: ON DELETE CASCADE);
    every token of it is refused from then on, since the access check finds no user."""
    async with db.session() as session:
        await session.exec(sa.delete(User).where(col(User.id) == caller.user_id))
        await session.commit()
