"""Accounts and tokens: registration, constant-time login, refresh rotation with reuse detection, revocation.

Every revocation is a database row, so a token revoked through one replica is refused by all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from anyio import to_thread
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
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
from taskplatform.api.services import throttle
from taskplatform.api.services.sql import AnySelect, fetch_mappings, insert_ignoring_conflicts


async def register(session: AsyncSession, settings: Settings, data: UserCreate) -> User:
    # bcrypt takes ~0.25 s at cost 12: run it in a worker thread so that other requests keep flowing.
    hashed = await to_thread.run_sync(hash_password, data.password, settings.bcrypt_rounds)
    user = User(email=data.email, full_name=data.full_name, hashed_password=hashed)
    session.add(user)
    try:
        await session.commit()
    except IntegrityError as exc:
        # The unique index decides races between concurrent registrations, not a prior SELECT.
        await session.rollback()
        raise ApiError(409, "email-taken", "An account with this email already exists.") from exc
    return user


async def authenticate(
    session: AsyncSession, settings: Settings, email: str, password: str, client_host: str | None
) -> User:
    email = email.strip().lower()
    now = datetime.now(UTC)
    scopes = throttle.LoginScopes.of(email, client_host)
    # Throttled attempts are refused before any bcrypt work (429 with Retry-After).
    await throttle.check(session, settings, scopes, now)
    # No stored email contains NUL, and PostgreSQL refuses it in a query parameter: skip the lookup.
    user = None if "\x00" in email else (await session.exec(select(User).where(User.email == email))).first()
    # Unknown email still pays for one bcrypt verification, so timing does not reveal which emails exist.
    hashed = user.hashed_password if user is not None else dummy_hash(settings.bcrypt_rounds)
    password_ok = await to_thread.run_sync(verify_password, password, hashed, settings.bcrypt_rounds)
    if user is None or not password_ok or not user.is_active:
        await throttle.record_failure(session, settings, scopes, now)
        await session.commit()
        raise ApiError(
            401, "invalid-credentials", "Incorrect email or password.", headers={"WWW-Authenticate": "Bearer"}
        )
    await throttle.forget_account_failures(session, scopes)  # committed with the login's token rows
    if needs_rehash(user.hashed_password, settings.bcrypt_rounds):
        user.hashed_password = await to_thread.run_sync(hash_password, password, settings.bcrypt_rounds)
        session.add(user)  # committed with the login's token rows
    return user


def _issue_pair(session: AsyncSession, settings: Settings, user_id: int, family_id: str) -> TokenPair:
    access, _ = encode_token(settings, user_id=user_id, family_id=family_id, token_type="access")
    refresh, refresh_claims = encode_token(settings, user_id=user_id, family_id=family_id, token_type="refresh")
    # Rotation does not extend the session: refresh_token_ttl_s from login is its absolute lifetime
    # (the family row's expires_at), after which the family is pruned and its refresh tokens die.
    session.add(RefreshToken(jti=refresh_claims.jti, family_id=family_id, expires_at=refresh_claims.exp))
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=settings.access_token_ttl_s,
        refresh_expires_in=settings.refresh_token_ttl_s,
    )


async def login(session: AsyncSession, settings: Settings, user: User) -> TokenPair:
    assert user.id is not None
    now = datetime.now(UTC)
    family = TokenFamily(
        id=new_token_id(),
        user_id=user.id,
        expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
    )
    session.add(family)
    await session.flush()
    pair = _issue_pair(session, settings, user.id, family.id)
    await session.commit()
    return pair


async def rotate_refresh_token(session: AsyncSession, settings: Settings, token: str) -> TokenPair:
    try:
        claims = decode_token(settings, token, "refresh")
    except TokenError as exc:
        raise unauthorized("Invalid or expired refresh token.") from exc
    now = datetime.now(UTC)
    # Consume the token atomically: of two concurrent refreshes with one token, exactly one wins.
    consumed = await session.exec(
        sa.update(RefreshToken)
        .where(
            col(RefreshToken.jti) == claims.jti,
            col(RefreshToken.used_at).is_(None),
            col(RefreshToken.family_id).in_(
                select(TokenFamily.id).where(
                    TokenFamily.id == claims.fam,
                    col(TokenFamily.revoked_at).is_(None),
                )
            ),
        )
        .values(used_at=now)
    )
    if consumed.rowcount != 1:
        known = await session.get(RefreshToken, claims.jti)
        if known is not None and known.used_at is not None:
            # A rotated token came back: it was stolen or replayed. End the whole session.
            await revoke_family(session, claims.fam, "refresh-reuse", now)
            await session.commit()
            raise unauthorized("Refresh token reuse detected; the session has been revoked.")
        await session.rollback()
        raise unauthorized("Invalid or revoked refresh token.")
    user = await session.get(User, claims.sub)
    if user is None or not user.is_active:
        await session.rollback()
        raise unauthorized("Invalid or revoked refresh token.")
    pair = _issue_pair(session, settings, claims.sub, claims.fam)
    await session.commit()
    return pair


async def revoke_family(session: AsyncSession, family_id: str, reason: str, now: datetime) -> None:
    await session.exec(
        sa.update(TokenFamily)
        .where(col(TokenFamily.id) == family_id, col(TokenFamily.revoked_at).is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def logout(session: AsyncSession, settings: Settings, claims: TokenClaims) -> None:
    now = datetime.now(UTC)
    await insert_ignoring_conflicts(
        session, RevokedToken, {"jti": claims.jti, "expires_at": claims.exp, "revoked_at": now}
    )
    await revoke_family(session, claims.fam, "logout", now)
    await prune_expired(session, settings, now)
    await session.commit()


async def prune_expired(session: AsyncSession, settings: Settings, now: datetime) -> None:
    """Drop revocation state that can no longer matter.

    A deny-listed jti is useless once its token has expired (the signature check refuses it). A family
    is a session with an absolute lifetime of refresh_token_ttl_s from login; it is kept one access-token
    lifetime longer so that access tokens minted near its end are still checked against it.
    """
    await session.exec(sa.delete(RevokedToken).where(col(RevokedToken.expires_at) < now))
    grace = timedelta(seconds=settings.access_token_ttl_s)
    await session.exec(sa.delete(TokenFamily).where(col(TokenFamily.expires_at) < now - grace))


# One round trip on every authenticated request: is the user active, is this token deny-listed, is its
# session still live. The hottest query of the API, hence columns only and the direct read path; the task
# list folds it into its page query (services/tasks.py), so that a list is one round trip in all.
ACCESS_CHECK: AnySelect = (
    sa.select(
        col(User.is_active).label("is_active"),
        col(RevokedToken.jti).label("revoked_jti"),
        col(TokenFamily.id).label("family_id"),
        col(TokenFamily.revoked_at).label("family_revoked_at"),
    )
    .select_from(User)
    .outerjoin(RevokedToken, col(RevokedToken.jti) == sa.bindparam("jti", type_=sa.String))
    .outerjoin(TokenFamily, col(TokenFamily.id) == sa.bindparam("family_id", type_=sa.String))
    .where(col(User.id) == sa.bindparam("user_id", type_=sa.BigInteger))
)


@dataclass(frozen=True, slots=True)
class AccessContext:
    """Who is calling, established from a verified, unrevoked access token."""

    user_id: int
    claims: TokenClaims


def verify_access_token(settings: Settings, token: str) -> TokenClaims:
    """Signature, expiry and type: what needs no database. Revocation is `check_access`'s part."""
    try:
        return decode_token(settings, token, "access")
    except TokenError as exc:
        raise unauthorized("Invalid or expired access token.") from exc


