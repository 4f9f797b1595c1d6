"""Password hashing and JWT encoding. Pure functions of their inputs and the settings."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from jose import JWTError, jwt
from passlib.context import CryptContext

from taskplatform.api.config import Settings

TokenType = Literal["access", "refresh"]


@lru_cache(maxsize=8)
def _crypt_context(rounds: int) -> CryptContext:
    # bcrypt_sha256 is bcrypt over an HMAC-SHA256 of the password, which lifts bcrypt's 72-byte input
    # limit without truncating. Plain bcrypt ($2a$/$2b$, e.g. hashes migrated from the legacy system)
    # still verifies and is upgraded on the next successful login.
    return CryptContext(
        schemes=["bcrypt_sha256", "bcrypt"],
        default="bcrypt_sha256",
        deprecated=["bcrypt"],
        bcrypt_sha256__rounds=rounds,
        bcrypt__rounds=rounds,
    )


def hash_password(password: str, rounds: int) -> str:
    return str(_crypt_context(rounds).hash(password))


def verify_password(password: str, hashed: str, rounds: int) -> bool:
    try:
        return bool(_crypt_context(rounds).verify(password, hashed))
    except (ValueError, TypeError):
        return False  # a malformed stored hash is a failed login, not a 500


def needs_rehash(hashed: str, rounds: int) -> bool:
    """True for legacy plain-bcrypt hashes or another cost than configured."""
    try:
        return bool(_crypt_context(rounds).needs_update(hashed))
    except (ValueError, TypeError):
        return False


@lru_cache(maxsize=8)
def dummy_hash(rounds: int) -> str:
    """A hash to verify against when the email is unknown, so both failures cost one bcrypt."""
    return hash_password(uuid.uuid4().hex, rounds)


def new_token_id() -> str:
    return uuid.uuid4().hex


class TokenError(Exception):
    """The token is malformed, tampered with, expired or of the wrong type."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: int
    jti: str
    fam: str
    type: TokenType
    iat: datetime
    exp: datetime


def encode_token(
    settings: Settings, *, user_id: int, family_id: str, token_type: TokenType, now: datetime | None = None
) -> tuple[str, TokenClaims]:
    now = now or datetime.now(UTC)
    ttl = settings.access_token_ttl_s if token_type == "access" else settings.refresh_token_ttl_s
    claims = TokenClaims(
        sub=user_id,
        jti=new_token_id(),
        fam=family_id,
        type=token_type,
        iat=now.replace(microsecond=0),
        exp=(now + timedelta(seconds=ttl)).replace(microsecond=0),
    )
    payload = {
        "sub": str(claims.sub),
        "jti": claims.jti,
        "fam": claims.fam,
        "type": claims.type,
        "iss": settings.jwt_issuer,
        "iat": int(claims.iat.timestamp()),
        "exp": int(claims.exp.timestamp()),
    }
    token = jwt.encode(payload, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm)
    return str(token), claims


# Verified tokens by (token, key, algorithm, issuer): a client sends the same access token with every
# request for its lifetime, and python-jose's signature check plus claim parsing cost ~30 µs of CPU each
# time against well under 1 µs for a hit (timeit). A hit still checks expiry against the clock and the type
# asked for; revocation is the database's part on every request either way. Bounded: oldest entry first out.
VERIFIED_TOKEN_CACHE_SIZE = 4096
_verified: dict[tuple[str, str, str, str], TokenClaims] = {}


def decode_token(settings: Settings, token: str, expected_type: TokenType) -> TokenClaims:
    key = (token, settings.jwt_secret.get_secret_value(), settings.jwt_algorithm, settings.jwt_issuer)
    claims = _verified.get(key)
    if claims is None:
        claims = _verify(settings, token)
        while len(_verified) >= VERIFIED_TOKEN_CACHE_SIZE:
            _verified.pop(next(iter(_verified)), None)
        _verified[key] = claims
    elif claims.exp <= datetime.now(UTC):
        _verified.pop(key, None)
        raise TokenError("Signature has expired.")
    if not hmac.compare_digest(claims.type, expected_type):
        raise TokenError(f"expected a {expected_type} token")
    return claims


def _verify(settings: Settings, token: str) -> TokenClaims:
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            settings.jwt_secret.get_secret_value(),
            algorithms=[settings.jwt_algorithm],
            issuer=settings.jwt_issuer,
            options={"require_exp": True, "require_iat": True, "require_sub": True, "require_jti": True},
        )
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    token_type = payload.get("type")
    if token_type not in ("access", "refresh"):
        raise TokenError("unknown token type")
    try:
        return TokenClaims(
            sub=int(payload["sub"]),
            jti=str(payload["jti"]),
            fam=str(payload["fam"]),
            type=token_type,
            iat=datetime.fromtimestamp(int(payload["iat"]), UTC),
            exp=datetime.fromtimestamp(int(payload["exp"]), UTC),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise TokenError("token claims are malformed") from exc
