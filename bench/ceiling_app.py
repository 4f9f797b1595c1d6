"""Baselines for the API benchmark, served by bare FastAPI + uvicorn (no auth, no middleware, no ORM).

- GET /ceiling: a fixed JSON body (the very page of tasks the real list endpoint returned): the
  framework ceiling.
- GET /db-floor: the list endpoint's database work as two plain queries (the token/revocation check and
  the page, in the order the list asks for), straight through an asyncpg pool with bound parameters,
  serialized from the rows. The list itself sends the two as one statement (one round trip); the floor
  keeps the issue's definition. It separates what the database costs from what the platform's own layers
  add.
"""

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import FastAPI

from taskplatform.api.columns import PRIORITY

_BODY: dict[str, Any] = json.loads(os.environ.get("CEILING_BODY", '{"items": [], "next_cursor": null}'))
_DSN = os.environ.get("FLOOR_DSN")
_USER_ID = int(os.environ.get("FLOOR_USER_ID", "0"))
pool: asyncpg.Pool | None = None

AUTH_SQL = """
SELECT u.is_active, r.jti, f.id, f.revoked_at FROM users u
LEFT JOIN revoked_tokens r ON r.jti = $2 LEFT JOIN token_families f ON f.id = $3
WHERE u.id = $1
"""
PAGE_SQL = """
SELECT id, owner_id, title, description, status, priority, due_date, tags, version, created_at, updated_at
FROM tasks WHERE owner_id = $1 ORDER BY created_at DESC, id DESC LIMIT 21
"""


async def _no_reset(_: asyncpg.Connection) -> None:
    """asyncpg resets every connection it takes back (RESET ALL, UNLISTEN, CLOSE ALL...: a round trip of its
    own); these two read-only statements leave nothing to reset, and the floor makes only them."""


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    global pool
    if _DSN:
        pool = await asyncpg.create_pool(_DSN, min_size=4, max_size=20, reset=_no_reset)
    yield
    if pool is not None:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/ceiling")
async def ceiling() -> dict[str, Any]:
    return _BODY


@app.get("/db-floor")
async def db_floor() -> dict[str, Any]:
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.fetchrow(AUTH_SQL, _USER_ID, "0" * 32, "0" * 32)
        rows = await conn.fetch(PAGE_SQL, _USER_ID)
    items = [{**dict(r), "priority": PRIORITY.decode(r["priority"]), "tags": json.loads(r["tags"])} for r in rows[:20]]
    return {"items": items, "next_cursor": None}
