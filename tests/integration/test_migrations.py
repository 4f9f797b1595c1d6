"""The Alembic migrations are the schema: they must build exactly what the models describe, and reverse."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from pgcluster import ThrowawayPostgres
from sqlalchemy.exc import OperationalError
from sqlmodel import SQLModel

from taskplatform.api import models  # noqa: F401  (registers the tables)
from taskplatform.api.migrate import alembic_config, upgrade_head, wait_for_database


def test_migrations_match_the_models(pg: ThrowawayPostgres) -> None:
    url = pg.create_database("migrations_match")
    upgrade_head(url)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, SQLModel.metadata)
    finally:
        engine.dispose()
    # Indexes that only PostgreSQL gets (GIN on tags, trigram on title) are not in the portable models.
    diff = [d for d in diff if not (d[0] == "remove_index" and d[1].name in {"ix_tasks_tags", "ix_tasks_title_trgm"})]
    assert diff == []


def test_downgrade_to_base_and_back(pg: ThrowawayPostgres) -> None:
    from alembic import command

    url = pg.create_database("migrations_roundtrip")
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = sa.create_engine(url)
    try:
        assert set(sa.inspect(engine).get_table_names()) == {"alembic_version"}
        command.upgrade(config, "head")
        assert "tasks" in sa.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_migrations_run_on_the_embedded_sqlite_default(tmp_path) -> None:  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'local.db'}"
    upgrade_head(url)
    engine = sa.create_engine(url)
    try:
        assert {"users", "tasks", "revoked_tokens"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_migrate_waits_for_the_database_or_reports_it_unreachable(database_url: str) -> None:
    wait_for_database(database_url, timeout_s=0)  # up: returns on the first try
    with pytest.raises(OperationalError):
        wait_for_database("postgresql://nobody:x@127.0.0.1:1/none", timeout_s=0)
