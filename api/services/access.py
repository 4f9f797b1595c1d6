"""Who is calling: a verified access token, and the revocation check that makes it a caller.

A token's signature, expiry and type need no database (`verify`); whether it still holds does: its user may be
deleted or disabled, the token deny-listed (logout), its session revoked (logout, a reused refresh token, a
password change). Every replica reads the same rows, so a token revoked through one is refused by all.

The check is enforced by the types. A route gets an `UncheckedAccess`, which tells nobody a user id; only the
check turns it into a `CheckedAccess`, either in a round trip of its own (`check`, `check_in_session`) or
folded into a service's own statement (`fetch_checked`: one round trip for the hot routes). A statement that
folds it in reads the caller's id only as the `caller_id()` parameter, which `fetch_checked` binds from the
token together with the check. tests/integration/test_revocation.py sends a revoked token to every
authenticated route of the app.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from taskplatform.api.config import Settings
from taskplatform.api.db import Database, Row, Statement
from taskplatform.api.db.statements import AnySelect
from taskplatform.api.errors import unauthorized
from taskplatform.api.models import RevokedToken, TokenFamily, User
from taskplatform.api.security import TokenClaims, TokenError, decode_token

CALLER_ID = "user_id"  # the parameter every statement reads the caller's id from


def caller_id() -> sa.BindParameter[int]:
    """The caller's id in a statement: bound from the token, and in a statement that folds the check in only
    together with it."""
    return sa.bindparam(CALLER_ID, type_=sa.BigInteger)


class UncheckedAccess:
    """A verified access token (signature, expiry, type), not yet checked against revocation. It hands out no
    user id: pass it to `check`, or to a service whose statement folds the check in (`fetch_checked`)."""

    __slots__ = ("_claims",)

    def __init__(self, claims: TokenClaims) -> None:
        self._claims = claims


@dataclass(frozen=True, slots=True)
class CheckedAccess:
    """The caller, established from a verified access token that the database still honours."""

    user_id: int
    claims: TokenClaims

    def caller(self) -> dict[str, Any]:
        """The parameter of a statement run for this caller without the check folded in."""
        return {CALLER_ID: self.user_id}


def verify(settings: Settings, token: str) -> TokenClaims:
    """Signature, expiry and type: what needs no database. Revocation is the check's part."""
    try:
        return decode_token(settings, token, "access")
    except TokenError as exc:
        raise unauthorized("Invalid or expired access token.") from exc


# One round trip on every authenticated request: is the user active, is this token deny-listed, is its session
# still live. The hottest query of the API, hence columns only; the hot routes fold it into their own statement.
ACCESS_CHECK_QUERY: AnySelect = (
    sa.select(
        col(User.is_active).label("is_active"),
        col(RevokedToken.jti).label("revoked_jti"),
        col(TokenFamily.id).label("family_id"),
        col(TokenFamily.revoked_at).label("family_revoked_at"),
    )
    .select_from(User)
    .outerjoin(RevokedToken, col(RevokedToken.jti) == sa.bindparam("jti", type_=sa.String))
    .outerjoin(TokenFamily, col(TokenFamily.id) == sa.bindparam("family_id", type_=sa.String))
    .where(col(User.id) == caller_id())
)
ACCESS_PARAMETERS = frozenset((CALLER_ID, "jti", "family_id"))
ACCESS_CHECK = Statement(ACCESS_CHECK_QUERY, ACCESS_PARAMETERS)


def folded(query: Any, parameters: Iterable[str]) -> Statement:
    """A statement whose query joins ACCESS_CHECK_QUERY's row (built by the service; see `access_allowed`
    for a write), with the check's parameters besides its own."""
    return Statement(query, {*ACCESS_PARAMETERS, *parameters})


def access_allowed(access: Any) -> sa.ColumnElement[bool]:
    """The check's verdict as SQL over ACCESS_CHECK_QUERY's columns, for a write that folds the check in."""
    return sa.and_(
        access.c.is_active,
        access.c.revoked_jti.is_(None),
        access.c.family_id.is_not(None),
        access.c.family_revoked_at.is_(None),
    )


def _params(access: UncheckedAccess) -> dict[str, Any]:
    claims = access._claims
    return {CALLER_ID: claims.sub, "jti": claims.jti, "family_id": claims.fam}


def _verdict(access: UncheckedAccess, row: Mapping[str, Any] | None) -> CheckedAccess:
    """Refuse a token whose user is gone or disabled, or which was revoked (itself or its session)."""
    if row is None:
        raise unauthorized("Invalid or expired access token.")
    if row["revoked_jti"] is not None or row["family_id"] is None or row["family_revoked_at"] is not None:
        raise unauthorized("The token has been revoked.")
    if not row["is_active"]:
        raise unauthorized("The account is disabled.")
    return CheckedAccess(user_id=access._claims.sub, claims=access._claims)


async def check(db: Database, access: UncheckedAccess) -> CheckedAccess:
    """The check as a round trip of its own."""
    rows = await db.fetch(ACCESS_CHECK, _params(access))
    return _verdict(access, rows[0] if rows else None)


async def check_in_session(session: AsyncSession, access: UncheckedAccess) -> CheckedAccess:
    """The check inside a session's transaction."""
    rows = await ACCESS_CHECK.fetch_sqlalchemy(session, _params(access))
    return _verdict(access, rows[0] if rows else None)


async def fetch_checked(
    db: Database, access: UncheckedAccess, statement: Statement, params: Mapping[str, Any]
) -> tuple[CheckedAccess, list[Row]]:
    """A statement that folds the check in (`folded`): every row carries the check's columns, so the first one
    decides (zero rows: no such user); the rows, once the check has passed."""
    rows = await db.fetch(statement, {**params, **_params(access)})
    return _verdict(access, rows[0] if rows else None), rows
