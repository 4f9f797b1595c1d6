from datetime import UTC, datetime, timedelta

import bcrypt
import pytest
from jose import jwt

from taskplatform.api.config import Settings
from taskplatform.api.security import (
    TokenError,
    decode_token,
    dummy_hash,
    encode_token,
    hash_password,
    needs_rehash,
    verify_password,
)

SECRET = "unit-test-secret-0123456789abcdef0123456789"


@pytest.fixture
def settings() -> Settings:
    return Settings(environment="test", jwt_secret=SECRET, bcrypt_rounds=4)  # type: ignore[arg-type]


def test_hash_is_bcrypt_with_configured_cost_and_verifies() -> None:
    hashed = hash_password("s3cret-password", rounds=5)
    assert hashed.startswith("$bcrypt-sha256$v=2,t=2b,r=5$")
    assert verify_password("s3cret-password", hashed, rounds=5, max_rounds=14)
    assert not verify_password("s3cret-passworD", hashed, rounds=5, max_rounds=14)
    assert not needs_rehash(hashed, rounds=5)
    assert needs_rehash(hashed, rounds=6)


def test_passwords_longer_than_72_bytes_are_not_truncated() -> None:
    base = "p" * 72
    hashed = hash_password(base + "A", rounds=4)
    assert verify_password(base + "A", hashed, rounds=4, max_rounds=14)
    assert not verify_password(base + "B", hashed, rounds=4, max_rounds=14)


def test_legacy_plain_bcrypt_hashes_verify_and_ask_for_an_upgrade() -> None:
    legacy = bcrypt.hashpw(b"old-password", bcrypt.gensalt(rounds=4)).decode()
    assert legacy.startswith("$2b$04$")
    assert verify_password("old-password", legacy, rounds=4, max_rounds=14)
    assert not verify_password("new-password", legacy, rounds=4, max_rounds=14)
    assert needs_rehash(legacy, rounds=4)


def test_verify_against_malformed_hash_is_false_not_an_error() -> None:
    assert verify_password("whatever", "not-a-bcrypt-hash", rounds=4, max_rounds=14) is False


def test_dummy_hash_is_a_real_bcrypt_hash_of_the_same_cost() -> None:
    assert dummy_hash(4).startswith("$bcrypt-sha256$v=2,t=2b,r=4$")
    assert not verify_password("", dummy_hash(4), rounds=4, max_rounds=14)


def test_access_token_round_trip(settings: Settings) -> None:
    token, claims = encode_token(settings, user_id=42, family_id="f" * 32, token_type="access")
    decoded = decode_token(settings, token, "access")
    assert decoded == claims
    assert decoded.sub == 42
    assert decoded.exp - decoded.iat == timedelta(seconds=settings.access_token_ttl_s)
    raw = jwt.get_unverified_claims(token)
    assert set(raw) >= {"sub", "exp", "iat", "jti", "type", "fam", "iss"}


def test_each_token_gets_a_fresh_jti(settings: Settings) -> None:
    _, first = encode_token(settings, user_id=1, family_id="f" * 32, token_type="access")
    _, second = encode_token(settings, user_id=1, family_id="f" * 32, token_type="access")
    assert first.jti != second.jti


def test_expired_token_is_rejected(settings: Settings) -> None:
    past = datetime.now(UTC) - timedelta(seconds=settings.access_token_ttl_s + 60)
    token, _ = encode_token(settings, user_id=1, family_id="f" * 32, token_type="access", now=past)
    with pytest.raises(TokenError, match="expired"):
        decode_token(settings, token, "access")


def test_tampered_payload_is_rejected(settings: Settings) -> None:
    token, _ = encode_token(settings, user_id=1, family_id="f" * 32, token_type="access")
    header, _payload, signature = token.split(".")
    forged, _ = encode_token(settings, user_id=2, family_id="f" * 32, token_type="access")
    with pytest.raises(TokenError):
        decode_token(settings, f"{header}.{forged.split('.')[1]}.{signature}", "access")


def test_token_signed_with_another_secret_is_rejected(settings: Settings) -> None:
    other = settings.model_copy(update={"jwt_secret": settings.jwt_secret.__class__("x" * 40)})
    token, _ = encode_token(other, user_id=1, family_id="f" * 32, token_type="access")
    with pytest.raises(TokenError):
        decode_token(settings, token, "access")


def test_unsigned_alg_none_token_is_rejected(settings: Settings) -> None:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": "1", "jti": "a" * 32, "fam": "f" * 32, "type": "access", "iat": now, "exp": now + 60}
    unsigned = jwt.encode(claims, "", algorithm="HS256").rsplit(".", 1)[0] + "."
    with pytest.raises(TokenError):
        decode_token(settings, unsigned, "access")


def test_refresh_token_is_not_accepted_as_access_token(settings: Settings) -> None:
    token, _ = encode_token(settings, user_id=1, family_id="f" * 32, token_type="refresh")
    with pytest.raises(TokenError, match="access"):
        decode_token(settings, token, "access")
    assert decode_token(settings, token, "refresh").type == "refresh"


def test_garbage_is_rejected(settings: Settings) -> None:
    with pytest.raises(TokenError):
        decode_token(settings, "not.a.jwt", "access")


