"""The database layer, below the services: the engine, the pool's gate, statements and the one owner of every
connection (Database)."""

from taskplatform.api.db.database import Database
from taskplatform.api.db.engine import (
    CONNECTION_LOST_ERRORS,
    DB_UNAVAILABLE_ERRORS,
    DB_UNAVAILABLE_SQLSTATE_PREFIXES,
    async_url,
    create_db_engine,
    create_probe_engine,
    sync_url,
)
from taskplatform.api.db.gate import PoolBusyError
from taskplatform.api.db.statements import Row, Statement, StatementError

__all__ = [
    "CONNECTION_LOST_ERRORS",
    "DB_UNAVAILABLE_ERRORS",
    "DB_UNAVAILABLE_SQLSTATE_PREFIXES",
    "Database",
    "PoolBusyError",
    "Row",
    "Statement",
    "StatementError",
    "async_url",
    "create_db_engine",
    "create_probe_engine",
    "sync_url",
]
