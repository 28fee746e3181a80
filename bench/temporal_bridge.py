"""The Temporal bridge under load: N user workflows closing within S seconds (default 1,000 in
one minute) on a real dev server, watched by the bridge at its default poll interval (1 s).

    python bench/temporal_bridge.py [--workflows 1000] [--seconds 60] [--poll-interval 1]

Prints JSON figures (never asserted): every started/completed event emitted exactly once (by
id and by workflow), and the lag from a workflow's close (its `occurred`) to its event reaching
the events endpoint (a real HTTP server recording arrival times), p50/p99/max; the bridge's own
reported lag; the visibility rows each poll read (flat as history grows); and what the worker
plugin costs user code per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporalio.client import Client  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from temporal_automations.devserver import DevServer  # noqa: E402
from temporal_automations.plugin import EventBuffer  # noqa: E402
from temporal_automations.temporal_bridge import LAG_HEADER, TemporalBridge  # noqa: E402
from tests.support import Receiver  # noqa: E402
from tests.temporal_user import ACTIVITIES, WORKFLOWS, Quick  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))]


def summary_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5) * 1000, 1),
        "p99_ms": round(percentile(values, 0.99) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


class CountingBridge(TemporalBridge):
    """The bridge, counting the rows each visibility query returns (its cost per poll)."""

    rows_per_query: list[int]

    async def _list(self, *args: Any) -> Any:
        rows = await super()._list(*args)
        self.rows_per_query = getattr(self, "rows_per_query", [])
        self.rows_per_query.append(len(rows) if rows is not None else -1)
        return rows


async def run(workflows: int, seconds: float, poll_interval: float) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    folder = Path(tempfile.mkdtemp(prefix="bridge-bench-"))
    with DevServer(db_file=folder / "temporal.db") as server, Receiver() as receiver:
        client = await Client.connect(server.address)
        bridge = CountingBridge(
            client,
            ["default"],
            receiver.url,
            cursor_file=folder / "cursor.json",
            poll_interval=poll_interval,
        )
        async with Worker(client, task_queue="bench", workflows=WORKFLOWS, activities=ACTIVITIES):
            task = asyncio.create_task(bridge.run())
            started = time.monotonic()
            pending = []
            for index in range(workflows):
                # Spread the starts evenly over the period, each closing at once.
                delay = started + index * seconds / workflows - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                pending.append(
                    asyncio.create_task(
                        client.execute_workflow(
                            Quick.run, id=f"{prefix}-{index}", task_queue="bench"
                        )
                    )
                )
            await asyncio.gather(*pending)
            closed_in = time.monotonic() - started
            deadline = time.monotonic() + 60

            def ours() -> list[tuple[dict[str, Any], float]]:
                found = []
                for request in receiver.requests_snapshot("/events"):
                    for event in request.json or []:
                        if event["resource"]["prefect.resource.name"].startswith(prefix):
                            found.append((event, request.received_at))
                return found

            while time.monotonic() < deadline:
                if len({e["id"] for e, _ in ours()}) >= 2 * workflows:
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(3 * poll_interval)  # a few more polls: nothing more may arrive
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        events = ours()
        per_id = Counter(e["id"] for e, _ in events)
        per_kind = Counter((e["resource"]["prefect.resource.name"], e["event"]) for e, _ in events)
        expected = {
            (f"{prefix}-{i}", f"temporal.workflow.{what}")
            for i in range(workflows)
            for what in ("started", "completed")
        }
        close_lag = [
            at - datetime.fromisoformat(e["occurred"]).timestamp()
            for e, at in events
            if e["event"] == "temporal.workflow.completed"
        ]
        reported = [
            float(r.headers[LAG_HEADER])
            for r in receiver.requests_snapshot("/events")
            if LAG_HEADER in r.headers
        ]
        rows = bridge.rows_per_query
        return {
            "workflows": workflows,
            "closed_within_s": round(closed_in, 1),
            "poll_interval_s": poll_interval,
            "events_expected": len(expected),
            "events_distinct": len(per_id),
            "missing": len(expected - set(per_kind)),
            "emitted_twice": sum(1 for n in per_id.values() if n > 1),
            "close_to_event_lag": summary_ms(close_lag),
            "reported_lag": summary_ms(reported),
            "rows_per_query": {"max": max(rows), "mean": round(statistics.fmean(rows), 1)},
        }


def plugin_offer_cost(n: int = 200_000) -> dict[str, float]:
    """What the worker plugin costs the user's code per event: one `offer` into its buffer
    (full, with our API unreachable: the worst case, as every offer then also drops one)."""
    buffer = EventBuffer("http://127.0.0.1:9/api", buffer_size=10_000)
    event = {
        "id": "x",
        "event": "temporal.activity.failed",
        "resource": {"prefect.resource.id": "a"},
    }
    started = time.perf_counter()
    for _ in range(n):
        buffer.offer(event)
    elapsed = time.perf_counter() - started
    buffer.close(timeout=0.1)
    return {"offers": n, "us_per_offer": round(elapsed / n * 1e6, 2), "dropped": buffer.dropped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--poll-interval", type=float, default=1.0)
    arguments = parser.parse_args()
    figures = asyncio.run(run(arguments.workflows, arguments.seconds, arguments.poll_interval))
    figures["plugin_offer"] = plugin_offer_cost()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
