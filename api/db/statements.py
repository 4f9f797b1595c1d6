"""Statements whose parameters are declared, checked when the statement is built, and bound the same way on
both of the ways a statement runs.

A statement runs either through SQLAlchemy (a session or a connection: SQLite, the reference path, every
session) or straight on the asyncpg connection (the hot routes, db.connections): compiled once, its values
bound by position. That second way skips SQLAlchemy's per-execution work, measured at ~2/3 of the API's CPU
per query (docs/benchmarks.md), but it must give what SQLAlchemy gives: here it applies the same column
types' bind and result processors (TypeEngine.bind_processor and result_processor, the public API
SQLAlchemy's own execution uses), so a codec (api/columns.py) runs on both ways.

Every value is a named parameter, declared with the statement: a parameter the SQL does not use, or one it
uses and the declaration lacks, fails when the statement is built; a call binding other names than the
declared ones fails on either way, on SQLite as on PostgreSQL (not only where asyncpg binds by position).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql.asyncpg import PGDialect_asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

Row = dict[str, Any]
if TYPE_CHECKING:
    AnySelect = sa.Select[*tuple[Any, ...]]  # SQLAlchemy 2.0 (the lowest allowed) cannot subscript it at run time
else:
    AnySelect = sa.Select

_ASYNCPG = PGDialect_asyncpg()  # type: ignore[no-untyped-call]


class StatementError(Exception):
    """A statement's parameters are not the ones declared: a programming error, found when it is built or
    first run."""


def _processor(type_: sa.types.TypeEngine[Any], *, result: bool) -> Any:
    implementation = type_.dialect_impl(_ASYNCPG)
    return implementation.result_processor(_ASYNCPG, None) if result else implementation.bind_processor(_ASYNCPG)


class Statement:
    """A SELECT (or a write inside one that returns rows) with every value a declared, named parameter."""

    def __init__(self, query: AnySelect, parameters: Iterable[str]) -> None:
        self.query = query
        self.parameters = frozenset(parameters)
        compiled = query.compile(dialect=_ASYNCPG)
        valued = sorted(name for name, bind in compiled.binds.items() if not bind.required)
        if valued:
            raise StatementError(f"values in the statement instead of named parameters: {valued}")
        used = set(compiled.binds)
        if used != self.parameters:
            raise StatementError(
                f"parameters used but not declared: {sorted(used - self.parameters)}; "
                f"declared but not used: {sorted(self.parameters - used)}"
            )
        self.sql = compiled.string
        # In asyncpg's positional order ($1, $2, ...; a name used twice is bound once), with each parameter's
        # bind processor (None: the value goes as it is).
        self._binds = tuple(
            (name, _processor(compiled.binds[name].type, result=False))
            for name in dict.fromkeys(compiled.positiontup or ())
        )
        columns = list(query.selected_columns)
        self._names = tuple(column.name for column in columns)
        if len(set(self._names)) != len(self._names):
            raise StatementError(f"result columns share a name: {list(self._names)}")
        self._results = tuple(
            (column.name, processor)
            for column in columns
            if (processor := _processor(column.type, result=True)) is not None
        )

    def _checked(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        if params.keys() != self.parameters:
            raise StatementError(
                f"bound {sorted(params)}, the statement takes {sorted(self.parameters)}: {self.sql[:200]}"
            )
        return params

    def driver_arguments(self, params: Mapping[str, Any]) -> list[Any]:
        """The values for asyncpg, in the statement's order, each through its column type's bind processor."""
        self._checked(params)
        return [params[name] if process is None else process(params[name]) for name, process in self._binds]

    def decoded(self, records: Iterable[Any]) -> list[Row]:
        """asyncpg records as rows, each value through its column type's result processor."""
        names = self._names
        rows = [dict(zip(names, record, strict=True)) for record in records]
        for name, process in self._results:
            for row in rows:
                row[name] = process(row[name])
        return rows

    async def fetch_driver(self, driver: Any, params: Mapping[str, Any]) -> list[Row]:
        """On an asyncpg connection: outside any transaction, a single statement is atomic and commits on its
        own, which is what its callers want."""
        return self.decoded(await driver.fetch(self.sql, *self.driver_arguments(params)))

    async def fetch_sqlalchemy(self, source: AsyncConnection | AsyncSession, params: Mapping[str, Any]) -> list[Row]:
        """Through SQLAlchemy, which runs the same processors itself."""
        connection = await source.connection() if isinstance(source, AsyncSession) else source
        result = await connection.execute(self.query, dict(self._checked(params)))
        return [dict(row) for row in result.mappings()]


async def insert_ignoring_conflicts(session: AsyncSession, model: type[SQLModel], values: dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING, for writes that two replicas may race on harmlessly."""
    dialect = session.get_bind().dialect.name
    table = model.__table__  # type: ignore[attr-defined]
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table).values(**values)
    await session.exec(stmt.on_conflict_do_nothing())
