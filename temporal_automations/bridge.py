"""`automations bridge prefect`: Prefect's event stream in, our events API out.

Subscribes to the Prefect server's websocket (`/api/events/out`, the "prefect" subprotocol:
auth, then a filter whose `occurred.since` asks for a backfill) and forwards every event to
`POST /api/events`. On a dropped connection it reconnects with backoff and asks again from a
minute before the last event it forwarded, so nothing is lost; the replayed overlap is skipped
here by id (and would be deduplicated by the automations anyway).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import websockets

log = logging.getLogger("automations.bridge")

REPLAY_OVERLAP = timedelta(minutes=1)
REMEMBERED_IDS = 50_000
MAX_BACKOFF = 30.0
BATCH = 200


def events_socket_url(prefect_api_url: str) -> str:
    url = prefect_api_url.rstrip("/")
    return url.replace("https://", "wss://", 1).replace("http://", "ws://", 1) + "/events/out"


class PrefectBridge:
    def __init__(
        self,
        prefect_api_url: str,
        automations_api_url: str,
        *,
        prefect_token: str | None = None,
        automations_api_key: str | None = None,
        event_prefixes: list[str] | None = None,
    ) -> None:
        self.socket_url = events_socket_url(prefect_api_url)
        self.events_url = automations_api_url.rstrip("/") + "/events"
        self.prefect_token = prefect_token
        self.headers = (
            {"Authorization": f"Bearer {automations_api_key}"} if automations_api_key else {}
        )
        self.event_prefixes = event_prefixes or ["prefect."]
        self.since = datetime.now(UTC) - REPLAY_OVERLAP
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.forwarded = 0

    def _filter(self) -> dict[str, Any]:
        return {
            "occurred": {
                "since": self.since.isoformat(),
                "until": (datetime.now(UTC) + timedelta(days=365)).isoformat(),
            },
            "event": {"prefix": self.event_prefixes},
        }

    async def run(self, on_connect: Callable[[], Awaitable[None]] | None = None) -> None:
        """Forward until cancelled, reconnecting with backoff."""
        backoff = 0.5
        async with httpx.AsyncClient(timeout=30) as http:
            while True:
                try:
                    await self._session(http, on_connect)
                    backoff = 0.5
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # any drop: wait, then resume from `since`
                    log.warning("event stream lost (%s); reconnecting in %.1fs", error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF)

    async def _session(
        self, http: httpx.AsyncClient, on_connect: Callable[[], Awaitable[None]] | None
    ) -> None:
        async with websockets.connect(self.socket_url, subprotocols=["prefect"]) as socket:  # type: ignore[list-item]
            await socket.send(json.dumps({"type": "auth", "token": self.prefect_token}))
            answer = json.loads(await socket.recv())
            if answer.get("type") != "auth_success":
                raise RuntimeError(f"Prefect refused the bridge: {answer.get('reason', answer)}")
            await socket.send(json.dumps({"type": "filter", "filter": self._filter()}))
            log.info("subscribed to %s since %s", self.socket_url, self.since.isoformat())
            if on_connect is not None:
                await on_connect()
            while True:
                batch = [await socket.recv()]
                # Whatever else already arrived goes in the same request.
                while len(batch) < BATCH:
                    try:
                        batch.append(await asyncio.wait_for(socket.recv(), timeout=0.005))
                    except TimeoutError:
                        break
                await self._forward(http, [json.loads(message) for message in batch])

    async def _forward(self, http: httpx.AsyncClient, messages: list[dict[str, Any]]) -> None:
        events = [m["event"] for m in messages if m.get("type") == "event"]
        fresh = [e for e in events if e["id"] not in self.seen]
        if fresh:
            response = await http.post(self.events_url, json=fresh, headers=self.headers)
            response.raise_for_status()  # not accepted: reconnect and replay from `since`
        for event in fresh:
            self.seen[event["id"]] = None
            occurred = datetime.fromisoformat(event["occurred"])
            self.since = max(self.since, occurred - REPLAY_OVERLAP)
        while len(self.seen) > REMEMBERED_IDS:
            self.seen.popitem(last=False)
        self.forwarded += len(fresh)