def test_a_verified_token_is_served_from_the_cache_until_it_expires(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskplatform.api import security

    token, claims = encode_token(settings, user_id=7, family_id="f" * 32, token_type="access")
    assert decode_token(settings, token, "access") == claims
    verifications: list[str] = []
    real_verify = security._verify
    monkeypatch.setattr(security, "_verify", lambda *args: verifications.append(args[-1]) or real_verify(*args))
    assert decode_token(settings, token, "access") == claims  # the signature is not checked again
    assert verifications == []
    with pytest.raises(TokenError, match="expected a refresh token"):
        decode_token(settings, token, "refresh")  # the type is still checked on a hit

    later = claims.exp + timedelta(seconds=1)

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
            return later

    monkeypatch.setattr(security, "datetime", Clock)
    with pytest.raises(TokenError, match="expired"):
        decode_token(settings, token, "access")  # expiry is checked against the clock on a hit
    assert all(key[0] != token for key in security._verified)  # and the entry is gone


def test_the_cache_is_per_key_and_bounded(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from taskplatform.api import security

    token, _ = encode_token(settings, user_id=7, family_id="f" * 32, token_type="access")
    decode_token(settings, token, "access")
    other = settings.model_copy(update={"jwt_secret": settings.jwt_secret.__class__("y" * 40)})
    with pytest.raises(TokenError):
        decode_token(other, token, "access")  # a hit under one key says nothing for another
    monkeypatch.setattr(security, "VERIFIED_TOKEN_CACHE_SIZE", 3)
    for user_id in range(10):
        fresh, _ = encode_token(settings, user_id=user_id, family_id="f" * 32, token_type="access")
        decode_token(settings, fresh, "access")
    assert len(security._verified) <= 3


def bcrypt_hash(password: str, cost: int, prefix: bytes = b"2b") -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost, prefix=prefix)).decode()


def test_the_cost_of_every_stored_hash_format_is_read() -> None:
    from taskplatform.api.security import bcrypt_cost

    assert bcrypt_cost(bcrypt_hash("pw", 5)) == 5
    assert bcrypt_cost(hash_password("pw", rounds=6)) == 6
    assert bcrypt_cost("$2b$31$" + "a" * 53) == 31
    for garbage in ("", "$2b$", "$2b$x1$" + "a" * 53, "$bcrypt-sha256$v=2,t=2b$", "plain", "$2b$١٢$" + "a" * 53):
        assert bcrypt_cost(garbage) is None


def test_a_hash_costlier_than_the_bound_is_not_verified_and_costs_an_ordinary_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A day-per-login `$2b$31$` legacy hash must not be a way to burn a day of CPU: it fails like a wrong password,
    at the cost of the dummy hash (the configured cost)."""
    from taskplatform.api import security

    legacy = bcrypt_hash("right", 5)
    checked: list[str] = []
    context = security._crypt_context(4)
    monkeypatch.setattr(security, "_crypt_context", lambda rounds: CountingContext(context, checked))
    assert verify_password("right", legacy, rounds=4, max_rounds=5)
    assert not verify_password("right", legacy, rounds=4, max_rounds=4)  # over the bound: refused unchecked
    assert not verify_password("right", "$2b$31$" + "a" * 53, rounds=4, max_rounds=14)
    assert checked == [legacy, dummy_hash(4), dummy_hash(4)]


class CountingContext:
    def __init__(self, context: object, checked: list[str]) -> None:
        self.context, self.checked = context, checked

    def verify(self, password: str, hashed: str) -> bool:
        self.checked.append(hashed)
        return bool(self.context.verify(password, hashed))  # type: ignore[attr-defined]


def test_2x_hashes_verify_for_ascii_passwords_and_are_rehashed() -> None:
    """$2x$ is crypt_blowfish's variant that kept its old sign-extension bug, which only 8-bit characters meet."""
    ascii_hash = "$2x$" + bcrypt_hash("plain ascii", 4, b"2a")[4:]
    assert verify_password("plain ascii", ascii_hash, rounds=4, max_rounds=14)
    assert not verify_password("plain asciI", ascii_hash, rounds=4, max_rounds=14)
    assert needs_rehash(ascii_hash, rounds=4)
    unicode_hash = "$2x$" + bcrypt_hash("naïve", 4, b"2a")[4:]
    assert not verify_password("naïve", unicode_hash, rounds=4, max_rounds=14)  # cannot be checked: refused


def test_a_hash_of_another_cost_is_rehashed() -> None:
    assert needs_rehash(hash_password("pw", rounds=5), rounds=4)
    assert not needs_rehash(hash_password("pw", rounds=4), rounds=4)


def test_the_bcrypt_bound_may_not_be_below_the_cost_of_new_hashes() -> None:
    with pytest.raises(ValueError, match="BCRYPT_ROUNDS may not exceed BCRYPT_MAX_ROUNDS"):
        Settings(bcrypt_rounds=13, bcrypt_max_rounds=12)


def test_a_token_longer_than_any_we_issue_is_refused_before_it_is_decoded(settings: Settings) -> None:
    from taskplatform.api.limits import TOKEN_MAX

    token, _ = encode_token(settings, user_id=1, family_id="f" * 32, token_type="access")
    with pytest.raises(TokenError, match="too long"):
        decode_token(settings, token + "A" * (TOKEN_MAX - len(token) + 1), "access")
