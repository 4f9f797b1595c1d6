"""Run the Alembic migrations that ship inside the package (no alembic.ini needed)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError

from taskplatform.api.db import sync_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolation would treat a '%' in a URL-encoded password as syntax.
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade_head(database_url: str) -> None:
    command.upgrade(alembic_config(database_url), "head")


def wait_for_database(database_url: str, timeout_s: float) -> None:
    """Retry connecting for up to `timeout_s` (0: one try). The last error propagates."""
    deadline = time.monotonic() + timeout_s
    engine = create_engine(sync_url(database_url), pool_pre_ping=False)
    try:
        while True:
            try:
                with engine.connect():
                    return
            except OperationalError:
                if time.monotonic() >= deadline:
                    raise
                logging.getLogger(__name__).info("waiting for the database")
                time.sleep(1.0)
    finally:
        engine.dispose()
