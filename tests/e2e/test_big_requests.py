"""A request bigger than one signal may carry for one automation (the server refuses a payload
over 2 MB whole) is split into several, directly or through the inbox: 204, and every event
reaches its automation once, in order."""

from __future__ import annotations

import asyncio
import json
import random
import string
from typing import Any
from uuid import UUID

import httpx
import pytest
from temporalio.client import Client

from temporal_automations.temporal import workflow_id
from tests.stack import Stack
from tests.support import deliver_signals, delivered_event_ids, event_json, eventually_async

pytestmark = pytest.mark.e2e

BLOB = 60_000  # under the 64 KB a workflow stores of a payload: kept whole


def counting(name: str) -> dict[str, Any]:
    return {
        "name": f"counts {name}",
        "trigger": {"posture": "Reactive", "expect": [name], "threshold": 10**5, "within": 3600},
        "actions": [{"type": "do-nothing"}],
    }


async def create(api: httpx.AsyncClient, name: str) -> str:
    created = await api.post("/automations/", json=counting(name))
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def big_event(name: str, rnd: random.Random) -> dict[str, Any]:
    blob = "".join(rnd.choices(string.ascii_letters, k=BLOB))  # incompressible enough
    return event_json(name, f"r.{rnd.random()}", payload={"blob": blob})


async def received(api: httpx.AsyncClient, automation: str, count: int) -> None:
    async def done() -> bool:
        status = (await api.get(f"/automations/{automation}/status")).json()
        return bool(status["stats"]["events_received"] == count)

    await eventually_async(done, timeout=60, what=f"{count} events received")


@pytest.mark.parametrize("through_inbox", [False, True], ids=["directly", "through the inbox"])
async def test_more_than_a_signal_for_one_automation_is_split_and_arrives_whole(
    stack: Stack, through_inbox: bool
) -> None:
    rnd = random.Random(7)
    tag = "inbox" if through_inbox else "direct"
    async with stack.client(timeout=120) as api:
        big = await create(api, f"big.{tag}")
        body = [big_event(f"big.{tag}", rnd) for _ in range(40)]  # ~2.4 MB for one automation
        others: list[str] = []
        if through_inbox:  # 100 events for 8 automations: the inbox takes the request
            others = [await create(api, f"small.{tag}.{n}") for n in range(7)]
            body += [event_json(f"small.{tag}.{n % 7}", f"s.{n}") for n in range(60)]
        response = await api.post("/events", json=body)
        assert response.status_code == 204, response.text
        await received(api, big, 40)
        await asyncio.gather(
            *(received(api, other, 60 // 7 + (n < 60 % 7)) for n, other in enumerate(others))
        )

    client = await Client.connect(stack.temporal_address)
    target = workflow_id(UUID(big))
    assert len(await deliver_signals(client, target)) > 1  # split
    sent = [event["id"] for event in body if event["event"] == f"big.{tag}"]
    assert await delivered_event_ids(client, target) == sent  # once each, in order
    assert all(len(json.dumps(event)) > BLOB for event in body[:40])
