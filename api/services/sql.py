"""Small dialect-aware statement helpers shared by the services."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession


async def insert_ignoring_conflicts(session: AsyncSession, model: type[SQLModel], values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, for writes that two replicas may race on harmlessly."""
    dialect = session.get_bind().dialect.name
    table = model.__table__  # type: ignore[attr-defined]
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(**values)
    await session.exec(stmt.on_conflict_do_nothing())
