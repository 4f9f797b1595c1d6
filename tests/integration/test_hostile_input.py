"""Hostile values in every input the published OpenAPI document declares, against a live server.

Each query, header and path parameter, each field of a JSON or form body, and the bearer token, gets 100 KB
values built to make regular expressions and parsers backtrack (digit runs, "a." runs, whitespace runs, a
mix; in the URL, as much of them as the server takes there), the rest of the request being valid. Every
answer must be a 4xx problem within a second, and the event loop must stay free meanwhile: /healthz, polled
from another thread, answers 200 within a second throughout. The inputs are read from the document, so a new
parameter or field is covered without touching this test.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from helpers.support import LiveServer, auth_headers, register_and_login

pytestmark = pytest.mark.slow

PROBLEM = "application/problem+json"
SIZE = 100_000
URL_VALUE_MAX = 60_000  # encoded, in a request line the server takes up to 64 KB of
DEADLINE_S = 1.0
HOSTILE = {
    "digit run": "1" * SIZE + "x",
    "spaces then digits": " " * (SIZE // 2) + "1" * (SIZE // 2) + "x",
    "a. run": "a." * (SIZE // 2) + "!",
    "whitespace run": "1" + " \t" * (SIZE // 2) + "x",
    "mix": ("1.5e+9 a.-Tz:@<\"'" * (SIZE // 16))[:SIZE] + "x",
}
# What the walk must reach, so that it cannot pass by testing nothing: (where, name).
EXPECTED_TARGETS = {
    ("body", "email"), ("body", "password"), ("body", "full_name"), ("body", "username"), ("body", "scope"),
    ("body", "client_secret"), ("body", "refresh_token"), ("body", "title"), ("body", "description"),
    ("body", "due_date"), ("body", "tags"), ("query", "due_after"), ("query", "due_before"), ("query", "q"),
    ("query", "tag"), ("query", "cursor"), ("query", "limit"), ("query", "sort"), ("header", "idempotency-key"),
    ("header", "if-match"), ("header", "if-none-match"), ("path", "task_id"), ("security", "authorization"),
}  # fmt: skip
PASSWORD = "hostile-password"


@dataclass
class Request:
    """One request of an operation: every part valid, one part replaced by a hostile value later."""

    method: str
    path: str
    path_params: dict[str, str] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None

    def send(self, port: int) -> Answer:
        """Over http.client on a connection of its own: httpx refuses URLs over 64 KB before sending them."""
        url = self.path
        for name, value in self.path_params.items():
            url = url.replace("{" + name + "}", quote(value, safe=""))
        if self.query:
            url += "?" + urlencode(self.query, doseq=True)
        headers = dict(self.headers)
        body: bytes | None = None
        if self.json is not None:
            body, headers["Content-Type"] = json.dumps(self.json).encode(), "application/json"
        elif self.form is not None:
            body, headers["Content-Type"] = urlencode(self.form).encode(), "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request(self.method, url, body=body, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, response.getheader("content-type"), response.read())
        finally:
            connection.close()


@dataclass
class Answer:
    status: int
    content_type: str | None
    body: bytes


def resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def is_array(spec: dict, schema: dict) -> bool:
    return any(resolve(spec, s).get("type") == "array" for s in schema.get("anyOf", [schema]))


@dataclass
class Context:
    spec: dict
    bearer: dict[str, str]
    task_id: str
    refresh_token: str
    email: str


def valid_request(ctx: Context, method: str, path: str, operation: dict) -> Request:
    """The operation's request with every declared part valid: the path's ids name a task of the caller's,
    the body holds its required fields (unknown operations fail here, so that a new one gets a baseline)."""
    request = Request(method.upper(), path)
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            assert parameter["name"] == "task_id", f"no valid value for path parameter {parameter['name']}"
            request.path_params["task_id"] = ctx.task_id
    if operation.get("security"):
        request.headers.update(ctx.bearer)
    content = operation.get("requestBody", {}).get("content", {})
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/auth/register"): {"email": "new-user@x.io", "password": PASSWORD},
        ("POST", "/api/v1/auth/login"): {"username": ctx.email, "password": PASSWORD},
        ("POST", "/api/v1/auth/refresh"): {"refresh_token": ctx.refresh_token},
        ("POST", "/api/v1/tasks"): {"title": "valid"},
        ("PATCH", "/api/v1/tasks/{task_id}"): {"title": "valid"},
        ("PATCH", "/api/v1/users/me/password"): {"current_password": PASSWORD, "new_password": "another-password"},
    }
    if not content:
        return request
    assert (request.method, path) in bodies, f"{method} {path}: add a valid body to this table"
    if "application/json" in content:
        request.json = dict(bodies[(request.method, path)])
    elif "application/x-www-form-urlencoded" in content:
        request.form = dict(bodies[(request.method, path)])
    else:
        raise AssertionError(f"{method} {path}: bodies of {sorted(content)} are not walked yet")
    return request


def fit_in_url(value: str) -> str:
    """The value cut (its last character kept: the one that makes a backtracking match fail) to what the
    server takes in a URL: uvicorn's parser refuses a request line over 64 KB with a plain-text 400 before
    the app sees it, so the largest values the app can meet there are a little shorter."""
    low, high = 1, len(value) - 1
    while low < high:
        middle = (low + high + 1) // 2
        if len(quote(value[:middle] + value[-1], safe="")) <= URL_VALUE_MAX:
            low = middle
        else:
            high = middle - 1
    return value[:low] + value[-1]


Target = tuple[str, str]  # (where, name): ("query", "due_after"), ("body", "title"), ...


def hostile_variants(ctx: Context, method: str, path: str, operation: dict) -> Iterator[tuple[Target, str, Request]]:
    """(target, kind of value, request) for every declared input and hostile value; arrays get the value as
    themselves and as their one item."""
    for kind, value in HOSTILE.items():
        for parameter in operation.get("parameters", []):
            where, name = parameter["in"], parameter["name"]
            request = valid_request(ctx, method, path, operation)
            if where == "query":
                shrunk = fit_in_url(value)
                request.query[name] = [shrunk] if is_array(ctx.spec, parameter["schema"]) else shrunk
            elif where == "header":
                request.headers[name] = value.strip()  # a field value's edge whitespace is no part of it
            elif where == "path":
                request.path_params[name] = fit_in_url(value)
            else:
                raise AssertionError(f"{method} {path}: parameters in {where} are not walked yet")
            yield (where, name), kind, request
        if operation.get("security"):
            request = valid_request(ctx, method, path, operation)
            request.headers["Authorization"] = f"Bearer {value.strip()}"
            yield ("security", "authorization"), kind, request
        for media_type, body in operation.get("requestBody", {}).get("content", {}).items():
            properties = resolve(ctx.spec, body["schema"]).get("properties", {})
            assert properties, f"{method} {path}: a {media_type} body without fields"
            for name, schema in properties.items():
                in_json = media_type == "application/json"
                shapes = [value, [value]] if in_json and is_array(ctx.spec, schema) else [value]
                for shaped in shapes:
                    request = valid_request(ctx, method, path, operation)
                    (request.json if request.json is not None else request.form)[name] = shaped  # type: ignore[index]
                    yield ("body", name), kind, request


@dataclass
class Poller:
    """/healthz from a thread of its own, as fast as it answers: what the event loop's other clients see."""

    base_url: str
    samples: list[tuple[int, float]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=10) as client:
            while not self.stop.is_set():
                start = time.monotonic()
                try:
                    status = client.get("/healthz").status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((status, time.monotonic() - start))
                time.sleep(0.02)


