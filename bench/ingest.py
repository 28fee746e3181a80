"""Ingest throughput, and what the events store costs it, printed as JSON (never asserted).

    python bench/ingest.py [--rounds 3] [--all-events 20000] [--few-events 300000]

Two loads (issue 15's targets), each over the same 100 automations (automation i listens to
`bench.ingest.m<i>`, with a threshold it never reaches, so nothing fires):
- `all_matching`: every event matches one of the 100 automations (round robin), one client,
  500 events a request (each request is 100 signals of 5 events);
- `one_percent`: 1% of events match automation 0, the rest no automation, 4 clients, 500 events
  a request.
Nothing lost: at the end, the automations' own `events_received` must add up to what was sent
to them.

The store's cost: each round runs both loads on a fresh stack without the events store
(EVENTS_STORE_URL=none) and on one with it (SQLite in the stack's folder), back to back; the
median throughput with / without is the store's cost. The load average is printed beside
every figure: this machine is shared.

The request bodies are JSON-encoded before the clock starts (the load generator runs on the
same cores as the stack and must not be what is measured). `ingest_figures(client)` runs both
loads against a stack someone else started (bench/bench.py and the side-by-side table use it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import EventBodies, counting_automation  # type: ignore[import-not-found]  # noqa: E402
from tests.stack import running_stack  # noqa: E402

AUTOMATIONS = 100
BATCH = 500
NAME = "bench.ingest.m{}"
UNMATCHED = "prefect.flow-run.Running"


TICKS = os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


async def create_automations(client: httpx.AsyncClient, count: int = AUTOMATIONS) -> list[str]:
    """`count` automations, automation i listening to NAME.format(i); none ever fires."""
    ids = []
    for index in range(count):
        response = await client.post(
            "/automations/",
            json=counting_automation(f"bench ingest {index}", NAME.format(index)),
        )
        if response.status_code != 201:
            raise RuntimeError(f"automation {index}: {response.status_code} {response.text}")
        ids.append(response.json()["id"])
    return ids


def bodies(total: int, name_of: Any, batch: int = BATCH) -> tuple[list[bytes], list[int]]:
    """Request bodies of `batch` events, event j named `name_of(j)` (None: unmatched), and how
    many events each automation index gets."""
    sent_to = [0] * AUTOMATIONS
    builder = EventBodies()
    out = []
    for start in range(0, total, batch):
        names = []
        for j in range(start, min(start + batch, total)):
            target = name_of(j)
            if target is not None:
                sent_to[target] += 1
            names.append(UNMATCHED if target is None else NAME.format(target))
        out.append(builder.body(names))
    return out, sent_to


async def received(client: httpx.AsyncClient, ids: list[str]) -> list[int]:
    counts = []
    for automation_id in ids:
        status = (await client.get(f"/automations/{automation_id}/status")).json()
        counts.append(status["stats"]["events_received"])
    return counts


async def store_status(client: httpx.AsyncClient) -> dict[str, Any]:
    return (await client.get("/events/store")).json()


async def run_load(
    client: httpx.AsyncClient,
    ids: list[str],
    total: int,
    name_of: Any,
    concurrency: int,
    processes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Post `total` events (event j to automation `name_of(j)`, None: to none) from
    `concurrency` clients; `processes` (name: pid): CPU per event of each, in the window."""
    before = await received(client, ids)
    requests, sent_to = bodies(total, name_of)
    queue = list(reversed(requests))
    headers = {"content-type": "application/json"}

    async def poster() -> None:
        while queue:
            body = queue.pop()
            (await client.post("/events", content=body, headers=headers)).raise_for_status()

    store_before = await store_status(client)
    processes = processes or {}
    load_before = load_average()
    cpu_before = {name: cpu_seconds(pid) for name, pid in processes.items()}
    started = time.monotonic()
    await asyncio.gather(*(poster() for _ in range(concurrency)))
    elapsed = time.monotonic() - started
    cpu = {
        name: round((cpu_seconds(pid) - cpu_before[name]) / total * 1e6, 1)
        for name, pid in processes.items()
    }
    load_after = load_average()
    store: dict[str, Any] = {}
    if store_before.get("backend"):
        # The copy catches up after the load (bounded backlog): how long, and what it holds.
        caught_up = time.monotonic()
        status = await store_status(client)
        while status["unwritten"] and time.monotonic() - caught_up < 120:
            await asyncio.sleep(0.2)
            status = await store_status(client)
        store = {
            "written": status["written"] - store_before["written"],
            "in_gaps": sum(g["events"] for g in status["gaps"])
            - sum(g["events"] for g in store_before["gaps"]),
            "behind_after_load_s": round(time.monotonic() - caught_up, 1),
        }
    # Accepted means durable in the workflows; their evaluation may lag a moment.
    expected = sum(sent_to)
    got = 0
    for _ in range(300):
        after = await received(client, [i for i, n in zip(ids, sent_to, strict=True) if n])
        before_sent = [b for b, n in zip(before, sent_to, strict=True) if n]
        got = sum(a - b for a, b in zip(after, before_sent, strict=True))
        if got >= expected:
            break
        await asyncio.sleep(0.5)
    return {
        "events": total,
        "clients": concurrency,
        "seconds": round(elapsed, 2),
        "events_per_s": round(total / elapsed),
        "matched_sent": expected,
        "matched_received": got,
        "lost": expected - got,
        "load_average": [load_before, load_after],
        "cpu_us_per_event": cpu,
        **({"store": store} if store else {}),
    }


