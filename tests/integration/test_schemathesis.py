"""Property-based fuzzing of the whole OpenAPI surface against a real server process.

No 5xx, and every response (status, content type, headers, body) matches the published schema.
"""

import os
import uuid
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from helpers.support import TEST_JWT_SECRET, LiveServer, auth_headers, register_and_login
from hypothesis import HealthCheck, settings
from schemathesis.checks import negative_data_rejection, positive_data_acceptance
from schemathesis.core.parameters import ParameterLocation

from taskplatform.api.config import Settings
from taskplatform.api.main import create_app

# Operations after which the caller's token (or every token of the account) may be refused.
ENDS_ITS_ACCOUNT_OR_SESSIONS = {
    ("/api/v1/auth/logout", "POST"),
    ("/api/v1/auth/logout-all", "POST"),
    ("/api/v1/users/me", "DELETE"),
    ("/api/v1/users/me/password", "PATCH"),
}
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
PASSWORD = "fuzz-password"

# The spec is a pure function of the code, so it is loaded at collection time without a database.
_spec = create_app(
    Settings(environment="test", jwt_secret=TEST_JWT_SECRET, database_url="sqlite://")  # type: ignore[arg-type]
).openapi()
schema = schemathesis.openapi.from_dict(_spec)


def _is_free_text(parameter_schema: dict) -> bool:
    """A string (or list of strings) with no enum and no format: any text a query string carries is valid."""
    for choice in parameter_schema.get("anyOf", [parameter_schema]):
        choice = choice.get("items", choice)
        if choice.get("type") == "string" and "enum" not in choice and "format" not in choice:
            return True
    return False


# Per path and method: the query parameters whose every serialised value is valid text.
FREE_TEXT_QUERY = {
    (path, method.upper()): {
        p["name"] for p in operation.get("parameters", []) if p["in"] == "query" and _is_free_text(p["schema"])
    }
    for path, operations in _spec["paths"].items()
    for method, operation in operations.items()
}


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[LiveServer]:
    # Fuzzed logins and password changes fail by the hundred from this one address: not what is tested here.
    live = LiveServer(database_url, extra_env={"LOGIN_FREE_FAILURES_PER_CLIENT": "1000000"})
    yield live
    live.stop()


@pytest.fixture(scope="module")
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def bearer(http: httpx.Client) -> str:
    return register_and_login(http, "fuzz@x.io", PASSWORD)["Authorization"]


@pytest.fixture(autouse=True)
def _clean_tables() -> None:
    """The fuzzed tables are kept across examples on purpose (more state to trip over)."""


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_schema(
    case: schemathesis.Case, server: LiveServer, http: httpx.Client, bearer: str
) -> None:
    headers = {"Authorization": bearer}
    if (case.path, case.method) in ENDS_ITS_ACCOUNT_OR_SESSIONS:
        # An account of its own per example, so that logging out, changing the password or deleting the account
        # does not starve the other operations of their token.
        headers = auth_headers(register_and_login(http, f"fuzz-{uuid.uuid4().hex}@x.io", PASSWORD))
    # Some schema-valid requests are rightly refused for reasons no schema can express: a made-up cursor
    # (400, cursors are opaque), an If-Match that names another version (412), an email on a reserved
    # domain such as .test (422). Those paths have their own tests; every other check stays on.
    excluded = [positive_data_acceptance]
    negative = {location for location, info in case.meta.components.items() if info.mode.is_negative}
    if negative == {ParameterLocation.QUERY} and set(case.query or {}) & FREE_TEXT_QUERY[(case.path, case.method)]:
        # A query string is text: a "negative" value for a free-text parameter (`tag=true`, meant as a
        # boolean) arrives as a valid string and is rightly accepted. Schemathesis 4.32 still reports those
        # for arrays of strings (its issues #2312, #4600). The list's parameter validation has its own tests.
        excluded.append(negative_data_rejection)
    case.call_and_validate(base_url=server.base_url, headers=headers, excluded_checks=excluded)


def test_every_operation_that_ends_sessions_is_in_the_document() -> None:
    """A renamed route must not silently fall back to the shared token (and starve the rest of the run)."""
    assert all(method.lower() in _spec["paths"].get(path, {}) for path, method in ENDS_ITS_ACCOUNT_OR_SESSIONS)
