"""BodyLimitMiddleware around plain ASGI apps, for what the live server tests cannot provoke through the API's
own routes (all of which read their body inside FastAPI's handler): a refusal that escapes the app, one that
comes after the app has started its response, and a declared length refused without the app or the body."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from taskplatform.api.bodylimit import BodyLimitMiddleware, PayloadTooLarge

LIMIT = 1024


def scope_for(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {
        "type": "http", "method": "POST", "scheme": "http", "path": "/upload", "raw_path": b"/upload",
        "query_string": b"", "root_path": "", "headers": headers, "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000), "state": {},
    }  # fmt: skip


CHUNKED = [(b"transfer-encoding", b"chunked")]


class StreamingClient:
    """A client streaming `count` chunks of a chunked body; counts how many the app took."""

    def __init__(self, count: int, size: int = 512) -> None:
        self.count, self.size, self.taken = count, size, 0

    async def __call__(self) -> Message:
        self.taken += 1
        if self.taken > self.count:
            raise AssertionError("read past the end of the body")
        return {"type": "http.request", "body": b"x" * self.size, "more_body": self.taken < self.count}


async def read_all(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


def run(app: Any, scope: Scope, receive: Receive) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(BodyLimitMiddleware(app, max_body_bytes=LIMIT)(scope, receive, send))
    return sent


def test_a_refusal_escaping_the_app_is_answered_as_a_413_problem() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await read_all(receive)  # no FastAPI handler around it: PayloadTooLarge escapes
        raise AssertionError("the body should have been refused")

    client = StreamingClient(10)
    sent = run(app, scope_for(CHUNKED), client)
    start, body = sent
    assert start["status"] == 413
    headers = dict(start["headers"])
    assert headers[b"content-type"] == b"application/problem+json" and headers[b"connection"] == b"close"
    problem = json.loads(body["body"])
    assert problem["type"] == "https://taskplatform.io/problems/payload-too-large" and problem["status"] == 413
    assert problem["instance"] == "/upload"
    assert client.taken == 3  # 3 x 512 > 1024: not one chunk more


def test_a_refusal_after_the_response_started_is_not_turned_into_a_second_response() -> None:
    async def streaming_echo(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            await send({"type": "http.response.body", "body": message["body"], "more_body": True})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    with pytest.raises(PayloadTooLarge):
        asyncio.run(
            BodyLimitMiddleware(streaming_echo, max_body_bytes=LIMIT)(scope_for(CHUNKED), StreamingClient(10), send)
        )
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body", "http.response.body"]
    assert sent[0]["status"] == 200


def test_a_declared_length_over_the_limit_is_refused_without_the_app_or_the_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError("the app should not run")

    async def receive() -> Message:
        raise AssertionError("the body should not be read")

    for length in (b"1025", b"9" * 40):
        start, _ = run(app, scope_for([(b"content-length", length)]), receive)
        assert start["status"] == 413


def test_bodies_within_the_limit_reach_the_app_whole() -> None:
    got: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        got.append(await read_all(receive))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    start, _ = run(app, scope_for(CHUNKED), StreamingClient(2))
    assert start["status"] == 204 and got == [b"x" * LIMIT]
    start, _ = run(app, scope_for([(b"content-length", b"1024")]), StreamingClient(2))
    assert start["status"] == 204 and got[-1] == b"x" * LIMIT
