"""Request bodies over MAX_BODY_BYTES are refused with 413 before they are parsed or the caller authenticated,
whether announced by Content-Length or streamed chunked without one, on a live server: the process does not
grow, and it goes on serving. Bodies up to the limit are handled as before.

The requests are written on raw sockets: the server answers while the client is still sending, then closes
the connection, and the client must still read that answer."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers.support import LiveServer

pytestmark = pytest.mark.slow

LIMIT = 1024 * 1024
HUGE = 24 * 1024 * 1024
PIECE = b"{}," * 21_845  # 64 KB of what `[{},{},...]` is made of: ~24x its size once parsed
PAYLOAD_TOO_LARGE = "https://taskplatform.io/problems/payload-too-large"
BODY_PATHS = ("/api/v1/auth/register", "/api/v1/tasks", "/api/v1/auth/login")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes the client got to send before the server answered or closed

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        problem: dict[str, Any] = json.loads(self.body)
        return problem


def hostile_body(size: int) -> Iterator[bytes]:
    """`[{},{},...,{}]` padded with spaces to exactly `size` bytes, in 64 KB pieces."""
    items = (size - 4) // 3
    full, rest = divmod(items, len(PIECE) // 3)
    yield b"["
    for _ in range(full):
        yield PIECE
    yield b"{}," * rest + b"{}]" + b" " * (size - 4 - 3 * items)


def padded_json(document: dict[str, Any], size: int) -> bytes:
    """The document followed by whitespace up to exactly `size` bytes: still that document."""
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


def post(server: LiveServer, path: str, body: Iterator[bytes] | bytes, size: int, *, chunked: bool) -> Answer:
    """POST the body, stopping as soon as the server answers; then read the answer to its end."""
    pieces = iter([body]) if isinstance(body, bytes) else body
    content_type = "application/x-www-form-urlencoded" if path.endswith("/login") else "application/json"
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n{framing}\r\n\r\n"
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(head.encode())
            for piece in pieces:
                if select.select([sock], [], [], 0)[0]:
                    break  # answered already
                sock.sendall(b"%x\r\n%b\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading; its answer is in the socket's receive buffer
        return _read_answer(sock, sent)


def _read_answer(sock: socket.socket, sent: int) -> Answer:
    data = b""
    while b"\r\n\r\n" not in data or len(data) < _answer_length(data):
        try:
            received = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not received:
            break
        data += received
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return Answer(int(status_line.split()[1]), headers, body[: int(headers.get("content-length", len(body)))], sent)


def _answer_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(head) + 4 + int(value)
    return len(data) + 1  # no length: read until the server closes


def rss_kb(server: LiveServer) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(live_server_factory: Any) -> LiveServer:
    live: LiveServer = live_server_factory(extra_env={"MAX_BODY_BYTES": str(LIMIT)})
    return live


def _assert_refused(answer: Answer) -> None:
    assert answer.status == 413, (answer.status, answer.body[:300])
    problem = answer.problem()
    assert problem["type"] == PAYLOAD_TOO_LARGE and problem["status"] == 413, problem
    assert answer.headers.get("connection") == "close"


def _assert_serving(server: LiveServer, n: int) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as fresh:  # a new connection
        assert fresh.get("/healthz").status_code == 200
        body = {"email": f"after{n}@x.io", "password": "password1"}
        assert fresh.post("/api/v1/auth/register", json=body).status_code == 201


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_bodies_are_refused_before_parsing_and_the_process_does_not_grow(
    server: LiveServer, chunked: bool
) -> None:
    # Warm up what every request allocates once (routes, pools, a body read at the limit) before measuring.
    for n, path in enumerate(BODY_PATHS):
        post(server, path, padded_json({}, LIMIT), LIMIT, chunked=chunked)
        _assert_serving(server, n)
    before = rss_kb(server)
    for n, path in enumerate(BODY_PATHS):
        answer = post(server, path, hostile_body(HUGE), HUGE, chunked=chunked)
        _assert_refused(answer)
        assert answer.sent < HUGE // 2, f"{answer.sent} of {HUGE} bytes were taken before the refusal"
        _assert_serving(server, 10 + n)
    grown_kb = rss_kb(server) - before
    assert grown_kb < 8 * 1024, f"the server grew by {grown_kb} kB"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_at_the_limit_is_handled_and_one_byte_more_is_refused(server: LiveServer, chunked: bool) -> None:
    registration = {"email": "limit@x.io", "password": "password1"}
    at_limit = post(server, "/api/v1/auth/register", padded_json(registration, LIMIT), LIMIT, chunked=chunked)
    assert at_limit.status == 201, at_limit.body[:300]
    unauthenticated = post(server, "/api/v1/tasks", padded_json({"title": "t"}, LIMIT), LIMIT, chunked=chunked)
    assert unauthenticated.status == 401, unauthenticated.body[:300]
    invalid = post(server, "/api/v1/auth/register", padded_json({"email": 1}, LIMIT), LIMIT, chunked=chunked)
    assert invalid.status == 422, invalid.body[:300]

    over = post(server, "/api/v1/auth/register", padded_json(registration, LIMIT + 1), LIMIT + 1, chunked=chunked)
    _assert_refused(over)
    _assert_serving(server, 0)
