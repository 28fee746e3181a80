"""Prefect's own server (3.x, SQLite, its own venv: tests/prefect_server.py) under the same
client and the same scenarios as ours in bench/bench.py, for the side-by-side table.

Prefect calls a webhook through a Webhook block (its `call-webhook` has no URL of its own):
one block per scenario, each pointing at a path of the same local receiver as ours.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
from scale import rss_mb  # type: ignore[import-not-found]

from bench import (  # type: ignore[import-not-found]
    arrivals,
    counting_automation,
    event,
    load,
    proactive_automation,
    summary_ms,
    wait_for_arrivals,
)
from tests.prefect_server import PrefectServer, running_prefect_server
from tests.support import Receiver

# The same payload template as ours (bench.webhook): the key is the event's resource id.
PAYLOAD = '{"key": "{{ event.resource.id }}"}'
SCENARIOS = ("prefect-reactive", "prefect-proactive", "prefect-burst")


def webhook_blocks(server: PrefectServer, receiver: Receiver) -> dict[str, str]:
    """A Webhook block per scenario (`/<scenario>` on the receiver): block document ids."""
    script = (
        "from prefect.blocks.webhook import Webhook\n"
        f"for path in {SCENARIOS!r}:\n"
        f"    block = Webhook(url={receiver.url!r} + '/' + path, method='POST',"
        " headers={'Content-Type': 'application/json'})\n"
        "    print(path, block.save(path + '-' + __import__('uuid').uuid4().hex[:6]))\n"
    )
    result = server.run_python(script)
    if result.returncode != 0:
        raise RuntimeError(f"could not create Prefect's webhook blocks:\n{result.stderr[-2000:]}")
    lines = [line.split() for line in result.stdout.splitlines() if line.strip()]
    return {parts[0]: parts[1] for parts in lines if len(parts) == 2 and parts[0] in SCENARIOS}


async def create(client: httpx.AsyncClient, body: dict[str, Any]) -> str:
    for _ in range(30):  # Prefect's SQLite answers 5xx now and then under load
        response = await client.post("/automations/", json=body)
        if response.status_code < 500:
            break
        await asyncio.sleep(0.3)
    response.raise_for_status()
    return str(response.json()["id"])


async def post_events(client: httpx.AsyncClient, events: list[dict[str, Any]]) -> None:
    for _ in range(30):
        response = await client.post("/events", json=events)
        if response.status_code < 500:
            break
        await asyncio.sleep(0.3)
    response.raise_for_status()


def hook(block: str) -> dict[str, Any]:
    return {"type": "call-webhook", "block_document_id": block, "payload": PAYLOAD}


async def warm_up(client: httpx.AsyncClient, receiver: Receiver, name: str, tag: str) -> None:
    """Prefect loads new automations asynchronously: send probes until one fires."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        await post_events(client, [event(name, f"warm.{uuid.uuid4()}")])
        await asyncio.sleep(0.5)
        if any(key.startswith("warm.") for key in arrivals(receiver, tag)):
            await asyncio.sleep(1)
            receiver.clear()
            return
    raise RuntimeError(f"Prefect never fired {tag} while warming up")


async def reactive(
    client: httpx.AsyncClient, receiver: Receiver, block: str, n: int
) -> dict[str, Any]:
    tag = "prefect-reactive"
    await create(
        client,
        {
            "name": "bench reactive",
            "trigger": {"posture": "Reactive", "expect": ["bench.reactive"], "threshold": 1},
            "actions": [hook(block)],
        },
    )
    await warm_up(client, receiver, "bench.reactive", tag)
    accepted: dict[str, float] = {}
    for _ in range(n):
        resource_id = f"bench.run.{uuid.uuid4()}"
        await post_events(client, [event("bench.reactive", resource_id)])
        accepted[resource_id] = time.time()
        await asyncio.sleep(0.02)
    seen = await wait_for_arrivals(receiver, tag, n, timeout=60)
    latencies = [seen[key] - at for key, at in accepted.items() if key in seen]
    return {"received": len(latencies), "sent": n, **summary_ms(latencies)}


async def proactive(
    client: httpx.AsyncClient, receiver: Receiver, block: str, n: int
) -> dict[str, Any]:
    tag, within = "prefect-proactive", 10.0
    await create(client, proactive_automation(hook(block), within))
    await asyncio.sleep(2)  # loaded asynchronously (a reactive probe cannot tell for this one)
    deadlines: dict[str, float] = {}
    for _ in range(n):
        resource_id = f"bench.run.{uuid.uuid4()}"
        occurred = datetime.now(UTC)
        await post_events(client, [event("bench.started", resource_id, occurred)])
        deadlines[resource_id] = occurred.timestamp() + within
        await asyncio.sleep(0.1)
    seen = await wait_for_arrivals(receiver, tag, n, timeout=within + 90)
    lateness = [seen[key] - deadline for key, deadline in deadlines.items() if key in seen]
    early = sum(1 for value in lateness if value < 0)
    return {"received": len(lateness), "sent": n, "early": early, **summary_ms(lateness)}


