"""One place that turns every failure into RFC 9457 application/problem+json."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskplatform.api.db import DB_UNAVAILABLE_ERRORS, PoolBusyError

PROBLEM_BASE = "https://taskplatform.io/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"


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


_STARLETTE_PROBLEMS = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized", 400: "bad-request"}


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
        problem = _STARLETTE_PROBLEMS.get(exc.status_code, f"http-{exc.status_code}")
        detail = exc.detail if isinstance(exc.detail, str) else None
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; list every method the path has.
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(
            request, exc.status_code, problem, HTTPStatus(exc.status_code).phrase, detail, headers=headers
        )


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
