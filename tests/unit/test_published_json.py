"""routes.common.PublishedJSON: the hot reads' bodies, serialized without FastAPI's validation pass, are
byte for byte what the response models would publish, for rows as the database returns them (decoded by the
statement's column codecs, db.statements)."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from taskplatform.api.columns import PRIORITY
from taskplatform.api.models import Task
from taskplatform.api.routes.common import PublishedJSON
from taskplatform.api.schemas import TaskPage, TaskPublic
from taskplatform.api.services.task_queries import PUBLIC_TASK_FIELDS, TASK_BY_ID, public_task


def _row(**overrides: Any) -> dict[str, Any]:
    """A tasks row as asyncpg returns it (priority as its rank, aware datetimes), with its internal column."""
    row = {
        "id": 1,
        "owner_id": 7,
        "title": "Plain",
        "description": None,
        "status": "todo",
        "priority": 2,
        "due_date": None,
        "tags": [],
        "version": 1,
        "created_at": datetime(2026, 11, 28, 12, 0, tzinfo=UTC),
        "updated_at": datetime(2026, 11, 28, 12, 0, 0, 123456, tzinfo=UTC),
        "legacy_id": "64b7f0c2e4b0a1a2b3c4d5e6",
    }
    return row | overrides


ROWS = [
    _row(),
    _row(id=2**63 - 1, owner_id=2**62, version=2**31, status="in_progress", priority=4),
    _row(title="שלום עולם ‏🎉 مرحبا", description='line\nbreak\ttab "quoted" \\ back\u2028sep', tags=["🏷️", "رمز", ""]),
    _row(description="", tags=["x" * 50] * 20, status="done", priority=1),
    _row(description="d" * 100_000, title="t" * 200),
    _row(due_date=datetime(1, 1, 1, tzinfo=UTC), created_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
    _row(due_date=datetime(2030, 5, 1, 8, 30, tzinfo=timezone(timedelta(hours=2)))),  # not UTC: kept as given
    _row(title="control \x01\x1f\x7f chars"),
]


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """What the raw path makes of such a row: TASK_BY_ID reads the published columns, a record of their values
    in that order, through their codecs."""
    [decoded] = TASK_BY_ID.decoded([tuple(row[name] for name in PUBLIC_TASK_FIELDS)])
    return decoded


@pytest.mark.parametrize("row", ROWS, ids=range(len(ROWS)))
def test_one_task_is_the_models_bytes(row: dict[str, Any]) -> None:
    task = public_task(_decoded(row))
    assert tuple(task) == PUBLIC_TASK_FIELDS and "legacy_id" not in task
    assert task["priority"] == PRIORITY.decode(row["priority"])
    assert PublishedJSON(task).body == TaskPublic.model_validate(task).model_dump_json().encode()


@pytest.mark.parametrize("cursor", [None, "eyJzIjoiLWNyZWF0ZWRfYXQiLCJ2IjoxLCJpIjoyfQ"])
def test_a_page_is_the_models_bytes(cursor: str | None) -> None:
    page = {"items": [public_task(_decoded(row)) for row in ROWS], "next_cursor": cursor}
    assert PublishedJSON(page).body == TaskPage.model_validate(page).model_dump_json().encode()
    assert PublishedJSON({"items": [], "next_cursor": None}).body == b'{"items":[],"next_cursor":null}'


def test_the_published_fields_are_the_tables_but_internal_ones() -> None:
    columns = [c.name for c in Task.__table__.columns]  # type: ignore[attr-defined]
    assert [c for c in columns if c in PUBLIC_TASK_FIELDS] == list(PUBLIC_TASK_FIELDS)
    assert set(columns) - set(PUBLIC_TASK_FIELDS) == {"legacy_id"}
