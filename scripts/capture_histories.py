"""Capture AutomationWorkflow and EventInbox histories from real runs, as fixtures for the
replay test.

    .venv/bin/python scripts/capture_histories.py [--out tests/workflows/histories] [--only NAME]

Starts real Temporal dev servers (the `temporal` binary from this venv, our search attributes
registered; one of them suggests continue-as-new after a few history events), runs the
production worker (`build_worker`: the same workflow, activities and pydantic data converter) and
a loopback HTTP receiver (webhook target and lifecycle-event sink), drives every scenario below
until its outcome is seen, terminates its workflow, and writes each run's history as
`<scenario>-<n>.json` (n = 1 for the first run, then each continued run), replacing that
scenario's earlier files. tests/workflows/test_replay.py replays every file.

Everything this script knows about the workflow's interface (how it is started, signalled,
updated) is in the "workflow interface" section: when that interface changes, change it there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from pydantic_core import to_json
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.common import RawValue
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.devserver import ON_TIME_QUEUES, temporal_binary
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import Event
from temporal_automations.parcels import pack
from temporal_automations.settings import Settings
from temporal_automations.temporal import (
    SEARCH_ATTRIBUTES,
    ensure_search_attributes,
    workflow_id,
)
from temporal_automations.worker import build_worker
from temporal_automations.workflows.automation import (
    AutomationRun,
    AutomationStats,
    AutomationWorkflow,
    LagReport,
    RunLimits,
    memo_for,
    search_attributes_for,
)
from temporal_automations.workflows.inbox import (
    ACCEPT_SIGNAL,
    EventInboxWorkflow,
    InboxRun,
    InboxStatus,
    inbox_workflow_id,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "workflows" / "histories"
NAMESPACE = "default"

# The eager server suggests continue-as-new once a run's history holds this many events.
EAGER_CONTINUE_AS_NEW = {"limit.historyCount.suggestContinueAsNew": "30"}
SCENARIO_TIMEOUT = 120.0  # seconds, for everything one scenario waits for
LARGEST_FIXTURE = 1_000_000  # bytes; a file above it is reported

sys.path.append(str(ROOT))  # after the installed package: only for `tests.support`
from tests.support import ReceivedRequest, Receiver  # noqa: E402

# --------------------------------------------------------------------------- workflow interface
# How the API (api/store.py, api/routing.py) starts and drives an automation's workflow.


async def start_automation(
    client: Client, task_queue: str, automation: Automation, limits: RunLimits | None = None
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        AutomationWorkflow.run,
        AutomationRun(automation=automation, limits=limits or RunLimits()),
        id=workflow_id(automation.id),
        task_queue=task_queue,
        memo=memo_for(automation, AutomationStats()),
        search_attributes=search_attributes_for(automation),
        static_summary=f"Automation: {automation.name}",
    )


async def deliver_events(handle: WorkflowHandle[Any, Any], events: list[Event]) -> None:
    await handle.signal(AutomationWorkflow.deliver, events)


async def send_parcel(
    client: Client, task_queue: str, data: bytes, first: InboxRun | None = None
) -> WorkflowHandle[Any, Any]:
    """As api/inbox.py does: signal-with-start the task queue's inbox with a parcel."""
    return await client.start_workflow(
        EventInboxWorkflow.run,
        first or InboxRun(),
        id=inbox_workflow_id(task_queue),
        task_queue=task_queue,
        start_signal=ACCEPT_SIGNAL,
        start_signal_args=[RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=data))],
    )


async def replace_automation(handle: WorkflowHandle[Any, Any], automation: Automation) -> None:
    await handle.execute_update(AutomationWorkflow.replace, automation)


async def set_enabled(handle: WorkflowHandle[Any, Any], enabled: bool) -> None:
    await handle.execute_update(AutomationWorkflow.set_enabled, enabled)


# --------------------------------------------------------------------------- builders


def automation(
    trigger: dict[str, Any], actions: list[dict[str, Any]] | None = None, **fields: Any
) -> Automation:
    now = datetime.now(UTC)
    return Automation.model_validate(
        {
            "id": str(uuid.uuid4()),
            "created": now,
            "updated": now,
            "name": fields.pop("name", "replay fixture"),
            "trigger": {"id": str(uuid.uuid4()), **trigger},  # as the API draws it, once
            "actions": actions or [],
            **fields,
        }
    )


