"""The feed on a real PostgreSQL behind the real stack, and what happens when that database
goes away: events are still accepted and evaluated, and the feed says it has a gap."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.postgres_server import PostgresServer
from tests.stack import Stack, running_stack
from tests.support import event_json, eventually, send, settled


@pytest.fixture(scope="module")
def stack(postgres: PostgresServer) -> Iterator[Stack]:
    async def database() -> None:
        connection = await postgres.connect()
        try:
            await connection.execute("CREATE DATABASE feed")
        finally:
            await connection.close()

    asyncio.run(database())
    url = postgres.url.rsplit("/", 1)[0] + "/feed"
    with running_stack(extra_env={"EVENTS_STORE_URL": url}) as running:
        yield running


def test_feed_on_postgresql_and_a_gap_when_it_is_down(
    stack: Stack, postgres: PostgresServer
) -> None:
    kind = f"pg.{uuid.uuid4().hex[:8]}"
    with stack.sync_client() as api:
        created = api.post(
            "/automations/",
            json={
                "name": f"counts {kind}",
                "trigger": {"posture": "Reactive", "expect": [f"{kind}.*"], "threshold": 1000},
                "actions": [],
            },
        )
        assert created.status_code == 201, created.text
        automation_id = created.json()["id"]
        send(api, *(event_json(f"{kind}.before", f"r.{i}") for i in range(3)))

        def page(name: str) -> dict[str, object]:
            body = {"filter": {"event": {"name": [name]}}}
            response = api.post("/events/filter", json=body)
            assert response.status_code == 200, response.text
            return response.json()

        eventually(lambda: page(f"{kind}.before")["total"] == 3, what="stored in PostgreSQL")
        assert api.get("/events/store").json()["backend"] == "postgresql"

        postgres.stop()
        # Accepted and evaluated all the same: the store is a copy, not a source of truth.
        send(api, *(event_json(f"{kind}.during", f"r.{i}") for i in range(4)))
        settled(api, automation_id, received=7)

        def gap_reported() -> list[dict[str, object]]:
            return [g for g in api.get("/events/store").json()["gaps"] if g["events"] >= 4]

        (gap,) = eventually(gap_reported, what="the gap reported")
        assert "database failed" in str(gap["reason"])
        assert api.get("/events/store").json()["healthy"] is False
        # Reads say the store is unavailable, rather than an incomplete answer.
        down = api.post("/events/filter", json={"filter": {}})
        assert down.status_code == 503
        assert isinstance(api, httpx.Client)
