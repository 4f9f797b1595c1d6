"""Request bodies over `max_body_bytes` are refused with 413, before anything reads or parses them and so
before the caller is authenticated (FastAPI reads a route's body before it solves its dependencies).

A pure ASGI middleware: a body announced larger by its Content-Length is refused without reading a byte of
it; a chunked one is counted as the app reads it, and refused as soon as the count passes the limit, so no
more than the limit plus the server's one chunk is ever held. The refusal ends the connection: the rest of
the body is still on its way, and reading it to keep the connection would be the work the limit refuses.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskplatform.api.errors import http_exception_problem

_LENGTH_DIGITS_MAX = 18  # more digits would be more than any limit; int() is not asked to read them


class PayloadTooLarge(HTTPException):
    """Raised from the app's `receive`: FastAPI lets an HTTPException out of its body reading unchanged (any
    other exception there becomes a 400), and errors.py's handler answers it."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413, f"The request body is larger than the limit of {limit} bytes.", headers={"Connection": "close"}
        )


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        counting = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = _length(value)
                counting = counting or declared is None
            elif name == b"transfer-encoding":
                counting = True
        if declared is not None and declared > self.limit:
            await self._refuse(scope, receive, send)
            return
        if counting:
            await self._counting(scope, receive, send)
        else:
            # The server's parser delivers exactly Content-Length bytes, and none without either header:
            # nothing to count on the way.
            await self.app(scope, receive, send)

    async def _counting(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.limit
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            if received > limit:  # asked again after the refusal: read no further
                raise PayloadTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except PayloadTooLarge:
            if started:
                raise  # a response under way cannot become a 413; the server ends the connection
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = http_exception_problem(Request(scope), PayloadTooLarge(self.limit))
        await response(scope, receive, send)


def _length(value: bytes) -> int | None:
    """A Content-Length's value; None if it is not one (the server's parser refuses those first)."""
    if not value.isdigit():
        return None
    return int(value) if len(value) <= _LENGTH_DIGITS_MAX else 10**_LENGTH_DIGITS_MAX