def event(
    name: str,
    resource_id: str = "prefect.flow-run.r",
    *,
    occurred: datetime | None = None,
    id: uuid.UUID | None = None,
) -> Event:
    return Event.model_validate(
        {
            "id": id or uuid.uuid4(),
            "occurred": occurred or datetime.now(UTC),
            "event": name,
            "resource": {"prefect.resource.id": resource_id},
        }
    )


REACTIVE_X: dict[str, Any] = {"posture": "Reactive", "expect": ["x"]}
TERMINAL_STATES = [
    "prefect.flow-run.Completed",
    "prefect.flow-run.Failed",
    "prefect.flow-run.Crashed",
    "prefect.flow-run.Cancelled",
]
STUCK_FOR_10_S: dict[str, Any] = {  # the shortest Proactive window
    "posture": "Proactive",
    "after": ["prefect.flow-run.Running"],
    "expect": TERMINAL_STATES,
    "for_each": ["prefect.resource.id"],
    "within": 10,
}

TRIGGERED = "prefect.automation.triggered"
RESOLVED = "prefect.automation.resolved"
ACTION_TRIGGERED = "prefect.automation.action.triggered"
ACTION_EXECUTED = "prefect.automation.action.executed"
ACTION_FAILED = "prefect.automation.action.failed"


# --------------------------------------------------------------------------- one scenario's stage


class ScenarioFailed(RuntimeError):
    pass


@dataclass
class Stage:
    """What a scenario drives: a client, its own worker's task queue, its own receiver."""

    client: Client
    task_queue: str
    receiver: Receiver
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    def webhook(self, path: str, payload: str = "") -> dict[str, Any]:
        return {"type": "call-webhook", "url": f"{self.receiver.url}{path}", "payload": payload}

    async def start(
        self, definition: Automation, limits: RunLimits | None = None
    ) -> WorkflowHandle[Any, Any]:
        handle = await start_automation(self.client, self.task_queue, definition, limits)
        self.handles.append(handle)
        return handle

    async def calls(self, path: str, count: int, timeout: float = 30.0) -> list[ReceivedRequest]:
        """Wait for exactly `count` requests to `path` (more is an error too)."""
        found = await self.receiver.arrived(count, path, timeout=timeout)
        if len(found) != count:
            raise ScenarioFailed(f"{path}: expected {count} request(s), got {len(found)}")
        return found

    async def lifecycle(self, expected: dict[str, int], timeout: float = 30.0) -> None:
        """Wait until the sink has received exactly these lifecycle events (by name)."""
        wanted = Counter(expected)
        deadline = time.monotonic() + timeout
        while True:
            seen = Counter(e["event"] for e in self.receiver.lifecycle_events())
            if seen == wanted:
                return
            if time.monotonic() > deadline or any(seen[n] > wanted[n] for n in seen):
                raise ScenarioFailed(f"lifecycle events: expected {dict(wanted)}, got {dict(seen)}")
            await asyncio.sleep(0.05)

    async def settled(self, handle: WorkflowHandle[Any, Any], timeout: float = 30.0) -> None:
        """Wait until the current run has no workflow task and no activity pending: every
        signal and update so far is processed and every action has finished."""
        current = self.client.get_workflow_handle(handle.id)
        deadline = time.monotonic() + timeout
        while True:
            raw = (await current.describe()).raw_description
            if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
                return
            if time.monotonic() > deadline:
                raise ScenarioFailed(f"{handle.id} never settled: {raw.pending_activities}")
            await asyncio.sleep(0.05)

    async def run_id(self, handle: WorkflowHandle[Any, Any]) -> str:
        return (await self.client.get_workflow_handle(handle.id).describe()).run_id


# --------------------------------------------------------------------------- the scenarios


