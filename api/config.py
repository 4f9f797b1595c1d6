"""All runtime configuration in one settings object, read from the environment and `.env`."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Only good for a laptop run: refusing it outside dev is what keeps it out of production.
DEV_JWT_SECRET = "dev-insecure-jwt-secret-change-me-0123456789abcdef"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["dev", "test", "prod"] = Field(
        "dev", description="dev allows the built-in JWT secret; prod and test require JWT_SECRET."
    )
    database_url: str = Field(
        "sqlite:///./taskplatform.db",
        description="SQLAlchemy URL. PostgreSQL in production (postgresql+psycopg2://...); SQLite for a quick run.",
    )
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_pool_timeout_s: float = Field(10.0, gt=0, description="Seconds to wait for a free pooled connection.")
    db_max_waiting: int = Field(
        100,
        ge=0,
        description="Requests that may wait for a pooled connection, first come first served; more are "
        "answered 503 with Retry-After at once.",
    )
    db_pool_recycle_s: int = Field(1800, ge=-1, description="Recycle connections older than this.")
    db_connect_timeout_s: int = Field(5, ge=1)
    db_pool_ping_idle_s: float = Field(
        2.0, ge=0, description="Health-check a pooled connection on checkout when it idled this long (0: always)."
    )
    db_statement_timeout_ms: int = Field(15000, ge=0, description="0 disables the server-side timeout.")
    db_auto_migrate: bool = Field(
        False,
        description="Run `alembic upgrade head` at start-up. Handy for `make run`; in Kubernetes the operator "
        "runs migrations as a Job before rolling out the API instead.",
    )

    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), min_length=32)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "taskplatform"
    access_token_ttl_s: int = Field(900, ge=10, le=86400)
    refresh_token_ttl_s: int = Field(14 * 86400, ge=60, le=90 * 86400)
    bcrypt_rounds: int = Field(12, ge=4, le=16, description="bcrypt cost; 4 only for tests.")

    login_throttle_window_s: int = Field(
        900, ge=1, description="Failed logins older than this no longer count (a sliding window)."
    )
    login_free_failures_per_account: int = Field(
        5, ge=1, description="Failed logins for one account in the window before each attempt must wait."
    )
    login_free_failures_per_client: int = Field(
        20, ge=1, description="Failed logins from one client address (any account) before attempts must wait."
    )
    login_delay_base_s: float = Field(
        1.0, gt=0, description="Wait after the first failure beyond the free ones; doubles with each further one."
    )
    login_delay_max_s: float = Field(
        60.0, gt=0, description="The longest wait: attempts are slowed down, never locked out."
    )

    idempotency_ttl_s: int = Field(86400, ge=60)
    max_page_size: int = Field(100, ge=1, le=1000)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_requests: bool = Field(True, description="One structured line per request.")
    log_file: str | None = Field(None, description="Also write logs to this file, rotated by size.")
    log_file_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    log_file_backups: int = Field(5, ge=0)

    @model_validator(mode="after")
    def _require_real_secret(self) -> Settings:
        if self.environment != "dev" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError("JWT_SECRET must be set outside ENVIRONMENT=dev")
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
