import pytest
from pydantic import ValidationError

from taskplatform.api.config import Settings


def test_dev_runs_on_embedded_sqlite_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.is_sqlite
    assert settings.environment == "dev"


def test_outside_dev_the_built_in_jwt_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET must be set"):
        Settings(environment="prod", _env_file=None)  # type: ignore[call-arg]


def test_short_jwt_secret_is_refused() -> None:
    with pytest.raises(ValidationError, match="jwt_secret"):
        Settings(environment="prod", jwt_secret="short", _env_file=None)  # type: ignore[arg-type, call-arg]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("JWT_SECRET", "s" * 40)
    monkeypatch.setenv("BCRYPT_ROUNDS", "13")
    monkeypatch.setenv("DB_POOL_SIZE", "7")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (settings.environment, settings.bcrypt_rounds, settings.db_pool_size) == ("prod", 13, 7)
    assert "s" * 40 not in repr(settings)  # secrets never end up in logs via repr


def test_settings_come_from_a_dotenv_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    env_file = tmp_path / ".env"
    env_file.write_text("ACCESS_TOKEN_TTL_S=120\nLOG_FORMAT=text\n")
    monkeypatch.delenv("ACCESS_TOKEN_TTL_S", raising=False)
    settings = Settings(_env_file=env_file)  # type: ignore[call-arg]
    assert settings.access_token_ttl_s == 120
    assert settings.log_format == "text"