async def reactive_webhook(stage: Stage) -> None:
    """A Reactive firing whose webhook runs as a local activity; templates; lifecycle out."""
    handle = await stage.start(
        automation(
            {"posture": "Reactive", "expect": ["prefect.flow-run.Failed"]},
            [stage.webhook("/hook", "{{ automation.name }} {{ event.resource.id }}")],
            name="failures",
        )
    )
    await deliver_events(handle, [event("prefect.flow-run.Failed", "prefect.flow-run.f1")])
    await deliver_events(handle, [event("prefect.flow-run.Completed", "prefect.flow-run.f2")])
    (call,) = await stage.calls("/hook", 1)
    if call.body != b"failures prefect.flow-run.f1":
        raise ScenarioFailed(f"webhook body {call.body!r}")
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 1, ACTION_EXECUTED: 1})


async def action_fails_permanently(stage: Stage) -> None:
    """A 4xx fails the action at once (a failed local activity); the next action still runs."""
    stage.receiver.fail_next(400, path="/refuses")
    handle = await stage.start(
        automation(REACTIVE_X, [stage.webhook("/refuses"), {"type": "do-nothing"}])
    )
    await deliver_events(handle, [event("x")])
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 2, ACTION_FAILED: 1, ACTION_EXECUTED: 1})
    await stage.settled(handle)
    await stage.calls("/refuses", 1)  # never retried


async def action_retried(stage: Stage) -> None:
    """Two 5xx answers use up the local attempts; the regular activity's first attempt fails
    too, and its second, after a durable backoff, succeeds."""
    stage.receiver.fail_next(500, times=3, path="/flaky")
    handle = await stage.start(automation(REACTIVE_X, [stage.webhook("/flaky")]))
    await deliver_events(handle, [event("x")])
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 1, ACTION_EXECUTED: 1})
    await stage.settled(handle)
    calls = await stage.calls("/flaky", 4)
    if len({c.headers["Idempotency-Key"] for c in calls}) != 1:
        raise ScenarioFailed("the retries did not share one idempotency key")


async def proactive_deadline(stage: Stage) -> None:
    """A stuck-run window: its timer fires the firing; the run's completion resolves it."""
    handle = await stage.start(
        automation(
            STUCK_FOR_10_S,
            [stage.webhook("/stuck", "{{ event.resource.id }}")],
            actions_on_resolve=[stage.webhook("/resolved")],
        )
    )
    now = datetime.now(UTC)
    await deliver_events(
        handle,
        [
            event("prefect.flow-run.Running", "prefect.flow-run.stuck", occurred=now),
            event("prefect.flow-run.Running", "prefect.flow-run.done", occurred=now),
        ],
    )
    await deliver_events(handle, [event("prefect.flow-run.Completed", "prefect.flow-run.done")])
    (call,) = await stage.calls("/stuck", 1, timeout=40)
    if call.body != b"prefect.flow-run.stuck":
        raise ScenarioFailed(f"the wrong run fired: {call.body!r}")
    await deliver_events(handle, [event("prefect.flow-run.Completed", "prefect.flow-run.stuck")])
    await stage.calls("/resolved", 1)
    await stage.lifecycle({TRIGGERED: 1, RESOLVED: 1, ACTION_TRIGGERED: 2, ACTION_EXECUTED: 2})


async def proactive_deadlines_close(stage: Stage) -> None:
    """Two stuck runs 3 s apart: the second deadline is armed while the first one's webhook runs
    (as a local activity, which holds that workflow task open)."""
    handle = await stage.start(
        automation(STUCK_FOR_10_S, [stage.webhook("/stuck", "{{ event.resource.id }}")])
    )
    for run in ("prefect.flow-run.first", "prefect.flow-run.second"):
        await deliver_events(
            handle, [event("prefect.flow-run.Running", run, occurred=datetime.now(UTC))]
        )
        await asyncio.sleep(3)
    await stage.calls("/stuck", 2, timeout=40)
    await stage.lifecycle({TRIGGERED: 2, ACTION_TRIGGERED: 2, ACTION_EXECUTED: 2})