async def ingest_figures(
    client: httpx.AsyncClient,
    all_events: int = 20_000,
    few_events: int = 300_000,
    processes: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Both loads on a running stack (creates its own 100 automations). `processes`: name to
    PID of the stack's processes, for CPU per event (optional)."""
    ids = await create_automations(client)
    return {
        "all_matching": await run_load(
            client, ids, all_events, lambda j: j % AUTOMATIONS, 1, processes
        ),
        "one_percent": await run_load(
            client, ids, few_events, lambda j: 0 if j % 100 == 0 else None, 4, processes
        ),
    }


def one_stack(with_store: bool, all_events: int, few_events: int) -> dict[str, Any]:
    env = {} if with_store else {"EVENTS_STORE_URL": "none"}
    with running_stack(extra_env=env, persistent=True) as stack:
        assert stack.api is not None and stack.worker is not None
        processes = {"api": stack.api.pid}
        for pid in children(stack.api.pid):  # the events store's writer, when there is one
            processes["writer"] = pid
        processes |= {"worker": stack.worker.pid, "temporal": stack.server.process.pid}

        async def go() -> dict[str, Any]:
            async with stack.client() as client:
                return await ingest_figures(client, all_events, few_events, processes)

        return {"store": with_store, **asyncio.run(go())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--all-events", type=int, default=20_000)
    parser.add_argument("--few-events", type=int, default=300_000)
    parser.add_argument("--store", choices=["both", "on", "off"], default="both")
    args = parser.parse_args()
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.store]
    runs = []
    for _ in range(args.rounds):
        for with_store in modes:
            runs.append(one_stack(with_store, args.all_events, args.few_events))
            print(json.dumps(runs[-1]), file=sys.stderr, flush=True)

    def median(store: bool, load: str, *keys: str) -> float | None:
        values = []
        for run in runs:
            if run["store"] is store:
                value: Any = run[load]
                for key in keys:
                    value = value.get(key) if isinstance(value, dict) else None
                if value is not None:
                    values.append(value)
        return statistics.median(values) if values else None

    figures: dict[str, Any] = {"runs": runs}
    for load in ("all_matching", "one_percent"):
        off, on = median(False, load, "events_per_s"), median(True, load, "events_per_s")
        figures[load] = {
            "median_events_per_s_store_off": off,
            "median_events_per_s_store_on": on,
            "store_cost_pct": round((1 - on / off) * 100, 1) if on and off else None,
            "api_cpu_us_per_event_store_off": median(False, load, "cpu_us_per_event", "api"),
            "api_cpu_us_per_event_store_on": median(True, load, "cpu_us_per_event", "api"),
            "writer_cpu_us_per_event": median(True, load, "cpu_us_per_event", "writer"),
            "lost": sum(r[load]["lost"] for r in runs),
            "store_gap_events": sum(r[load].get("store", {}).get("in_gaps", 0) for r in runs),
        }
    figures["targets"] = {
        "all_matching": ">= 5,000 events/s, none lost",
        "one_percent": ">= 50,000 events/s, none lost",
        "store_cost": "<= 10% of throughput",
    }
    figures["when"] = datetime.now(UTC).isoformat(timespec="seconds")
    figures["cpus"] = os.cpu_count()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
