"""OpenAPI descriptions of the problem+json error responses, shared by the routers."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from taskplatform.api.errors import PROBLEM_MEDIA_TYPE

_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {PROBLEM_MEDIA_TYPE: {"schema": _PROBLEM_REF}},
        }
        for status in statuses
    }