async def lagging_bridge(stage: Stage) -> None:
    """Semantics v2: a bridge reports lag, holding a stuck-run deadline; the deadline fires
    once the lag is reported gone. A second Running does not move the deadline."""
    handle = await stage.start(automation(STUCK_FOR_10_S, [stage.webhook("/stuck")]))
    now = datetime.now(UTC)
    await handle.signal(AutomationWorkflow.report_lag, LagReport(lag_seconds=600))
    await deliver_events(
        handle, [event("prefect.flow-run.Running", "prefect.flow-run.slow", occurred=now)]
    )
    await deliver_events(
        handle,
        [
            event(
                "prefect.flow-run.Running",
                "prefect.flow-run.slow",
                occurred=now + timedelta(seconds=5),
            )
        ],
    )
    await asyncio.sleep(11)
    if any(r.path == "/stuck" for r in stage.receiver.requests_snapshot()):
        raise ScenarioFailed("fired while the bridge said it lagged")
    await handle.signal(AutomationWorkflow.report_lag, LagReport(lag_seconds=0))
    await stage.calls("/stuck", 1)
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 1, ACTION_EXECUTED: 1})


async def composites(stage: Stage) -> None:
    """Semantics v2: a sequence whose events arrive in one batch out of order, and a compound
    of a reactive and a proactive child."""
    sequence = await stage.start(
        automation(
            {
                "type": "sequence",
                "triggers": [
                    {"posture": "Reactive", "expect": ["a"], "id": str(uuid.uuid4())},
                    {"posture": "Reactive", "expect": ["b"], "id": str(uuid.uuid4())},
                ],
            },
            [stage.webhook("/sequence", "{% for e in events %}{{ e.event }}{% endfor %}")],
        )
    )
    compound = await stage.start(
        automation(
            {
                "type": "compound",
                "require": "all",
                "triggers": [
                    {"posture": "Reactive", "expect": ["deploy"], "id": str(uuid.uuid4())},
                    {
                        "posture": "Proactive",
                        "expect": ["beat"],
                        "within": 10,
                        "id": str(uuid.uuid4()),
                    },
                ],
            },
            [stage.webhook("/compound")],
        )
    )
    now = datetime.now(UTC)
    await deliver_events(
        sequence,
        [
            event("b", "prefect.flow-run.s", occurred=now + timedelta(seconds=1)),
            event("a", "prefect.flow-run.s", occurred=now),
        ],
    )
    (call,) = await stage.calls("/sequence", 1)
    if call.body != b"ab":
        raise ScenarioFailed(f"sequence body {call.body!r}")
    await deliver_events(compound, [event("deploy", "prefect.flow-run.c")])
    await stage.calls("/compound", 1, timeout=40)


async def pause_resume_replace(stage: Stage) -> None:
    """set_enabled (pause, resume) and replace updates; a silence deadline armed by replace,
    its timer cancelled by the pause that follows."""
    counting = automation(
        {"posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 3600},
        [stage.webhook("/count")],
    )
    handle = await stage.start(counting)
    await deliver_events(handle, [event("x")])
    await stage.settled(handle)
    await set_enabled(handle, False)
    await set_enabled(handle, True)  # starts afresh: the x before the pause no longer counts
    await deliver_events(handle, [event("x")])
    await stage.settled(handle)
    if stage.receiver.requests_snapshot("/count"):
        raise ScenarioFailed("fired on the count from before the pause")
    await deliver_events(handle, [event("x")])
    await stage.calls("/count", 1)
    silence = automation({"posture": "Proactive", "expect": ["heartbeat"], "within": 600})
    await replace_automation(
        handle, counting.model_copy(update={"name": "renamed", "trigger": silence.trigger})
    )
    await set_enabled(handle, False)
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 1, ACTION_EXECUTED: 1})
    await stage.settled(handle)


async def duplicate_event_ids(stage: Stage) -> None:
    """The same event three times, in two signals, fires once (a firing with no actions)."""
    handle = await stage.start(automation(REACTIVE_X))
    once = event("x")
    await deliver_events(handle, [once])
    await deliver_events(handle, [once, once])
    await stage.settled(handle)
    await stage.lifecycle({TRIGGERED: 1})


