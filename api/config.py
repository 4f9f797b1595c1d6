"""All runtime configuration in one settings object, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskplatform.api.limits import (
    BCRYPT_MAX_ROUNDS_DEFAULT,
    BCRYPT_ROUNDS_LIMIT,
    BCRYPT_ROUNDS_MIN,
    JWT_SECRET_MIN,
)

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

    jwt_secret: SecretStr = Field(SecretStr(DEV_JWT_SECRET), min_length=JWT_SECRET_MIN)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_issuer: str = "taskplatform"
    access_token_ttl_s: int = Field(900, ge=10, le=86400)
    refresh_token_ttl_s: int = Field(14 * 86400, ge=60, le=90 * 86400)
    bcrypt_rounds: int = Field(
        12, ge=BCRYPT_ROUNDS_MIN, le=BCRYPT_ROUNDS_LIMIT, description="bcrypt cost of new hashes; 4 only for tests."
    )
    bcrypt_max_rounds: int = Field(
        BCRYPT_MAX_ROUNDS_DEFAULT,
        ge=BCRYPT_ROUNDS_MIN,
        le=BCRYPT_ROUNDS_LIMIT,
        description="The highest bcrypt cost a stored hash may have and still be verified (each step doubles a "
        "login's CPU): a costlier one, e.g. imported from a legacy system, fails like a wrong password and the "
        "account needs a new password. At least BCRYPT_ROUNDS; hashes of another cost are rehashed at login.",
    )
    jwt_additional_secrets: list[SecretStr] = Field(
        default_factory=list,
        description="Keys accepted when verifying a token besides JWT_SECRET, which alone signs (a JSON list): "
        "the next key while a rollout brings it to every replica, and previous keys until the longest token "
        "they signed has expired. Tokens name their key by a `kid` derived from it.",
    )

    login_throttle_window_s: int = Field(
        900, ge=1, description="Failed logins older than this no longer count (a sliding window)."
    )
    login_free_failures_per_account_client: int = Field(
        5,
        ge=1,
        description="Failed logins for one account from one client address in the window before each "
        "further attempt of that pair must wait.",
    )
    login_free_failures_per_client: int = Field(
        20, ge=1, description="Failed logins from one client address (any account) before attempts must wait."
    )
    login_free_failures_per_account: int = Field(
        100,
        ge=1,
        description="Failed logins for one account from anywhere before a client that has already failed for "
        "it must wait too: slows a guesser spread over many addresses, never a client's first attempt.",
    )
    login_delay_base_s: float = Field(
        1.0, gt=0, description="Wait after the first failure beyond the free ones; doubles with each further one."
    )
    login_delay_max_s: float = Field(
        60.0, gt=0, description="The longest wait: attempts are slowed down, never locked out."
    )

    idempotency_ttl_s: int = Field(86400, ge=60)
    cleanup_interval_s: float = Field(
        300.0,
        ge=0,
        description="How often a replica prunes expired idempotency records, sessions, deny-list rows and login "
        "failures (one replica at a time); 0 disables.",
    )
    max_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Request bodies larger than this are refused with 413 before they are parsed or the caller "
        "authenticated, whether announced by Content-Length or streamed without one.",
    )
    trusted_proxies: str = Field(
        "",
        description="Comma-separated addresses or CIDRs of the proxies in front of the API (an ingress "
        "controller). A request from one of them is counted against the right-most X-Forwarded-For address "
        "that is not one of them; from anywhere else, against its own address. Empty: forwarded headers are "
        "ignored.",
    )

    api_docs: bool | None = Field(
        None,
        description="Serve the OpenAPI document and its pages (/openapi.json, /docs, /redoc). Unset: on, but "
        "with ENVIRONMENT=prod, where the API's surface is not published to whoever reaches it.",
    )

    metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="The port of Prometheus' /metrics, apart from the API's, which does not serve it: "
        "`taskplatform-api serve` listens on both, on the same host, in every worker. 0: metrics not served.",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    log_requests: bool = Field(True, description="One structured line per request.")
    log_file: str | None = Field(None, description="Also write logs to this file, rotated by size.")
    log_file_max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    log_file_backups: int = Field(5, ge=0)

    @field_validator("trusted_proxies")
    @classmethod
    def _normalize_proxies(cls, value: str) -> str:
        try:
            networks = [ipaddress.ip_network(item.strip(), strict=False) for item in value.split(",") if item.strip()]
        except ValueError as exc:
            raise ValueError(f"TRUSTED_PROXIES holds something that is no address or CIDR: {exc}") from None
        return ",".join(str(network) for network in networks)

    @field_validator("jwt_additional_secrets")
    @classmethod
    def _long_enough(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(len(secret.get_secret_value()) < JWT_SECRET_MIN for secret in value):
            raise ValueError(f"every additional JWT secret must have at least {JWT_SECRET_MIN} characters")
        return value

    @model_validator(mode="after")
    def _require_real_secret(self) -> Settings:
        if self.environment != "dev" and self.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
            raise ValueError("JWT_SECRET must be set outside ENVIRONMENT=dev")
        if self.bcrypt_rounds > self.bcrypt_max_rounds:
            raise ValueError("BCRYPT_ROUNDS may not exceed BCRYPT_MAX_ROUNDS (new hashes must verify)")
        return self

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else self.environment != "prod"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
