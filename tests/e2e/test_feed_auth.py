"""With API_KEY set, the feed's HTTP routes need the key, and its websockets need it in
Prefect's auth handshake (they cannot take an Authorization header from a browser)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.stack import Stack, running_stack

KEY = "feed-test-key"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(api_key=KEY) as running:
        yield running


def test_http_routes_need_the_key(stack: Stack) -> None:
    assert httpx.post(f"{stack.api_url}/events/filter", json={}).status_code == 401
    assert httpx.post(f"{stack.api_url}/automations/test", json={}).status_code == 401
    with stack.sync_client() as api:
        assert api.post("/events/filter", json={}).status_code == 200


async def handshake(stack: Stack, token: str | None, subprotocol: bool = True) -> str:
    """What the server says after the auth message: its first message, or how it closed."""
    url = stack.api_url.replace("http", "ws") + "/events/out"
    protocols = ["prefect"] if subprotocol else None
    try:
        async with websockets.connect(url, subprotocols=protocols) as socket:  # type: ignore[arg-type]
            await socket.send(json.dumps({"type": "auth", "token": token}))
            return json.loads(await socket.recv())["type"]
    except ConnectionClosed as closed:
        return f"closed {closed.rcvd.code if closed.rcvd else None}"
    except InvalidStatus as refused:  # closed before the upgrade: an HTTP refusal
        return f"refused {refused.response.status_code}"


async def test_websockets_check_the_key_in_the_handshake(stack: Stack) -> None:
    assert await handshake(stack, KEY) == "auth_success"
    assert await handshake(stack, "wrong") == "closed 1008"
    assert await handshake(stack, None) == "closed 1008"
    # Without Prefect's subprotocol there is no handshake to carry the key: refused.
    assert await handshake(stack, KEY, subprotocol=False) == "refused 403"