async def burst(
    client: httpx.AsyncClient, receiver: Receiver, block: str, n: int
) -> dict[str, Any]:
    tag = "prefect-burst"
    await create(
        client,
        {
            "name": "bench burst",
            "trigger": {
                "posture": "Reactive",
                "expect": ["bench.burst"],
                "for_each": ["prefect.resource.id"],
            },
            "actions": [hook(block)],
        },
    )
    await warm_up(client, receiver, "bench.burst", tag)
    events = [event("bench.burst", f"bench.run.{uuid.uuid4()}") for _ in range(n)]
    started = time.time()
    semaphore = asyncio.Semaphore(4)

    async def post(batch: list[dict[str, Any]]) -> None:
        async with semaphore:
            await post_events(client, batch)

    await asyncio.gather(*(post(events[i : i + 100]) for i in range(0, n, 100)))
    accepted = time.time() - started
    # Prefect may drop some (its queue is in memory): wait until arrivals stop growing.
    seen: dict[str, float] = {}
    quiet_since = time.monotonic()
    while len(seen) < n and time.monotonic() - quiet_since < 20:
        await asyncio.sleep(0.5)
        now_seen = arrivals(receiver, tag)
        if len(now_seen) > len(seen):
            quiet_since = time.monotonic()
        seen = now_seen
    finished = max(seen.values()) if seen else time.time()
    keys = {e["resource"]["prefect.resource.id"] for e in events}
    calls = sum(
        1
        for request in receiver.requests_snapshot(f"/{tag}")
        if request.json and request.json.get("key") in keys
    )
    seen = {key: at for key, at in seen.items() if key in keys}
    return {
        "events": n,
        "actions_received": len(seen),
        "duplicates": calls - len(seen),
        "accept_s": round(accepted, 2),
        "end_to_end_s": round(finished - started, 2),
        "actions_per_s": round(len(seen) / (finished - started), 1),
    }


async def ingest_all_matching(
    client: httpx.AsyncClient,
    receiver: Receiver,
    automations: int,
    seconds: float,
    batch: int,
    sentinel_name: str = "bench.reactive",
    sentinel_tag: str = "prefect-reactive",
) -> dict[str, Any]:
    """Every event matches one of `automations` (none fires), one client: events/s accepted,
    and evaluated (until a sentinel event sent after them fired the reactive automation).
    Prefect accepts into an in-memory queue; what it then loses is not counted here."""
    receiver.clear()
    for index in range(automations):
        await create(client, counting_automation(f"bench ingest {index}", f"bench.all.{index}"))
    await asyncio.sleep(2)  # loaded asynchronously
    sent = 0
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        body = [
            event(f"bench.all.{(sent + i) % automations}", f"prefect.flow-run.{uuid.uuid4()}")
            for i in range(batch)
        ]
        await post_events(client, body)
        sent += batch
    elapsed = time.monotonic() - started
    # Prefect's triggers consume its events in order: once an event sent after the last batch
    # fired its automation, every event before it was evaluated.
    sentinel = f"sentinel.{uuid.uuid4()}"
    await post_events(client, [event(sentinel_name, sentinel)])
    seen = await wait_for_arrivals(receiver, sentinel_tag, 1, timeout=600)
    evaluated = seen[sentinel] - (time.time() - (time.monotonic() - started)) if seen else None
    return {
        "automations": automations,
        "events_accepted": sent,
        "seconds": round(elapsed, 2),
        "events_per_s": round(sent / elapsed, 1),
        "evaluated_per_s": round(sent / evaluated, 1) if evaluated else None,
        "lost": "not counted",
    }


def tree_rss_mb(pid: int) -> float:
    """RSS of `pid` and its children (Prefect's CLI runs its server as a child process)."""
    from pathlib import Path

    total = rss_mb(pid)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += tree_rss_mb(int(stat.parent.name))
    return round(total, 1)


async def run(quick: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_at_start": load()}
    started = time.monotonic()
    with Receiver() as receiver, running_prefect_server() as server:
        version = server.run_python("import prefect; print(prefect.__version__)").stdout.strip()
        figures["version"] = version
        blocks = webhook_blocks(server, receiver)
        async with httpx.AsyncClient(base_url=server.api_url, timeout=60) as client:
            for index in range(8):  # with reactive and proactive: 10 automations
                await create(
                    client,
                    {
                        "name": f"idle {index}",
                        "trigger": {"posture": "Reactive", "expect": [f"bench.idle.{index}"]},
                        "actions": [{"type": "do-nothing"}],
                    },
                )
            figures["reactive"] = await reactive(
                client, receiver, blocks["prefect-reactive"], 30 if quick else 100
            )
            print(json.dumps({"prefect reactive": figures["reactive"]}), flush=True)
            figures["proactive"] = await proactive(
                client, receiver, blocks["prefect-proactive"], 10 if quick else 50
            )
            print(json.dumps({"prefect proactive": figures["proactive"]}), flush=True)
            assert server.process is not None
            figures["server_rss_mb_10"] = tree_rss_mb(server.process.pid)
            figures["burst"] = await burst(
                client, receiver, blocks["prefect-burst"], 200 if quick else 1000
            )
            print(json.dumps({"prefect burst": figures["burst"]}), flush=True)
            figures["ingest_all_matching"] = await ingest_all_matching(
                client, receiver, 100, 5 if quick else 20, 500
            )
            print(json.dumps({"prefect ingest": figures["ingest_all_matching"]}), flush=True)
    figures["load_at_end"] = load()
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


def measure(quick: bool) -> dict[str, Any]:
    return asyncio.run(run(quick))