async def continue_as_new(stage: Stage) -> None:
    """On the eager server: unrelated traffic makes the server suggest continue-as-new while a
    stuck-run window is open; the window fires in a later run."""
    handle = await stage.start(
        automation(STUCK_FOR_10_S, [stage.webhook("/late", "{{ event.resource.id }}")])
    )
    first_run = await stage.run_id(handle)
    await deliver_events(handle, [event("prefect.flow-run.Running", "prefect.flow-run.slow")])
    for index in range(25):
        run = f"prefect.flow-run.q{index}"
        await deliver_events(handle, [event("prefect.flow-run.Running", run)])
        await deliver_events(handle, [event("prefect.flow-run.Completed", run)])
    await stage.settled(handle)
    if await stage.run_id(handle) == first_run:
        raise ScenarioFailed("the workflow did not continue as new")
    (call,) = await stage.calls("/late", 1, timeout=40)
    if call.body != b"prefect.flow-run.slow":
        raise ScenarioFailed(f"the wrong run fired: {call.body!r}")
    await stage.lifecycle({TRIGGERED: 1, ACTION_TRIGGERED: 1, ACTION_EXECUTED: 1})


# A few thousand events in a handful of signals, the first larger than any workflow task should
# evaluate at once. Each event weighs ~200 bytes, ~270 in the JSON file (base64): 2,000 of them
# keep the file near half a megabyte.
BACKLOG_SIGNALS = [1_000, 500, 300, 200]
BACKLOG_KEYS = 10


async def backlog(stage: Stage) -> None:
    """A backlog arriving in a few big signals: ten keys reach their threshold in the same
    workflow tasks, so ten firings run their actions side by side."""
    total = sum(BACKLOG_SIGNALS)
    handle = await stage.start(
        automation(
            {
                "posture": "Reactive",
                "expect": ["x"],
                "for_each": ["prefect.resource.id"],
                "threshold": total // BACKLOG_KEYS // 3,
                "within": 3600,
            },
            [stage.webhook("/backlog", "{{ event.resource.id }}")],
        )
    )
    keys = [f"k{key}" for key in range(BACKLOG_KEYS)]
    sent = 0
    for size in BACKLOG_SIGNALS:
        await deliver_events(
            handle, [event("x", keys[index % BACKLOG_KEYS]) for index in range(sent, sent + size)]
        )
        sent += size
    calls = await stage.calls("/backlog", BACKLOG_KEYS)
    if sorted(c.body.decode() for c in calls) != sorted(keys):
        raise ScenarioFailed("not one firing per key")
    await stage.lifecycle(
        {TRIGGERED: BACKLOG_KEYS, ACTION_TRIGGERED: BACKLOG_KEYS, ACTION_EXECUTED: BACKLOG_KEYS}
    )
    await stage.settled(handle)


WEBHOOK_BATCH_FIRINGS = 20


async def webhook_batch(stage: Stage) -> None:
    """Twenty firings queued in one task, whose only action is one webhook, run as a few
    batched local activities: one call answers 500 (retried alone, as a regular activity,
    then 200), one 400 (failed alone), the others 200."""
    stage.receiver.fail_next(500, times=1, path="/batch")
    stage.receiver.fail_next(400, times=1, path="/batch")
    handle = await stage.start(
        automation(
            {"posture": "Reactive", "expect": ["x"], "for_each": ["prefect.resource.id"]},
            [stage.webhook("/batch", "{{ event.resource.id }}")],
        )
    )
    count = WEBHOOK_BATCH_FIRINGS
    await deliver_events(handle, [event("x", f"prefect.flow-run.b{n}") for n in range(count)])
    await stage.lifecycle(
        {
            TRIGGERED: count,
            ACTION_TRIGGERED: count,
            ACTION_EXECUTED: count - 1,
            ACTION_FAILED: 1,
        }
    )
    await stage.settled(handle)
    calls = await stage.calls("/batch", count + 1)
    if len({c.headers["Idempotency-Key"] for c in calls}) != count:
        raise ScenarioFailed("not one idempotency key per firing")


def markers(events: Events) -> int:
    return sum(1 for e in events if e.event_type == E.EVENT_TYPE_MARKER_RECORDED)


