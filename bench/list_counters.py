"""The page's list refresh: the counters of N automations read as the page used to (one
GET /api/automations/{id}/status per automation, all at once) and as it does now (one
POST /api/automations/statuses). Figures printed as JSON (never asserted), with the load
average beside them (the machine may be shared).

    python bench/list_counters.py [--automations 200] [--rounds 5] [--no-worker]

With --no-worker the worker is stopped first: no workflow can answer a status query, which
then waits its timeout and falls back to the memo (the old list waited 3 s and showed no
counters); the bulk read does not ask the workflows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.stack import running_stack  # noqa: E402


async def create(client: httpx.AsyncClient, count: int) -> list[str]:
    gate = asyncio.Semaphore(16)

    async def one(n: int) -> str:
        async with gate:
            answer = await client.post(
                "/automations/",
                json={
                    "name": f"bench {n}",
                    "trigger": {"posture": "Reactive", "expect": [f"bench.list.{n}"]},
                    "actions": [{"type": "do-nothing"}],
                },
            )
            answer.raise_for_status()
            return str(answer.json()["id"])

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def one_by_one(client: httpx.AsyncClient, ids: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    answers = await asyncio.gather(
        *(client.get(f"/automations/{i}/status") for i in ids), return_exceptions=True
    )
    ok = sum(isinstance(a, httpx.Response) and a.status_code == 200 for a in answers)
    return time.perf_counter() - started, ok


async def bulk(client: httpx.AsyncClient, ids: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    answer = await client.post("/automations/statuses", json={"ids": ids})
    answer.raise_for_status()
    ok = sum(e["state"] == "ok" for e in answer.json()["statuses"])
    return time.perf_counter() - started, ok


async def measure(base: str, count: int, rounds: int, stop_worker: Any) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as client:
        ids = await create(client, count)
        while (await bulk(client, ids))[1] < count:  # every memo listed
            await asyncio.sleep(0.2)
        if stop_worker:
            stop_worker()
        figures: dict[str, Any] = {"automations": count, "worker": not stop_worker}
        for name, read in (("one_request_per_automation", one_by_one), ("bulk", bulk)):
            runs = [await read(client, ids) for _ in range(rounds)]
            seconds = [r[0] for r in runs]
            figures[name] = {
                "requests": count if read is one_by_one else 1,
                "median_s": round(statistics.median(seconds), 4),
                "max_s": round(max(seconds), 4),
                "answered_ok": min(r[1] for r in runs),
                "loadavg": [round(x, 2) for x in os.getloadavg()],
            }
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--automations", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-worker", action="store_true")
    args = parser.parse_args()
    with running_stack() as stack:
        figures = asyncio.run(
            measure(
                stack.api_url,
                args.automations,
                args.rounds,
                stack.stop_worker if args.no_worker else None,
            )
        )
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
