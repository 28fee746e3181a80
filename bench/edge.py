"""The HTTP edge under a big batch: how long a small request waits while a large event batch
is validated, printed as JSON figures (never asserted).

    python bench/edge.py [--events 35000] [--rounds 3]

1. In process: how long one validation holds the event loop, inline (one pydantic call, as
   before) and sliced in a thread (api/batches.py), and routing the batch (api/routing.py,
   500 events between yields), each measured as the longest gap of a 1 ms ticker on the loop.
2. On a real stack (dev server, worker, API): the latency of GET /api/automations/count, alone
   and while POST /api/events carries a batch of `--events` events (~16 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporal_automations.api.batches import (  # noqa: E402
    _validate_sliced,
    validate_inline,
)
from temporal_automations.api.routing import EventRouter  # noqa: E402
from tests.stack import running_stack  # noqa: E402


def batch(count: int) -> bytes:
    return json.dumps(
        [
            {
                "id": str(uuid.uuid4()),
                "event": "bench.edge.nobody-listens",
                "resource": {"prefect.resource.id": f"bench.edge.{index}"},
                "related": [{"prefect.resource.id": "bench.flow", "prefect.resource.role": "flow"}],
                "payload": {"pad": "p" * 200},
            }
            for index in range(count)
        ]
    ).encode()


async def loop_stall_ms(work: Any) -> float:
    gaps: list[float] = []
    running = True

    async def ticker() -> None:
        last = time.perf_counter()
        while running:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.02)
    await work()
    running = False
    await task
    return round(max(gaps) * 1000, 1)


async def in_process(body: bytes) -> dict[str, float]:
    async def inline() -> None:
        validate_inline(body)

    async def sliced() -> None:
        await asyncio.to_thread(_validate_sliced, body, 1_500_000)

    events = _validate_sliced(body, 1_500_000)
    router = EventRouter(None)  # type: ignore[arg-type]  # no automation: nothing to deliver

    async def route() -> None:
        await router.route(events, len(body))

    return {
        "inline_loop_stall_ms": await loop_stall_ms(inline),
        "sliced_loop_stall_ms": await loop_stall_ms(sliced),
        "route_loop_stall_ms": await loop_stall_ms(route),
    }


async def small_latencies(client: httpx.AsyncClient, until: asyncio.Event) -> list[float]:
    latencies: list[float] = []
    while not until.is_set():
        started = time.perf_counter()
        answer = await client.post("/automations/count", json={})
        assert answer.status_code == 200, answer.text
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return latencies


async def on_stack(body: bytes, rounds: int) -> dict[str, Any]:
    with running_stack() as stack:
        async with stack.client(timeout=120) as client:
            idle = asyncio.Event()
            quiet = asyncio.create_task(small_latencies(client, idle))
            await asyncio.sleep(2)
            idle.set()
            alone = await quiet

            during: list[float] = []
            batch_seconds: list[float] = []
            for _ in range(rounds):
                done = asyncio.Event()
                probe = asyncio.create_task(small_latencies(client, done))
                started = time.perf_counter()
                answer = await client.post(
                    "/events", content=body, headers={"Content-Type": "application/json"}
                )
                batch_seconds.append(time.perf_counter() - started)
                done.set()
                during += await probe
                assert answer.status_code == 204, answer.text[:300]
    return {
        "small_request_alone_ms": {
            "p50": round(statistics.median(alone), 1),
            "max": round(max(alone), 1),
        },
        "small_request_during_batch_ms": {
            "p50": round(statistics.median(during), 1),
            "max": round(max(during), 1),
            "count": len(during),
        },
        "batch_seconds": [round(s, 2) for s in batch_seconds],
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=35_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = batch(args.events)
    figures: dict[str, Any] = {"events": args.events, "bytes": len(body)}
    figures |= await in_process(body)
    figures |= await on_stack(body, args.rounds)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
