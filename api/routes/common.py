"""Shared by the routers: the OpenAPI descriptions of problem+json responses, query parameters parsed as one
model, and the response of a body already in its published shape."""

import types
import typing
from http import HTTPStatus
from typing import Any, Generic, TypeVar

import pydantic_core
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from taskplatform.api.errors import PROBLEM_MEDIA_TYPE

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
REF_TEMPLATE = "#/components/schemas/{model}"

QueryModel = TypeVar("QueryModel", bound=BaseModel)


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }


def _is_list(annotation: Any) -> bool:
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_is_list(arg) for arg in typing.get_args(annotation))
    return typing.get_origin(annotation) is list


class QueryParameters(Generic[QueryModel]):
    """A route's query parameters parsed as one pydantic model in one validation: `await parse(request)`.

    For the task list served directly (main.DIRECT_ROUTES), in place of FastAPI's handling of the same model
    declared as `Annotated[Model, Query()]`, which publishes it. FastAPI validates each field of such a model on
    its own, re-deriving its annotation, then the model besides (~13% of the list's CPU, docs/benchmarks.md).
    Here the query string is validated in one pass, with the same semantics (a list field takes every
    repetition, any other field the last one, unknown names are ignored) and the same errors (422, a field path
    under "query"): tests/unit/test_query_parameters.py compares the two.
    """

    def __init__(self, model: type[QueryModel]) -> None:
        self.model = model
        self._lists = frozenset(name for name, field in model.model_fields.items() if _is_list(field.annotation))
        self._names = frozenset(model.model_fields)

    async def __call__(self, request: Request) -> QueryModel:
        query = request.query_params
        raw = {
            name: query.getlist(name) if name in self._lists else query[name] for name in query if name in self._names
        }
        try:
            return self.model.model_validate(raw)
        except ValidationError as exc:
            raise RequestValidationError(
                [{**error, "loc": ("query", *error["loc"])} for error in exc.errors(include_url=False)]
            ) from None


class PublishedJSON(Response):
    """A JSON body already in its published shape, serialized by pydantic-core in one pass.

    For the hot reads (one task, a page of tasks): their rows come from the database already typed (column
    types, CHECK constraints on status and priority) and are projected onto the response model's fields
    (services.task_queries.PUBLIC_TASK_FIELDS); FastAPI would validate them against the response model once more
    before serializing, ~5% of the list's CPU. The route keeps its `response_model` for the published
    schema; tests/unit/test_published_json.py checks that the bytes are the model's.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return pydantic_core.to_json(content)
