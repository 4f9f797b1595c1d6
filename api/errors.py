"""One place that turns every failure into RFC 9457 application/problem+json."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import asyncpg
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskplatform.api.db import DB_UNAVAILABLE_ERRORS, DB_UNAVAILABLE_SQLSTATE_PREFIXES, PoolBusyError

PROBLEM_BASE = "https://taskplatform.io/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"

log = logging.getLogger("taskplatform.api.errors")


def is_data_error(exc: BaseException) -> bool:
    """A value the driver cannot encode or the database refuses (out of range, NUL in text, an invalid
    date): asyncpg's DataError on the direct path (services.sql), SQLAlchemy's DataError, or SQLAlchemy's
    generic DBAPIError around asyncpg's (its asyncpg adapter maps no DataError), told by SQLSTATE class 22."""
    if isinstance(exc, asyncpg.exceptions.DataError | sa.exc.DataError):
        return True
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(exc, sa.exc.DBAPIError) and isinstance(sqlstate, str) and sqlstate.startswith("22")


def is_unavailable_error(exc: BaseException) -> bool:
    """SQLAlchemy's generic DBAPIError around a driver error that means the database cannot be used from here
    (its SQLSTATE: DB_UNAVAILABLE_SQLSTATE_PREFIXES); the narrower classes are DB_UNAVAILABLE_ERRORS."""
    sqlstate = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(DB_UNAVAILABLE_SQLSTATE_PREFIXES)


class ApiError(Exception):
    """An expected failure with a stable problem type, e.g. ApiError(404, "not-found", "Task not found")."""

    def __init__(
        self,
        status: int,
        problem: str,
        detail: str | None = None,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or problem)
        self.status = status
        self.problem = problem
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.headers = headers or {}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not-found", f"{what} not found")


def unauthorized(detail: str = "Not authenticated") -> ApiError:
    return ApiError(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


def database_unavailable(exc: BaseException) -> ApiError:
    # Only the exception's class name: driver messages can carry host names and user names.
    reason = type(getattr(exc, "orig", None) or exc).__name__
    return ApiError(503, "database-unavailable", f"Database is not reachable ({reason}).", headers={"Retry-After": "1"})


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


def problem_response(
    request: Request,
    status: int,
    problem: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> ProblemResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + problem,
        "title": title,
        "status": status,
        "instance": request.url.path,
    }
    if detail:
        body["detail"] = detail
    request_id = getattr(request.state, "request_id", None)
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return ProblemResponse(body, status_code=status, headers=headers)


_STARLETTE_PROBLEMS = {
    404: "not-found",
    405: "method-not-allowed",
    401: "unauthorized",
    400: "bad-request",
    413: "payload-too-large",
}


def http_exception_problem(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
    """The problem for a Starlette HTTPException: its handler's answer, and bodylimit's when one escapes."""
    problem = _STARLETTE_PROBLEMS.get(exc.status_code, f"http-{exc.status_code}")
    detail = exc.detail if isinstance(exc.detail, str) else None
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # Starlette names only the first route that matched the path; list every method the path has.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(
        request, exc.status_code, problem, HTTPStatus(exc.status_code).phrase, detail, headers=headers
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> ProblemResponse:
        return problem_response(request, exc.status, exc.problem, exc.title, exc.detail, headers=exc.headers)

    async def _db_unavailable(request: Request, exc: Exception) -> ProblemResponse:
        return await _api_error(request, database_unavailable(exc))

    for error_class in DB_UNAVAILABLE_ERRORS:
        app.add_exception_handler(error_class, _db_unavailable)

    @app.exception_handler(PoolBusyError)
    async def _pool_busy(request: Request, exc: PoolBusyError) -> ProblemResponse:
        return await _api_error(
            request,
            ApiError(
                503,
                "database-busy",
                "Every database connection is busy and too many requests are waiting for one; retry shortly.",
                headers={"Retry-After": "1"},
            ),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> ProblemResponse:
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in errors[:5])
        return problem_response(
            request,
            422,
            "validation-error",
            "Request validation failed",
            f"Invalid fields: {fields}",
            extra={"errors": jsonable_encoder(errors)},
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> ProblemResponse:
        return http_exception_problem(request, exc)

    async def _data_error(request: Request, exc: Exception) -> ProblemResponse:
        if is_unavailable_error(exc):
            return await _db_unavailable(request, exc)
        if not is_data_error(exc):
            raise exc  # another driver error: a 500, as without this handler
        # The request's validation should have refused the value first: logged with its traceback so that the
        # gap gets closed. Only the class name goes to the client (driver messages quote the values).
        log.warning(
            "the database refused a value of the request",
            exc_info=exc,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
        orig = getattr(exc, "orig", None)  # SQLAlchemy's; its asyncpg adapter's error is caused by asyncpg's
        reason = type(exc if orig is None else orig.__cause__ or orig).__name__
        return problem_response(
            request,
            400,
            "invalid-value",
            HTTPStatus.BAD_REQUEST.phrase,
            f"A value in the request is out of range or holds characters that cannot be stored ({reason}).",
        )

    for error_class in (sa.exc.DBAPIError, asyncpg.exceptions.DataError):
        app.add_exception_handler(error_class, _data_error)


def _allowed_methods(request: Request) -> list[str]:
    """Methods of every API route whose path matches (the app keeps (path regex, methods) pairs)."""
    methods: set[str] = set()
    for path_regex, route_methods in getattr(request.app.state, "route_methods", ()):
        if path_regex.match(request.url.path):
            methods |= route_methods
    return sorted(methods)


def internal_error_body(request_id: str | None, path: str) -> dict[str, Any]:
    """The 500 body. The traceback is logged with the request id; the client only ever sees the id."""
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + "internal-error",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "An unexpected error occurred; quote the request_id when reporting it.",
        "instance": path,
    }
    if request_id:
        body["request_id"] = request_id
    return body
