"""The cost model, counted from real histories: what one accepted event and one firing cost in
Temporal signals, history events, workflow and activity tasks and bytes. Printed as JSON
figures (never asserted).

    python bench/cost.py [--events 200]

Runs the real stack (dev server, worker, API) and drives one automation per scenario:
- `reactive-1`: every event fires a webhook, one event per request (the reactive bench);
- `lone-firing`: the same, 0.5 s apart (each firing alone in the workflow's history);
- `burst-100`: every event fires a webhook (for_each key), 100 events per request (the burst);
- `quiet-N`: events that match but never fire (threshold far away), N events per request,
  N = 1, 10, 100, 500 (how the cost per event falls with the batch);
- `keys-K`: as quiet, spread over K for_each keys (what keys add);
- `proactive`: `after`/`expect` with `within` 10 s, each opened window expires and fires;
- `fan-out` (alone, `--only fan-out`; `--no-inbox` for the direct path): 20 requests of 500
  events from one client, each event for one of 100 counting automations, counted over every
  automation's history and every run of the inbox's.
Then it reads each workflow's history (`fetch_history`) and counts per event type, with bytes
(each history event's serialised size), divided by the events accepted and the firings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    counting_automation,
    create,
    event,
    wait_for_arrivals,
    webhook,
)
from temporal_automations.temporal import workflow_id  # noqa: E402
from temporal_automations.workflows.inbox import inbox_workflow_id  # noqa: E402
from tests.stack import Stack, running_stack  # noqa: E402
from tests.support import Receiver  # noqa: E402

SHORT = {
    "WORKFLOW_EXECUTION_SIGNALED": "signals",
    "WORKFLOW_TASK_COMPLETED": "workflow_tasks",
    "MARKER_RECORDED": "local_activities",
    "ACTIVITY_TASK_SCHEDULED": "activity_tasks",
    "TIMER_STARTED": "timers_started",
    "TIMER_FIRED": "timers_fired",
    "TIMER_CANCELED": "timers_canceled",
    "WORKFLOW_PROPERTIES_MODIFIED": "memo_upserts",
    "UPSERT_WORKFLOW_SEARCH_ATTRIBUTES": "search_attribute_upserts",
}


async def history_counts(
    client: Client, automation_id: str, every_run_of: str | None = None
) -> dict[str, Any]:
    """Counts and bytes of the automation's current run's history, by event type (or of every
    run of the workflow `every_run_of`)."""
    if every_run_of is None:
        handles = [client.get_workflow_handle(workflow_id(automation_id))]
    else:
        handles = [
            client.get_workflow_handle(run.id, run_id=run.run_id)
            async for run in client.list_workflows(f'WorkflowId = "{every_run_of}"')
        ]
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    for handle in handles:
        for item in (await handle.fetch_history()).events:
            name = EventType.Name(item.event_type).removeprefix("EVENT_TYPE_")
            counts[name] += 1
            sizes[name] += item.ByteSize()
    return {
        "history_events": sum(counts.values()),
        "history_bytes": sum(sizes.values()),
        **{SHORT.get(k, k.lower()): v for k, v in counts.items()},
        "signal_bytes": sizes["WORKFLOW_EXECUTION_SIGNALED"],
        "marker_bytes": sizes["MARKER_RECORDED"],
        # the lifecycle events an emit activity carries, and the workflow task's own records
        "activity_bytes": sum(v for k, v in sizes.items() if k.startswith("ACTIVITY_TASK")),
        "workflow_task_bytes": sum(v for k, v in sizes.items() if k.startswith("WORKFLOW_TASK")),
        "memo_bytes": sizes["WORKFLOW_PROPERTIES_MODIFIED"],
    }


def per(counts: dict[str, Any], divisor: int, keys: list[str]) -> dict[str, float]:
    return {k: round(counts.get(k, 0) / max(divisor, 1), 2) for k in keys}


PER_KEYS = [
    "history_events",
    "history_bytes",
    "signals",
    "signal_bytes",
    "workflow_tasks",
    "local_activities",
    "marker_bytes",
    "activity_tasks",
    "activity_bytes",
    "workflow_task_bytes",
    "timers_started",
    "memo_upserts",
    "memo_bytes",
]


async def post_all(
    client: httpx.AsyncClient, events: list[dict[str, Any]], per_request: int, pause: float
) -> None:
    for start in range(0, len(events), per_request):
        (await client.post("/events", json=events[start : start + per_request])).raise_for_status()
        if pause:
            await asyncio.sleep(pause)


async def settled(client: Client, automation_id: str, quiet_for: float = 1.5) -> dict[str, Any]:
    """The history's counts once it stopped growing (the memo and lifecycle events settle)."""
    last: dict[str, Any] = {}
    stable_since = time.monotonic()
    while True:
        counts = await history_counts(client, automation_id)
        if counts["history_events"] != last.get("history_events"):
            last, stable_since = counts, time.monotonic()
        elif time.monotonic() - stable_since > quiet_for:
            return counts
        await asyncio.sleep(0.3)


async def scenario_firing(
    api: httpx.AsyncClient,
    temporal: Client,
    receiver: Receiver,
    name: str,
    n: int,
    per_request: int,
    pause: float | None = None,
) -> dict[str, Any]:
    automation = await create(
        api,
        {
            "name": f"cost {name}",
            "trigger": {
                "posture": "Reactive",
                "expect": [f"cost.{name}"],
                "for_each": ["prefect.resource.id"],
            },
            "actions": [webhook(receiver, name)],
        },
    )
    before = await settled(temporal, automation, 0.5)
    events = [event(f"cost.{name}", f"cost.run.{uuid.uuid4()}") for _ in range(n)]
    if pause is None:
        pause = 0.02 if per_request == 1 else 0
    await post_all(api, events, per_request, pause)
    await wait_for_arrivals(receiver, name, n, timeout=120)
    after = await settled(temporal, automation)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {
        "events": n,
        "per_request": per_request,
        "firings": n,
        "per_event_and_firing": per(delta, n, PER_KEYS),
    }


