"""The HTTP edge of a real started stack (dev server, worker, API behind an API key): bodies
refused while they stream into a real server, a definition just under the limit created, and a
masked secret sent back in a PUT keeps the stored one. What the app refuses before it needs its
store (bad inputs, the key, limits, the OpenAPI document) is tested in process:
tests/api/test_app_edge.py."""

from __future__ import annotations

import select
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from temporal_automations.domain.automations import SECRET_MASK
from tests.stack import Stack, running_stack
from tests.support import Receiver

KEY = "edge-key"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(api_key=KEY) as started:
        yield started


def definition(**fields: Any) -> dict[str, Any]:
    return {
        "name": "edge",
        "trigger": {"posture": "Reactive", "expect": [f"edge.{uuid.uuid4()}"]},
        "actions": [{"type": "do-nothing"}],
        **fields,
    }


def test_a_definition_just_under_the_limit_is_created_not_a_503(api: httpx.Client) -> None:
    answer = api.post("/automations/", json=definition(description="x" * 950_000))
    assert answer.status_code == 201, answer.text[:300]
    assert api.delete(f"/automations/{answer.json()['id']}").status_code == 204


def _chunked_post(port: int, path: str, chunk: bytes, chunks: int) -> tuple[int, int]:
    """POST `chunks` chunks of `chunk` without a Content-Length, reading the answer as soon as
    there is one: (status, chunks sent before it came). An API that reads the whole body first
    answers only after the last chunk."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: edge\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent = 0
        for sent in range(1, chunks + 1):  # noqa: B007 (how many were sent is the result)
            if select.select([sock], [], [], 0)[0]:
                break  # an answer came before the body ended
            try:
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                break  # the server answered and closed
        answer = b""
        while b"\r\n\r\n" not in answer:
            try:
                more = sock.recv(65536)
            except ConnectionResetError:
                break
            if not more:
                break
            answer += more
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    return status, sent


def test_the_size_limit_is_enforced_while_the_body_streams(stack: Stack) -> None:
    # 1 MB definitions: refused after about 1 MB of a 40 MB stream.
    status, sent = _chunked_post(stack.api_port, "/api/automations/", b"x" * 65_536, 640)
    assert status == 413
    assert sent < 640
    # 16 MB event batches: refused after about 16 MB of a 64 MB stream.
    status, sent = _chunked_post(stack.api_port, "/api/events", b" " * 262_144, 256)
    assert status == 413
    assert sent < 256


def test_a_put_that_sends_back_masked_secrets_keeps_the_stored_ones(api: httpx.Client) -> None:
    receiver = Receiver().start()
    try:
        name = f"edge.masked.{uuid.uuid4()}"
        body = {
            "name": "masked",
            "trigger": {"posture": "Reactive", "expect": [name]},
            "actions": [
                {
                    "type": "send-notification",
                    "url": f"json://127.0.0.1:{receiver.url.rsplit(':', 1)[1]}/kept-path",
                },
                {
                    "type": "call-webhook",
                    "url": f"{receiver.url}/hook",
                    "headers": {"X-Token": "kept-token"},
                },
            ],
        }
        created = api.post("/automations/", json=body)
        assert created.status_code == 201, created.text
        shown = created.json()
        assert shown["actions"][0]["url"] == f"json://{SECRET_MASK}"
        assert shown["actions"][1]["headers"] == {"X-Token": SECRET_MASK}

        edited = {key: shown[key] for key in body} | {"name": "masked, renamed"}
        replaced = api.put(f"/automations/{shown['id']}", json=edited)
        assert replaced.status_code == 200, replaced.text
        event = {"event": name, "resource": {"prefect.resource.id": "edge.masked"}}
        assert api.post("/events", json=[event]).status_code == 204
        (notified,) = receiver.wait_for(1, "/kept-path", timeout=30)
        (hooked,) = receiver.wait_for(1, "/hook", timeout=30)
        assert notified.method == "POST"
        assert hooked.headers["X-Token"] == "kept-token"
    finally:
        receiver.stop()
