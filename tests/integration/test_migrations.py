"""The Alembic migrations are the schema: they must build exactly what the models describe, and reverse."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from helpers.pgcluster import ThrowawayPostgres
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
    assert diff == []


REPO = Path(__file__).resolve().parents[2]


def test_alembic_autogenerate_on_a_current_schema_writes_an_empty_migration(
    pg: ThrowawayPostgres, tmp_path: Path
) -> None:
    """As a user would run it: the alembic CLI with the repository's alembic.ini and DATABASE_URL. An env.py
    whose metadata is empty would autogenerate a migration dropping every table."""
    url = pg.create_database("autogenerate_empty")
    upgrade_head(url)
    alembic = [str(Path(sys.executable).parent / "alembic"), "-c", str(REPO / "alembic.ini")]
    env = {**os.environ, "DATABASE_URL": url}
    check = subprocess.run([*alembic, "check"], env=env, capture_output=True, text=True, cwd=REPO, check=False)
    assert check.returncode == 0, check.stderr + check.stdout
    assert "No new upgrade operations detected" in check.stdout + check.stderr

    # `revision --autogenerate` writes into the versions folder: give it a copy of the migrations.
    scripts = tmp_path / "migrations"
    shutil.copytree(REPO / "api" / "migrations", scripts, ignore=shutil.ignore_patterns("__pycache__"))
    ini = tmp_path / "alembic.ini"
    ini.write_text((REPO / "alembic.ini").read_text().replace("%(here)s/api/migrations", str(scripts)))
    made = subprocess.run(
        [alembic[0], "-c", str(ini), "revision", "--autogenerate", "-m", "nothing"],
        env=env, capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (new,) = (scripts / "versions").glob("*_nothing.py")
    text = new.read_text()
    upgrade = text[text.index("def upgrade()") : text.index("def downgrade()")]
    assert "op." not in upgrade, upgrade


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