async def scenario_quiet(
    api: httpx.AsyncClient, temporal: Client, n: int, per_request: int, keys: int = 1
) -> dict[str, Any]:
    name = f"quiet-{per_request}-{keys}"
    automation = await create(
        api,
        counting_automation(f"cost {name}", f"cost.{name}", for_each=["prefect.resource.id"]),
    )
    before = await settled(temporal, automation, 0.5)
    events = [event(f"cost.{name}", f"cost.key.{index % keys}") for index in range(n)]
    await post_all(api, events, per_request, 0.0)
    after = await settled(temporal, automation)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    state = (await api.get(f"/automations/{automation}/status")).json()
    return {
        "events": n,
        "per_request": per_request,
        "keys": keys,
        "open_windows": state.get("open_windows"),
        "per_event": per(delta, n, PER_KEYS),
    }


async def scenario_fan_out(
    api: httpx.AsyncClient, temporal: Client, stack: Stack, requests: int, automations: int = 100
) -> dict[str, Any]:
    """The all-matching ingest: 500-event requests from one client, each event for one of
    `automations` counting automations; through the inbox unless INBOX_MIN_AUTOMATIONS is 0.
    Counted over every automation's history and every run of the inbox's."""
    ids = [
        await create(api, counting_automation(f"cost fan-out {n}", f"cost.fan.{n}"))
        for n in range(automations)
    ]
    befores = [await settled(temporal, automation, 0.5) for automation in ids]
    events = [
        event(f"cost.fan.{index % automations}", f"cost.run.{uuid.uuid4()}")
        for index in range(requests * 500)
    ]
    await post_all(api, events, 500, 0.0)
    totals: Counter[str] = Counter()
    for automation, before in zip(ids, befores, strict=True):
        after = await settled(temporal, automation, 1.0)
        totals.update({k: after.get(k, 0) - before.get(k, 0) for k in after})
    inbox = inbox_workflow_id(stack.env["TASK_QUEUE"])
    try:
        inbox_counts = await history_counts(temporal, "", every_run_of=inbox)
    except RPCError:
        inbox_counts = {}
    return {
        "events": len(events),
        "per_request": 500,
        "automations": automations,
        "automation_signals_per_request": round(totals["signals"] / requests, 2),
        "per_event": per(totals, len(events), PER_KEYS),
        "inbox_per_request": per(inbox_counts, requests, PER_KEYS),
        "inbox_runs": inbox_counts.get("workflow_execution_started", 0),
    }


async def scenario_proactive(
    api: httpx.AsyncClient, temporal: Client, receiver: Receiver, n: int
) -> dict[str, Any]:
    name = "proactive"
    automation = await create(
        api,
        {
            "name": "cost proactive",
            "trigger": {
                "posture": "Proactive",
                "after": ["cost.started"],
                "expect": ["cost.finished"],
                "for_each": ["prefect.resource.id"],
                "within": 10,
            },
            "actions": [webhook(receiver, name)],
        },
    )
    before = await settled(temporal, automation, 0.5)
    for _ in range(n):
        body = [event("cost.started", f"cost.run.{uuid.uuid4()}", datetime.now(UTC))]
        (await api.post("/events", json=body)).raise_for_status()
        await asyncio.sleep(0.1)
    await wait_for_arrivals(receiver, name, n, timeout=90)
    after = await settled(temporal, automation)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return {"events": n, "firings": n, "per_event_and_firing": per(delta, n, PER_KEYS)}


async def run(stack: Stack, n: int, only: str | None) -> dict[str, Any]:
    temporal = await Client.connect(stack.temporal_address)
    figures: dict[str, Any] = {"load_average": [round(x, 2) for x in os.getloadavg()]}
    with Receiver() as receiver:
        async with stack.client(timeout=60) as api:
            if only == "fan-out":
                figures["fan-out"] = await scenario_fan_out(api, temporal, stack, 20)
                return figures
            figures["reactive-1"] = await scenario_firing(
                api, temporal, receiver, "reactive", n // 4, 1
            )
            figures["lone-firing"] = await scenario_firing(
                api, temporal, receiver, "lone", 10, 1, pause=0.5
            )
            figures["burst-100"] = await scenario_firing(api, temporal, receiver, "burst", n, 100)
            for size in (1, 10, 100, 500):
                count = n // 4 if size == 1 else max(n, size * 2)
                figures[f"quiet-{size}"] = await scenario_quiet(api, temporal, count, size)
            for keys in (1, 100, 1000):
                figures[f"keys-{keys}"] = await scenario_quiet(api, temporal, 1000, 100, keys)
            figures["proactive"] = await scenario_proactive(api, temporal, receiver, n // 10)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--only", choices=["fan-out"], help="only this scenario")
    parser.add_argument(
        "--no-inbox", action="store_true", help="the API signals each automation itself"
    )
    args = parser.parse_args()
    env = {"INBOX_MIN_AUTOMATIONS": "0"} if args.no_inbox else None
    with running_stack(persistent=True, extra_env=env) as stack:
        figures = asyncio.run(run(stack, args.events, args.only))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
