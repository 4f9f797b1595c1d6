"""Password hashing and JWT encoding. Pure functions of their inputs and the settings."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

from jose import JWTError, jwt
from passlib.context import CryptContext

from taskplatform.api.config import Settings
from taskplatform.api.limits import BCRYPT_ROUNDS_MIN, TOKEN_MAX

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


def bcrypt_cost(hashed: str) -> int | None:
    """The cost a stored hash was made with: `$2b$12$...` (plain bcrypt) or `$bcrypt-sha256$v=2,t=2b,r=12$...`;
    None when it is neither."""
    if hashed.startswith("$bcrypt-sha256$"):
        params = hashed.split("$", 3)[2] if hashed.count("$") >= 3 else ""
        rounds = next((item[2:] for item in params.split(",") if item.startswith("r=")), "")
    elif len(hashed) > 7 and hashed.startswith("$2") and hashed[3] == "$" and hashed[6] == "$":
        rounds = hashed[4:6]
    else:
        return None
    return int(rounds) if rounds.isascii() and rounds.isdigit() and len(rounds) <= 2 else None


def verify_password(password: str, hashed: str, rounds: int, max_rounds: int) -> bool:
    """Whether `password` matches `hashed`, at the cost of at most one bcrypt of cost `max_rounds`.

    A stored hash costlier than `max_rounds` (a legacy import) is not verified: the caller pays for the dummy
    hash instead, as for an unknown email, and the account needs a new password. `$2x$` (crypt_blowfish's
    variant that kept its old bug with 8-bit characters) is the same algorithm as `$2a$` for 7-bit input, so
    an ASCII password is verified as `$2a$` (and rehashed at login); any other cannot be checked."""
    cost = bcrypt_cost(hashed)
    if hashed.startswith("$2x$") and password.isascii():
        hashed = "$2a$" + hashed[4:]
    if cost is None or not BCRYPT_ROUNDS_MIN <= cost <= max_rounds or hashed.startswith("$2x$"):
        _crypt_context(rounds).verify(password, dummy_hash(rounds))
        return False
    try:
        return bool(_crypt_context(rounds).verify(password, hashed))
    except (ValueError, TypeError):
        return False  # a malformed stored hash is a failed login, not a 500


def needs_rehash(hashed: str, rounds: int) -> bool:
    """True for legacy plain-bcrypt hashes or another cost than configured."""
    if hashed.startswith("$2x$"):
        return True  # verified as $2a$; passlib does not read the $2x$ prefix itself
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


@dataclass(frozen=True, slots=True, eq=False)  # compared and hashed by identity: one per key set (_keyring)
class KeyRing:
    """The keys tokens are verified with, by key id; `signing` signs new ones (settings.jwt_secret)."""

    signing: str
    signing_kid: str
    by_kid: dict[str, str]


def key_id(key: str) -> str:
    """A token's `kid`: derived from its key, so replicas agree on it without configuration; one-way, so the
    header says nothing of the key."""
    return hashlib.sha256(b"taskplatform-jwt-kid\0" + key.encode()).hexdigest()[:16]


@lru_cache(maxsize=8)
def _keyring(signing: str, additional: tuple[str, ...]) -> KeyRing:
    return KeyRing(signing, key_id(signing), {key_id(key): key for key in (signing, *additional)})


def keyring(settings: Settings) -> KeyRing:
    return _keyring(
        settings.jwt_secret.get_secret_value(),
        tuple(secret.get_secret_value() for secret in settings.jwt_additional_secrets),
    )


def encode_token(
    settings: Settings,
    *,
    user_id: int,
    family_id: str,
    token_type: TokenType,
    now: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[str, TokenClaims]:
    """A signed token; `not_after` caps its expiry (a refresh token never outlives its session)."""
    now = now or datetime.now(UTC)
    ttl = settings.access_token_ttl_s if token_type == "access" else settings.refresh_token_ttl_s
    exp = now + timedelta(seconds=ttl)
    if not_after is not None:
        exp = min(exp, not_after)
    claims = TokenClaims(
        sub=user_id,
        jti=new_token_id(),
        fam=family_id,
        type=token_type,
        iat=now.replace(microsecond=0),
        exp=exp.replace(microsecond=0),
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
    keys = keyring(settings)
    token = jwt.encode(payload, keys.signing, algorithm=settings.jwt_algorithm, headers={"kid": keys.signing_kid})
    return str(token), claims


# Verified tokens by (token, key ring, algorithm, issuer): a client sends the same access token with every
# request for its lifetime, and python-jose's signature check plus claim parsing cost ~30 µs of CPU each
# time against well under 1 µs for a hit (timeit). A hit still checks expiry against the clock and the type
# asked for; revocation is the database's part on every request either way. Bounded: oldest entry first out.
VERIFIED_TOKEN_CACHE_SIZE = 4096
_verified: dict[tuple[str, KeyRing, str, str], TokenClaims] = {}


def decode_token(settings: Settings, token: str, expected_type: TokenType) -> TokenClaims:
    if len(token) > TOKEN_MAX:
        raise TokenError("token too long")
    keys = keyring(settings)
    cache_key = (token, keys, settings.jwt_algorithm, settings.jwt_issuer)
    claims = _verified.get(cache_key)
    if claims is None:
        claims = _verify(settings, keys, token)
        while len(_verified) >= VERIFIED_TOKEN_CACHE_SIZE:
            _verified.pop(next(iter(_verified)), None)
        _verified[cache_key] = claims
    elif claims.exp <= datetime.now(UTC):
        _verified.pop(cache_key, None)
        raise TokenError("Signature has expired.")
    if not hmac.compare_digest(claims.type, expected_type):
        raise TokenError(f"expected a {expected_type} token")
    return claims


def _verification_keys(keys: KeyRing, token: str) -> list[str]:
    """The key the token's `kid` names; a token without one (signed before key ids) may be any of them."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    if kid is None:
        return list(keys.by_kid.values())
    key = keys.by_kid.get(kid) if isinstance(kid, str) else None
    if key is None:
        raise TokenError("signed with a key this server does not hold")
    return [key]


def _verify(settings: Settings, keys: KeyRing, token: str) -> TokenClaims:
    payload: dict[str, Any] | None = None
    error: JWTError | None = None
    for key in _verification_keys(keys, token):
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[settings.jwt_algorithm],
                issuer=settings.jwt_issuer,
                options={"require_exp": True, "require_iat": True, "require_sub": True, "require_jti": True},
            )
            break
        except JWTError as exc:
            error = exc
    if payload is None:
        raise TokenError(str(error))
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
