"""Where a proactive deadline's time goes: the proactive scenario on a fresh stack, then each
deadline read against its automation's history. Figures printed as JSON, never asserted.

    python bench/deadline_trace.py [--deadlines 100] [--automations 10000] [--out trace.json]

For each deadline D, with its webhook received at A (the receiver's clock, the same machine's):
- `task_late`: the start of the workflow task that ran the webhook (the last task started
  before A) minus D. Never below 0: a deadline does not fire early;
- `to_webhook`: A minus that task's start (the SDK's hand-offs, the local activity, the call);
- `rearmed`: a workflow task started in the REARM_WINDOW_S before D: a timer armed ahead that
  woke the workflow early and was armed again (workflows/timer_lead.py), or, while events are
  still being sent, a signal's task.
And for the run as a whole: how many runs the automation went through (continue-as-new) and
every failed workflow task with its cause (a signal that met a continue-as-new fails it with
UnhandledCommand; README, Known limits).

With `--deadlines` over ~280, one event and one deadline every 100 ms reach a continue-as-new.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from bisect import bisect_left
from datetime import UTC
from pathlib import Path
from typing import Any

from scale import caught_up  # type: ignore[import-not-found]
from side_by_side import grow, settled  # type: ignore[import-not-found]
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from bench import (  # type: ignore[import-not-found]
    create,
    proactive_automation,
    start_runs,
    summary_ms,
    wait_for_arrivals,
    webhook,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporal_automations.temporal import workflow_id  # noqa: E402
from tests.stack import Stack, running_stack  # noqa: E402
from tests.support import Receiver  # noqa: E402

WITHIN_S = 10.0
APART_S = 0.1
REARM_WINDOW_S = 0.02  # leads are at most MAX_LEAD (20 ms)


def _at(history_event: HistoryEvent) -> float:
    return history_event.event_time.ToDatetime(UTC).timestamp()


async def _histories(stack: Stack, automation_id: str) -> list[list[HistoryEvent]]:
    """Every run of the automation's workflow, oldest first."""
    client = await Client.connect(stack.temporal_address)
    runs = []
    async for info in client.list_workflows(f"WorkflowId = '{workflow_id(automation_id)}'"):
        handle = client.get_workflow_handle(info.id, run_id=info.run_id)
        runs.append((info.start_time, list((await handle.fetch_history()).events)))
    return [events for _, events in sorted(runs, key=lambda run: run[0])]


def trace(
    deadlines: dict[str, float], seen: dict[str, float], runs: list[list[HistoryEvent]]
) -> dict[str, Any]:
    events = [history_event for run in runs for history_event in run]
    task_starts = sorted(
        _at(e) for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    )
    rows = []
    for key, due in deadlines.items():
        if key not in seen or not task_starts:
            continue
        received = seen[key]
        ran_in = task_starts[max(bisect_left(task_starts, received) - 1, 0)]
        woke_early = bisect_left(task_starts, due - REARM_WINDOW_S) < bisect_left(task_starts, due)
        rows.append(
            {
                "late_ms": (received - due) * 1000,
                "task_late_ms": (ran_in - due) * 1000,
                "to_webhook_ms": (received - ran_in) * 1000,
                "rearmed": woke_early,
            }
        )
    failed = [
        WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    slowest = sorted(rows, key=lambda row: -row["late_ms"])[:5]
    return {
        "deadlines": len(deadlines),
        "received": len(rows),
        "late": summary_ms([row["late_ms"] / 1000 for row in rows]),
        "task_late": summary_ms([row["task_late_ms"] / 1000 for row in rows]),
        "to_webhook": summary_ms([row["to_webhook_ms"] / 1000 for row in rows]),
        "rearmed": sum(row["rearmed"] for row in rows),
        "runs": len(runs),
        "history_events": sum(len(run) for run in runs),
        "failed_workflow_tasks": failed,
        "slowest": [
            {name: round(v, 1) if isinstance(v, float) else v for name, v in row.items()}
            for row in slowest
        ],
    }


async def run(deadline_count: int, automations: int) -> dict[str, Any]:
    with Receiver() as receiver, running_stack(persistent=True) as stack:
        async with stack.client(timeout=120) as api:
            warm = {"posture": "Reactive", "expect": ["warm"]}
            await create(
                api, {"name": "warm", "trigger": warm, "actions": [{"type": "do-nothing"}]}
            )
            await caught_up(stack)
            figures: dict[str, Any] = {}
            if automations > 1:
                figures["grown"] = await grow(api, stack, 1, automations)
                figures["settled_s"] = await settled(stack)
            automation_id = await create(
                api, proactive_automation(webhook(receiver, "proactive"), WITHIN_S)
            )
            deadlines = await start_runs(api, deadline_count, WITHIN_S, APART_S)
            seen = await wait_for_arrivals(receiver, "proactive", deadline_count, WITHIN_S + 60)
            runs = await _histories(stack, automation_id)
            (await api.delete(f"/automations/{automation_id}")).raise_for_status()
            return figures | trace(deadlines, seen, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadlines", type=int, default=100)
    parser.add_argument("--automations", type=int, default=1, help="idle ones registered too")
    parser.add_argument("--out", type=Path, help="also write the figures here")
    args = parser.parse_args()
    figures = asyncio.run(run(args.deadlines, args.automations))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
