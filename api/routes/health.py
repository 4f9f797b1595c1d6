from __future__ import annotations

from fastapi import APIRouter, Request

from taskplatform.api.db import DB_UNAVAILABLE_ERRORS
from taskplatform.api.errors import database_unavailable
from taskplatform.api.routes.common import problems
from taskplatform.api.schemas import HealthStatus, ReadyStatus

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthStatus)
async def healthz() -> HealthStatus:
    """Liveness: the process serves requests. Never touches the database, so a DB outage does not restart pods."""
    return HealthStatus(status="ok")


@router.get("/readyz", response_model=ReadyStatus, responses=problems(503))
async def readyz(request: Request) -> ReadyStatus:
    """Readiness: the database answers `SELECT 1` on the probe's own connection (not queued behind requests)."""
    try:
        await request.app.state.database.ping()
    except DB_UNAVAILABLE_ERRORS as exc:
        raise database_unavailable(exc) from exc
    return ReadyStatus(status="ready", database="ok")