def access_params(claims: TokenClaims) -> dict[str, Any]:
    return {"user_id": claims.sub, "jti": claims.jti, "family_id": claims.fam}


def access_allowed(access: Any) -> sa.ColumnElement[bool]:
    """check_access's verdict as SQL over ACCESS_CHECK's columns, for a write that folds the check in."""
    return sa.and_(
        access.c.is_active,
        access.c.revoked_jti.is_(None),
        access.c.family_id.is_not(None),
        access.c.family_revoked_at.is_(None),
    )


def check_access(row: Mapping[str, Any] | None) -> None:
    """Refuse a token whose user is gone or disabled, or which was revoked (itself or its session)."""
    if row is None:
        raise unauthorized("Invalid or expired access token.")
    if row["revoked_jti"] is not None or row["family_id"] is None or row["family_revoked_at"] is not None:
        raise unauthorized("The token has been revoked.")
    if not row["is_active"]:
        raise unauthorized("The account is disabled.")


async def authorize_claims(session: AsyncSession, claims: TokenClaims) -> None:
    """The database's part of authentication (revocation, disabled or deleted user) as its own round trip."""
    rows = await fetch_mappings(session, ACCESS_CHECK, access_params(claims))
    check_access(rows[0] if rows else None)


async def authenticate_access_token(session: AsyncSession, settings: Settings, token: str) -> AccessContext:
    claims = verify_access_token(settings, token)
    await authorize_claims(session, claims)
    return AccessContext(user_id=claims.sub, claims=claims)
