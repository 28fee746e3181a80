"""What the events store costs the ingest path, printed as JSON figures (never asserted).

    python bench/events_store_cost.py [--rounds 3] [--events 100000]

For each round, the same ingest load (bench.py's: 100 automations, 1% of events matching one,
500-event requests from 4 clients) runs on a fresh stack without the store
(EVENTS_STORE_URL=none) and with it (SQLite in the stack's folder), alternately. Measured:
throughput, and CPU seconds per event of the API process and of the store's writer process
(from /proc), which a shared, noisy machine disturbs far less than throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import create, event  # noqa: E402  (the sibling bench.py)
from tests.stack import Stack, running_stack  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
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


async def load(stack: Stack, total: int, batch: int = 500, concurrency: int = 4) -> float:
    async with stack.client() as client:
        await create(
            client,
            {
                "name": "cost counter",
                "trigger": {"posture": "Reactive", "expect": ["bench.ingest.counted"],
                            "threshold": 100_000, "within": 3600},
                "actions": [{"type": "do-nothing"}],
            },
        )  # fmt: skip
        for index in range(99):
            await create(
                client,
                {
                    "name": f"cost idle {index}",
                    "trigger": {"posture": "Reactive", "expect": [f"bench.other.{index}"]},
                    "actions": [{"type": "do-nothing"}],
                },
            )
        per_client = total // concurrency

        async def poster() -> None:
            for _ in range(per_client // batch):
                body = [
                    event(
                        "bench.ingest.counted" if i % 100 == 0 else "prefect.flow-run.Running",
                        f"prefect.flow-run.{uuid.uuid4()}",
                    )
                    for i in range(batch)
                ]
                (await client.post("/events", json=body)).raise_for_status()

        started = time.monotonic()
        await asyncio.gather(*(poster() for _ in range(concurrency)))
        return time.monotonic() - started


def one_run(with_store: bool, total: int) -> dict[str, Any]:
    env = {} if with_store else {"EVENTS_STORE_URL": "none"}
    with running_stack(extra_env=env) as stack:
        assert stack.api is not None
        api_pid = stack.api.pid
        api_before = cpu_seconds(api_pid)
        writers = children(api_pid)
        writer_before = sum(cpu_seconds(pid) for pid in writers)
        seconds = asyncio.run(load(stack, total))
        time.sleep(2)  # the writer drains what it has
        api_cpu = cpu_seconds(api_pid) - api_before
        writer_cpu = sum(cpu_seconds(pid) for pid in writers) - writer_before
    return {
        "store": with_store,
        "events_per_s": round(total / seconds),
        "api_cpu_us_per_event": round(api_cpu / total * 1e6, 1),
        "writer_cpu_us_per_event": round(writer_cpu / total * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    runs = []
    for _ in range(args.rounds):
        for with_store in (False, True):
            runs.append(one_run(with_store, args.events))
            print(json.dumps(runs[-1]), file=sys.stderr)

    def median(store: bool, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["store"] is store)

    without, with_ = median(False, "events_per_s"), median(True, "events_per_s")
    api_without = median(False, "api_cpu_us_per_event")
    api_with = median(True, "api_cpu_us_per_event")
    print(
        json.dumps(
            {
                "runs": runs,
                "median_events_per_s": {"without_store": without, "with_store": with_},
                "throughput_cost_pct": round((1 - with_ / without) * 100, 1),
                "api_cpu_us_per_event": {"without_store": api_without, "with_store": api_with},
                "api_cpu_cost_pct": round((api_with / api_without - 1) * 100, 1),
                "writer_cpu_us_per_event": median(True, "writer_cpu_us_per_event"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