# A run may carry only this much here; each event carries 128 bytes that do not compress, so
# that the queue, not the trigger's state, is what does not fit.
OVERFLOW_LIMITS = RunLimits(max_carry_bytes=45_000, overflow_chunk_items=60)
OVERFLOW_EVENTS = 300


async def overflow(stage: Stage) -> None:
    """On the eager server, with a tiny carry budget: the run hands part of its backlog to
    overflow children, pulls it back chunk by chunk, and acts on every event once."""
    handle = await stage.start(
        automation(REACTIVE_X, [stage.webhook("/overflow", "{{ event.id }}")]), OVERFLOW_LIMITS
    )
    events = [
        event("x", f"prefect.flow-run.o{index}").model_copy(
            update={"payload": {"noise": "".join(uuid.uuid4().hex for _ in range(4))}}
        )
        for index in range(OVERFLOW_EVENTS)
    ]
    # The run's history first passes the server's suggestion (EAGER_CONTINUE_AS_NEW; a signal
    # and its own task add 4 events), so the backlog arrives in a run that continues as new
    # with all of it. A run's first task alone did it while each patch was a marker of its own.
    for _ in range(6):
        await deliver_events(handle, [event("unrelated")])
        await stage.settled(handle)
    await deliver_events(handle, events)
    calls = await stage.calls("/overflow", OVERFLOW_EVENTS, timeout=90)
    if sorted(c.body.decode() for c in calls) != sorted(str(e.id) for e in events):
        raise ScenarioFailed("not each event acted on once")
    await stage.settled(handle, timeout=60)


async def inbox(stage: Stage) -> None:
    """The inbox: parcels for two automations and one that does not exist, one that is not a
    parcel, rounds (the second waits for its timer) and a continue-as-new with what it holds."""
    targets = [await stage.start(automation(REACTIVE_X)) for _ in range(2)]
    missing = workflow_id(uuid.uuid4())
    sent = 0

    def parcel(*names: str) -> bytes:
        nonlocal sent
        deliveries = [(missing, b"[" + to_json(event("x")) + b"]")]
        for handle in targets:
            deliveries.append(
                (handle.id, b"[" + b",".join(to_json(event(n)) for n in names) + b"]")
            )
        sent += len(names)
        return pack(deliveries, compress=True)  # as the API sends them

    first = InboxRun(continue_at_signals=4, spacing=timedelta(milliseconds=200))
    handle = await send_parcel(stage.client, stage.task_queue, parcel("x", "x"), first)
    stage.handles.append(handle)
    await send_parcel(stage.client, stage.task_queue, b"not a parcel")
    for _ in range(4):
        await send_parcel(stage.client, stage.task_queue, parcel("x"))
        await asyncio.sleep(0.1)

    async def delivered() -> InboxStatus:
        return await stage.client.get_workflow_handle(handle.id).query(EventInboxWorkflow.status)

    deadline = time.monotonic() + 60
    while (status := await delivered()).stats.runs < 2 or status.pending_bytes:
        if time.monotonic() > deadline:
            raise ScenarioFailed(f"the inbox never delivered all and continued: {status}")
        await asyncio.sleep(0.1)
    for target in targets:
        await stage.settled(target)
        received = (await target.query(AutomationWorkflow.status)).stats.events_received
        if received != sent:
            raise ScenarioFailed(f"{target.id} received {received} of {sent} events")


# --------------------------------------------------------------------------- what each must show


Events = list[HistoryEvent]


def has(*kinds: EventType.ValueType) -> Callable[[Events], bool]:
    return lambda events: set(kinds) <= {e.event_type for e in events}


def retried_activity(events: Events) -> bool:
    return any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.attempt > 1
        for e in events
    )


def scheduled(activity: str) -> Callable[[Events], bool]:
    return lambda events: any(
        e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == activity
        for e in events
    )


def timers_fired(events: Events) -> int:
    return sum(1 for e in events if e.event_type == E.EVENT_TYPE_TIMER_FIRED)


def signals(count: int) -> Callable[[Events], bool]:
    kind = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    return lambda events: sum(e.event_type == kind for e in events) == count


E = EventType
ACTIONS_RAN = has(E.EVENT_TYPE_MARKER_RECORDED, E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)


