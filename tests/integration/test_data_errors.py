"""A value the database or its driver refuses is a 400 problem, never a 500, whichever way the statement went:
straight to asyncpg (the hot routes' path, services.sql) or through a SQLAlchemy session. Real statements on
the real PostgreSQL, from routes of a small app that has the API's error handlers; other driver errors stay
a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from taskplatform.api.db import async_url
from taskplatform.api.errors import install_error_handlers

PROBLEM = "application/problem+json"


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    app = FastAPI()
    install_error_handlers(app)
    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)

    @app.get("/direct/{case}")
    async def direct(case: str) -> dict[str, Any]:
        statement, value = {"huge-int": ("SELECT $1::bigint", 2**63), "nul": ("SELECT $1::text", "a\x00b")}[case]
        connection = await asyncpg.connect(dsn)
        try:
            return {"row": list(await connection.fetchrow(statement, value))}
        finally:
            await connection.close()

    @app.get("/session/{case}")
    async def session(case: str) -> dict[str, Any]:
        statement, params = {
            "nul": ("SELECT CAST(:v AS text)", {"v": "a\x00b"}),
            "bad-date": ("SELECT CAST(:v AS text)::date", {"v": "2030-02-30"}),
            "syntax": ("SELEC 1", {}),
        }[case]
        engine = create_async_engine(async_url(database_url), poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                return {"row": list((await connection.execute(sa.text(statement), params)).one())}
        finally:
            await engine.dispose()

    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.mark.parametrize("path", ["/direct/huge-int", "/direct/nul", "/session/nul", "/session/bad-date"])
def test_values_the_database_refuses_are_a_400_problem(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["type"] == "https://taskplatform.io/problems/invalid-value"
    assert "\x00" not in problem["detail"] and "2030-02-30" not in problem["detail"]  # no value is quoted back


def test_other_driver_errors_are_still_a_500(client: TestClient) -> None:
    assert client.get("/session/syntax").status_code == 500