def walk(ctx: Context, port: int) -> tuple[set[Target], list[str], int]:
    """Every hostile variant of every operation: the targets reached, what went wrong, how many were sent."""
    covered: set[Target] = set()
    failures: list[str] = []
    sent = 0
    for path, operations in ctx.spec["paths"].items():
        for method, operation in operations.items():
            for target, kind, request in hostile_variants(ctx, method, path, operation):
                covered.add(target)
                label = f"{method.upper()} {path} {target[0]} {target[1]} ({kind})"
                start = time.monotonic()
                try:
                    response = request.send(port)
                except TimeoutError:
                    failures.append(f"{label}: no answer in 10 s")
                    return covered, failures, sent  # the server is stuck: nothing more to learn
                elapsed = time.monotonic() - start
                sent += 1
                if not (400 <= response.status < 500 and response.content_type == PROBLEM):
                    failures.append(f"{label}: {response.status} {response.content_type} {response.body[:120]!r}")
                elif elapsed > DEADLINE_S:
                    failures.append(f"{label}: {elapsed:.2f} s")
    return covered, failures, sent


@pytest.fixture
def server(live_server_factory: Any) -> LiveServer:
    live: LiveServer = live_server_factory()
    return live


def new_context(client: httpx.Client, spec: dict, email: str) -> Context:
    """A user of its own, logged in, with a task."""
    tokens = register_and_login(client, email, PASSWORD)
    bearer = auth_headers(tokens)
    task = client.post("/api/v1/tasks", json={"title": "target"}, headers=bearer)
    assert task.status_code == 201, task.text
    return Context(spec, bearer, str(task.json()["id"]), tokens["_refresh"], email)


def test_every_published_input_refuses_hostile_values_quickly_and_the_loop_stays_free(server: LiveServer) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        spec = client.get("/openapi.json").json()
        ctx = new_context(client, spec, "hostile@x.io")
        poller = Poller(server.base_url)
        thread = threading.Thread(target=poller.run, daemon=True)
        thread.start()
        try:
            covered, failures, sent = walk(ctx, server.port)
        finally:
            poller.stop.set()
            thread.join(15)

        assert not failures, f"{len(failures)} of {sent} hostile requests:\n" + "\n".join(failures)
        assert covered >= EXPECTED_TARGETS, f"the walk missed {sorted(EXPECTED_TARGETS - covered)}"
        slow = [(status, round(elapsed, 2)) for status, elapsed in poller.samples if status != 200 or elapsed > 1]
        assert len(poller.samples) >= 10 and not slow, f"/healthz during the walk: {slow}"

        # The valid requests the variants were built from are accepted, so the refusals were the values'. Each
        # with a user of its own: some end the session, the account or the task the others would use.
        for n, (path, method) in enumerate((p, m) for p, ops in spec["paths"].items() for m in ops):
            operation = spec["paths"][path][method]
            request = valid_request(new_context(client, spec, f"valid{n}@x.io"), method, path, operation)
            response = request.send(server.port)
            assert response.status < 400, (method, path, response.status, response.body[:300])