@dataclass(frozen=True)
class Scenario:
    name: str
    drive: Callable[[Stage], Awaitable[None]]
    checks: dict[str, Callable[[Events], bool]]
    eager: bool = False  # on the server that suggests continue-as-new early
    min_runs: int = 1


SCENARIOS = [
    Scenario(
        "reactive-webhook",
        reactive_webhook,
        {
            "local activity marker and emit activity": ACTIONS_RAN,
            "memo upserted": has(E.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED),
        },
    ),
    Scenario(
        "action-fails-permanently",
        action_fails_permanently,
        {"local activity marker and emit activity": ACTIONS_RAN},
    ),
    Scenario(
        "action-retried",
        action_retried,
        {
            "a local attempt, then the action as a regular activity": lambda events: (
                has(E.EVENT_TYPE_MARKER_RECORDED)(events) and scheduled("call_webhook")(events)
            ),
            "an activity attempt > 1": retried_activity,
        },
    ),
    Scenario(
        "proactive-deadline",
        proactive_deadline,
        {"timer fired": has(E.EVENT_TYPE_TIMER_STARTED, E.EVENT_TYPE_TIMER_FIRED)},
    ),
    Scenario(
        "proactive-deadlines-close",
        proactive_deadlines_close,
        {"armed early, then on time": lambda events: timers_fired(events) >= 3},
    ),
    Scenario(
        "pause-resume-replace",
        pause_resume_replace,
        {
            "updates": has(
                E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED,
            ),
            "search attributes upserted": has(E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
            "timer started and cancelled": has(
                E.EVENT_TYPE_TIMER_STARTED, E.EVENT_TYPE_TIMER_CANCELED
            ),
        },
    ),
    Scenario("duplicate-event-ids", duplicate_event_ids, {"two signals": signals(2)}),
    Scenario(
        "continue-as-new",
        continue_as_new,
        {
            "continued as new": has(E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW),
            "timer fired": has(E.EVENT_TYPE_TIMER_FIRED),
        },
        eager=True,
        min_runs=2,
    ),
    Scenario(
        "overflow",
        overflow,
        {
            "overflow child started": has(E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED),
            "its release signalled": has(E.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED),
            "continued as new": has(E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW),
        },
        eager=True,
        min_runs=2,
    ),
    Scenario(
        "lagging-bridge",
        lagging_bridge,
        {"timer started": has(E.EVENT_TYPE_TIMER_STARTED), "signals": signals(4)},
    ),
    Scenario(
        "composites",
        composites,
        {"timer fired": has(E.EVENT_TYPE_TIMER_FIRED)},
    ),
    Scenario(
        "webhook-batch",
        webhook_batch,
        {
            "fewer local activities than firings": lambda events: (
                0 < markers(events) < WEBHOOK_BATCH_FIRINGS
            ),
            "the transient one retried as a regular activity": scheduled("call_webhook"),
        },
    ),
    Scenario(
        "inbox",
        inbox,
        {
            "rounds as local activities": has(E.EVENT_TYPE_MARKER_RECORDED),
            "a round's timer": has(E.EVENT_TYPE_TIMER_STARTED, E.EVENT_TYPE_TIMER_FIRED),
            "continued as new": has(E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW),
        },
        min_runs=2,
    ),
    Scenario(
        "backlog",
        backlog,
        {"the signals": signals(len(BACKLOG_SIGNALS)), "actions": ACTIONS_RAN},
    ),
]


# --------------------------------------------------------------------------- running them


async def run_histories(client: Client, started: WorkflowHandle[Any, Any]) -> list[WorkflowHistory]:
    """Every run of a workflow, from the one started to the last, following continue-as-new."""
    histories: list[WorkflowHistory] = []
    run_id = started.first_execution_run_id or started.result_run_id
    while True:
        history = await client.get_workflow_handle(started.id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        if last.event_type != E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            return histories
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id


async def run_scenario(client: Client, scenario: Scenario) -> list[WorkflowHistory]:
    with Receiver() as receiver:
        settings = Settings(
            task_queue=f"capture-{scenario.name}-{uuid.uuid4()}",
            api_url=f"{receiver.url}/api",  # lifecycle events go to the receiver's /api/events
            allow_private_webhooks=True,
        )
        stage = Stage(client, settings.task_queue, receiver)
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as http,
            TemplateRenderer() as renderer,
            build_worker(client, settings, http, renderer),
        ):
            try:
                async with asyncio.timeout(SCENARIO_TIMEOUT):
                    await scenario.drive(stage)
                    for handle in stage.handles:
                        await stage.settled(handle)
            finally:
                for handle in stage.handles:
                    with contextlib.suppress(Exception):  # a failure above is what to report
                        await client.get_workflow_handle(handle.id).terminate("fixture captured")
        histories: list[WorkflowHistory] = []
        for handle in stage.handles:
            histories += await run_histories(client, handle)
    events = [e for h in histories for e in h.events]
    missing = [what for what, check in scenario.checks.items() if not check(events)]
    if len(histories) < scenario.min_runs:
        missing.append(f"at least {scenario.min_runs} runs (got {len(histories)})")
    if missing:
        raise ScenarioFailed(f"the histories lack: {', '.join(missing)}")
    return histories


async def run_on_server(
    scenarios: list[Scenario], dynamic_config: dict[str, str]
) -> dict[str, list[WorkflowHistory] | BaseException]:
    if not scenarios:
        return {}
    extra_args: list[str] = []
    for key, value in {**ON_TIME_QUEUES, **dynamic_config}.items():
        extra_args += ["--dynamic-config-value", f"{key}={value}"]
    env = await WorkflowEnvironment.start_local(
        namespace=NAMESPACE,
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_existing_path=temporal_binary(),
        dev_server_extra_args=extra_args,
    )
    try:
        await ensure_search_attributes(env.client, NAMESPACE)  # as the worker does at start
        results = await asyncio.gather(
            *(run_scenario(env.client, scenario) for scenario in scenarios),
            return_exceptions=True,
        )
    finally:
        await env.shutdown()
    return {scenario.name: result for scenario, result in zip(scenarios, results, strict=True)}


def write(out: Path, name: str, histories: Iterable[WorkflowHistory]) -> list[Path]:
    """Replace the scenario's files: `<name>-1.json` for the first run, and so on."""
    out.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(rf"{re.escape(name)}-\d+\.json")
    for old in out.iterdir():
        if pattern.fullmatch(old.name):
            old.unlink()
    written = []
    for number, history in enumerate(histories, start=1):
        path = out / f"{name}-{number}.json"
        path.write_text(history.to_json() + "\n")
        written.append(path)
    return written


async def capture(out: Path, only: list[str]) -> int:
    unknown = set(only) - {s.name for s in SCENARIOS}
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    chosen = [s for s in SCENARIOS if not only or s.name in only]
    began = time.monotonic()
    groups = [
        ([s for s in chosen if not s.eager], {}),
        ([s for s in chosen if s.eager], EAGER_CONTINUE_AS_NEW),
    ]
    outcomes = await asyncio.gather(
        *(run_on_server(group, config) for group, config in groups), return_exceptions=True
    )
    results: dict[str, list[WorkflowHistory] | BaseException] = {}
    for (group, _), outcome in zip(groups, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # the server itself failed
            results.update((scenario.name, outcome) for scenario in group)
        else:
            results.update(outcome)
    failed = 0
    total = 0
    for scenario in chosen:
        result = results[scenario.name]
        if isinstance(result, BaseException):
            failed += 1
            print(f"FAILED {scenario.name}: {result!r}", file=sys.stderr)
            continue
        for path, history in zip(write(out, scenario.name, result), result, strict=True):
            size = path.stat().st_size
            total += size
            note = "  (over 1 MB: make the scenario smaller)" if size > LARGEST_FIXTURE else ""
            print(f"{path.relative_to(out)}: {len(history.events)} events, {size:,} bytes{note}")
    print(f"{total:,} bytes in {out}; {time.monotonic() - began:.1f} s")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON files go")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="capture only this scenario"
    )
    arguments = parser.parse_args()
    sys.exit(asyncio.run(capture(arguments.out.resolve(), arguments.only)))


if __name__ == "__main__":
    main()
