"""The fault suite ("nothing wedges, nothing is lost"): crashes, backlogs and poison, each on its
own fresh real stack (SQLite dev server, worker and API processes, loopback receivers), printed
as one markdown table.

    python bench/faults.py [--scale small|full] [--only NAME[,NAME...]]

Scenarios (the issue's items 1-8):
- server-kill, worker-kill, api-kill: that process SIGKILLed mid-stream, then restarted (the dev
  server on the same SQLite file); every acknowledged event must be acted on exactly once;
- backlog, backlog-large: events acknowledged while the worker is dead, then drained;
- poison: `occurred` in year 1 and `within` 1e12 / NaN must be refused with 422;
- storm: two automations that react to any event, so to each other's lifecycle events;
- deep-payload: an event nested 197 levels deep, then normal events through a chain of three
  automations, each on the previous one's `prefect.automation.triggered`;
- templates: nested loops and a gigabyte string in webhook templates, beside a canary;
- health: /api/health must answer 503 within 5 s of the worker dying;
- proactive: a deadline that passes while the worker is dead fires just after its restart.

Per row: events acknowledged (204), acted on (one webhook per event), lost (acknowledged, never
acted on), duplicates (an event acted on under more than one Idempotency-Key: a second action
that a receiver honouring the key could not recognise; re-sends of the same key after a crash
are at-least-once delivery and are counted in the notes), time to recover (from the restart of
the killed part to the last acknowledged event acted on), automations left wedged (status not
answering 200, workflow not running, or a workflow task retrying: attempt > 1). Every wait has a
deadline; a scenario that gives up reports what it saw. The goal of every row: 0 lost,
0 duplicate, 0 wedged, and the scenario's own goals (the "goal" column).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionStatus

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporal_automations.temporal import workflow_id  # noqa: E402
from tests.stack import Stack, running_stack  # noqa: E402
from tests.support import Receiver  # noqa: E402

T = TypeVar("T")

# The scenarios' own goals: the issue's figures where it gives one (503 within 5 s, "~2 s"
# after a restart); where it says only "bounded" or "low", ours, stated here.
HEALTH_503_WITHIN = 5.0  # seconds after the worker dies
PROACTIVE_AFTER_RESTART = 3.0  # "~2 s" after the worker restarts, its own start-up included
# Both automations together, once the storm has settled: a chain of automations is cut at
# 20 links (as Prefect does); 200 leaves room for a few firings per link.
STORM_MAX_FIRINGS = 200
STORM_SETTLED_AFTER = 3.0  # no firing for this long: the storm is over
CANARY_MAX_LATENCY = 1.0  # seconds, accepted -> webhook, while the bad templates run
WORKER_MAX_RSS_MB = 512.0  # peak resident memory of the worker process
WORKER_TREE_MAX_RSS_MB = 1024.0  # the worker and its child processes together (sampled)
DEEP_PAYLOAD_LEVELS = 197
# Status fields (where the engine reports them) that mean work is still pending.
PENDING_WORK = ("backlog", "waiting_signals", "queued_firings", "running_firings")


# --------------------------------------------------------------------------- the row


@dataclass
class Row:
    scenario: str
    acknowledged: int = 0
    acted_on: int = 0
    duplicates: int = 0
    lost: int = 0
    recover_seconds: float | None = None
    wedged: int = 0
    notes: list[str] = field(default_factory=list)
    # Scenario-specific measurements (answers, seconds, counts) that the tests assert on.
    figures: dict[str, Any] = field(default_factory=dict)
    # The scenario's own goals of behaviour it missed, in words (empty when met).
    problems: list[str] = field(default_factory=list)
    # Its timing goals missed (a figure over its target): the table says MISSED, but they are
    # figures of this machine and its load, which tests print and never assert.
    slow: list[str] = field(default_factory=list)

    @property
    def goal_met(self) -> bool:
        return (
            self.lost == 0
            and self.duplicates == 0
            and self.wedged == 0
            and not self.problems
            and not self.slow
        )


def markdown_table(rows: list[Row]) -> str:
    lines = [
        "| scenario | acknowledged | acted on | lost | duplicates | recover (s) | wedged "
        "| goal | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        recover = "—" if row.recover_seconds is None else f"{row.recover_seconds:.1f}"
        notes = (
            "; ".join([*row.problems, *row.slow, *row.notes]).replace("|", "\\|").replace("\n", " ")
        )
        lines.append(
            f"| {row.scenario} | {row.acknowledged} | {row.acted_on} | {row.lost} "
            f"| {row.duplicates} | {recover} | {row.wedged} "
            f"| {'met' if row.goal_met else 'MISSED'} | {notes} |"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- small helpers


# Extra environment for every stack's processes (`--env KEY=VALUE`), e.g. a setting to compare.
STACK_ENV: dict[str, str] = {}


def fresh_stack() -> contextlib.AbstractContextManager[Stack]:
    """A new stack whose Temporal state lives in a SQLite file (so the server can be killed and
    restarted on it), stopped by PID whatever happens."""
    return running_stack(persistent=True, extra_env=STACK_ENV)


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `check` until it holds or `timeout` passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def run_async(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion on a loop of its own, in a thread of its own: callers may
    be inside a test runner whose event loop must stay untouched."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def event(name: str, resource_id: str | None = None, **fields: Any) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource_id or f"fault.run.{uuid.uuid4()}"},
        **fields,
    }


def webhook(receiver: Receiver, path: str, payload: str = "{{ event.id }}") -> dict[str, Any]:
    return {"type": "call-webhook", "url": f"{receiver.url}{path}", "payload": payload}


def per_event(name: str, receiver: Receiver, path: str) -> dict[str, Any]:
    """Fires one webhook per event called `name` (threshold 1, a bucket per resource)."""
    return {
        "name": f"fault {name}",
        "trigger": {
            "posture": "Reactive",
            "expect": [name],
            "for_each": ["prefect.resource.id"],
            "threshold": 1,
        },
        "actions": [webhook(receiver, path)],
    }


def create(stack: Stack, body: dict[str, Any]) -> str:
    with stack.sync_client() as api:
        response = api.post("/automations/", json=body)
    if response.status_code != 201:
        raise RuntimeError(f"creating {body.get('name')!r}: {response.status_code} {response.text}")
    return str(response.json()["id"])


def post_events(stack: Stack, events: list[dict[str, Any]], timeout: float = 30.0) -> int | str:
    """One POST; its status code, or the name of the error when there was no answer."""
    try:
        with stack.sync_client(timeout=timeout) as api:
            return api.post("/events", json=events).status_code
    except httpx.HTTPError as error:
        return type(error).__name__


def automation_status(stack: Stack, automation_id: str) -> dict[str, Any] | None:
    try:
        with stack.sync_client(timeout=10) as api:
            response = api.get(f"/automations/{automation_id}/status")
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def progress(stack: Stack, automation_id: str) -> str:
    """What the automation says it did: events received, firings, its last actions' results."""
    status = automation_status(stack, automation_id)
    if status is None:
        return "status unavailable"
    stats = status.get("stats", {})
    results = Counter(
        action.get("status", "?")
        for firing in stats.get("recent", [])
        for action in firing.get("actions", [])
    )
    recent = ", ".join(f"{state} {count}" for state, count in results.most_common())
    return (
        f"status: {stats.get('events_received')} events received, "
        f"{stats.get('firings')} firings (last 20 firings' actions: {recent or 'none'})"
    )


def note_engine_counters(row: Row, stack: Stack, *automation_ids: str) -> None:
    """What the engine itself says it declined or skipped, where its status reports it:
    firings suppressed by a rate limit or cut in a chain (they count as lost here, and the notes
    say how many of the lost they explain), and errors it recorded and went on from."""
    totals: Counter[str] = Counter()
    last_errors: list[str] = []
    for automation_id in automation_ids:
        stats = (automation_status(stack, automation_id) or {}).get("stats", {})
        for key in ("suppressed_firings", "chain_cut", "errors"):
            totals[key] += int(stats.get(key) or 0)
        if stats.get("last_error"):
            last_errors.append(str(stats["last_error"]))
    words = {
        "suppressed_firings": "firings suppressed by the engine's rate limit",
        "chain_cut": "firings cut as too deep a chain",
        "errors": "errors recorded by the engine",
    }
    for key, count in totals.items():
        if count:
            row.figures[key] = count
            row.notes.append(f"{count} {words[key]}")
    for message in dict.fromkeys(last_errors):
        row.notes.append(f"last error: {short(message, 160)}")


def rss_mb(pid: int | None, field_name: str = "VmRSS") -> float | None:
    """A process's resident memory (VmRSS) or its peak (VmHWM), from /proc, in MB."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field_name}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, theirs, ...), from /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(stat.parent.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(), [])
        found += children
        queue += children
    return found


class TreeMemory:
    """Samples the resident memory of a process and all its descendants (e.g. the worker and
    any child process it renders in) five times a second; `peak_mb` is the largest sum seen."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> TreeMemory:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _sample(self) -> None:
        assert self.pid is not None
        while not self._stop.wait(0.2):
            own = rss_mb(self.pid)
            if own is None:
                return  # it died
            total = own + sum(rss_mb(child) or 0.0 for child in descendants(self.pid))
            self.peak_mb = max(self.peak_mb or 0.0, total)


def short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- the event stream


class EventStream:
    """Posts `events` to /api/events from `threads` threads, `batch` at a time, at about `rate`
    events a second (None: as fast as answered). A batch not answered 204 is re-sent with the
    same ids (as a client does: the engine evaluates an id once), except on a 4xx refusal,
    until `give_up_after` seconds; what was never acknowledged is reported, not retried."""

    def __init__(
        self,
        stack: Stack,
        events: list[dict[str, Any]],
        *,
        batch: int = 20,
        threads: int = 4,
        rate: float | None = None,
        give_up_after: float = 120.0,
    ) -> None:
        self.stack = stack
        self.batches = [events[i : i + batch] for i in range(0, len(events), batch)]
        self.rate = rate
        self.batch = batch
        self.acknowledged: dict[str, float] = {}  # event id -> time.time() of its 204
        self.refused: set[str] = set()
        self.answers: Counter[str] = Counter()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._give_up_at = time.monotonic() + give_up_after
        self._started = 0.0
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(threads)]

    def start(self) -> EventStream:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=35)

    def wait(self, timeout: float) -> bool:
        """True once every batch is answered (acknowledged, refused or given up)."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    def acked(self) -> int:
        with self._lock:
            return len(self.acknowledged)

    def failed_attempts(self) -> int:
        with self._lock:
            return sum(count for answer, count in self.answers.items() if answer != "204")

    def done(self) -> bool:
        return not any(thread.is_alive() for thread in self._threads)

    def answer_summary(self) -> str:
        with self._lock:
            return ", ".join(f"{answer}×{count}" for answer, count in self.answers.most_common())

    def _take(self) -> list[dict[str, Any]] | None:
        with self._lock:
            if self._next >= len(self.batches):
                return None
            index, self._next = self._next, self._next + 1
        if self.rate:
            not_before = self._started + index * self.batch / self.rate
            self._stop.wait(max(0.0, not_before - time.monotonic()))
        return self.batches[index]

    def _work(self) -> None:
        with self.stack.sync_client(timeout=30) as api:
            while not self._stop.is_set():
                batch = self._take()
                if batch is None:
                    return
                self._send(api, batch)

    def _send(self, api: httpx.Client, batch: list[dict[str, Any]]) -> None:
        pause = 0.1
        while not self._stop.is_set() and time.monotonic() < self._give_up_at:
            try:
                answer = str(api.post("/events", json=batch).status_code)
            except httpx.HTTPError as error:
                answer = type(error).__name__
            with self._lock:
                self.answers[answer] += 1
                if answer == "204":
                    now = time.time()
                    for item in batch:
                        self.acknowledged.setdefault(item["id"], now)
                    return
                if answer.startswith("4") and answer not in ("408", "429"):
                    self.refused.update(item["id"] for item in batch)
                    return
            self._stop.wait(pause)
            pause = min(pause * 2, 1.0)


# --------------------------------------------------------------------------- what arrived


@dataclass
class Tally:
    acted_on: int
    lost: int
    duplicates: int  # extra Idempotency-Keys for one event: acted on more than once
    redelivered: int  # the same Idempotency-Key received again (at-least-once delivery)
    unexpected: int  # webhooks for ids never acknowledged (e.g. a batch given up on)
    arrivals: dict[str, float]  # event id -> first arrival, time.time()

    @property
    def last_arrival(self) -> float | None:
        return max(self.arrivals.values(), default=None)


def body_is_id(body: str) -> str:
    return body.strip()


def tally(
    receiver: Receiver,
    path: str,
    acknowledged: set[str],
    event_id: Callable[[str], str] = body_is_id,
    known: frozenset[str] = frozenset(),
) -> Tally:
    """What `path` received: one webhook per event, `event_id(body)` naming the event. Ids in
    `known` were acknowledged but are not counted (e.g. a poison event that was accepted)."""
    keys: dict[str, set[str]] = {}
    requests: Counter[str] = Counter()
    arrivals: dict[str, float] = {}
    for request in receiver.requests_snapshot(path):
        named = event_id(request.body.decode(errors="replace"))
        keys.setdefault(named, set()).add(request.headers.get("Idempotency-Key", ""))
        requests[named] += 1
        arrivals.setdefault(named, request.received_at)
    seen = set(keys)
    return Tally(
        acted_on=len(acknowledged & seen),
        lost=len(acknowledged - seen),
        duplicates=sum(len(k) - 1 for i, k in keys.items() if i in acknowledged),
        redelivered=sum(requests[i] - len(keys[i]) for i in keys if i in acknowledged),
        unexpected=len(seen - acknowledged - known),
        arrivals={i: at for i, at in arrivals.items() if i in acknowledged},
    )


def await_acted(
    receiver: Receiver,
    path: str,
    acknowledged: set[str],
    *,
    timeout: float,
    stall: float,
    event_id: Callable[[str], str] = body_is_id,
    known: frozenset[str] = frozenset(),
) -> tuple[Tally, str | None]:
    """Wait until every acknowledged event was acted on; give up at `timeout`, or once nothing
    new arrived for `stall` seconds. Then wait for the receiver to go quiet (late duplicates).
    Returns the tally and, when it gave up, why."""
    started = time.monotonic()
    seen, progress_at = -1, started
    while True:
        current = tally(receiver, path, acknowledged, event_id, known)
        count = len(receiver.requests_snapshot(path))
        if count != seen:
            seen, progress_at = count, time.monotonic()
        if current.lost == 0:
            break
        now = time.monotonic()
        if now - started >= timeout:
            return current, f"gave up at the {timeout:.0f} s timeout"
        if now - progress_at >= stall:
            return current, (
                f"gave up: nothing acted on for {stall:.0f} s ({now - started:.0f} s in)"
            )
        time.sleep(0.1)
    quiet_until = time.monotonic() + 5.0
    wait_until(
        lambda: (
            time.time() - max((r.received_at for r in receiver.requests_snapshot(path)), default=0)
            >= 1.0
        ),
        timeout=max(0.0, quiet_until - time.monotonic()),
    )
    return tally(receiver, path, acknowledged, event_id, known), None


def record(row: Row, result: Tally, gave_up: str | None, since: float | None) -> None:
    """Fill the row's counts from a tally; `since` (time.time()) is the restart of the part."""
    row.acted_on, row.lost, row.duplicates = result.acted_on, result.lost, result.duplicates
    if gave_up:
        row.notes.append(gave_up)
    elif since is not None and result.last_arrival is not None:
        row.recover_seconds = max(0.0, result.last_arrival - since)
    row.figures["re_sent"] = result.redelivered
    if result.redelivered:
        row.notes.append(f"{result.redelivered} re-sent with the same Idempotency-Key")
    if result.unexpected:
        row.notes.append(f"{result.unexpected} acted on but never acknowledged")


# --------------------------------------------------------------------------- wedged automations


async def _wedged_reasons(stack: Stack, automation_ids: list[str], settle: float) -> dict[str, str]:
    try:
        client = await Client.connect(stack.temporal_address, namespace="default")
    except Exception as error:  # a dead server is a finding, not a crash of the harness
        return {i: f"Temporal unreachable: {error}" for i in automation_ids}
    deadline = time.monotonic() + settle
    async with stack.client(timeout=10) as http:
        while True:
            reasons: dict[str, str] = {}
            for automation_id in automation_ids:
                reason = await _why_wedged(client, http, automation_id)
                if reason:
                    reasons[automation_id] = reason
            if not reasons or time.monotonic() >= deadline:
                return reasons
            await asyncio.sleep(0.5)


async def _why_wedged(client: Client, http: httpx.AsyncClient, automation_id: str) -> str | None:
    handle = client.get_workflow_handle(workflow_id(automation_id))
    try:
        description = await handle.describe()
    except Exception as error:
        return f"describe failed: {error}"
    if description.status != WorkflowExecutionStatus.RUNNING:
        name = description.status.name if description.status else "unknown"
        return f"workflow {name.lower()}"
    raw = description.raw_description
    if raw.HasField("pending_workflow_task") and raw.pending_workflow_task.attempt > 1:
        attempt = raw.pending_workflow_task.attempt
        cause = await _last_task_failure(client, handle.id)
        return f"workflow task attempt {attempt}" + (f": {cause}" if cause else "")
    try:
        response = await http.get(f"/automations/{automation_id}/status")
    except httpx.HTTPError as error:
        return f"status: {type(error).__name__}"
    if response.status_code != 200:
        return f"status answered {response.status_code}"
    return None


async def _last_task_failure(client: Client, id_: str) -> str | None:
    """The newest workflow task failure or timeout in the history, in words."""
    try:
        history = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=id_),
                maximum_page_size=200,
            )
        )
    except Exception:
        return None
    for item in history.history.events:
        if item.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
            return short(item.workflow_task_failed_event_attributes.failure.message, 120)
        if item.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            return "workflow task timed out"
    return None


async def _task_timeouts(stack: Stack, automation_id: str) -> dict[str, int]:
    """Workflow task timeouts in the automation's current run, by kind (start-to-close: a task
    its worker held and never finished; schedule-to-start: one left in a dead worker's sticky
    queue)."""
    client = await Client.connect(stack.temporal_address, namespace="default")
    kinds: Counter[str] = Counter()
    async for item in client.get_workflow_handle(workflow_id(automation_id)).fetch_history_events():
        if item.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            kind = item.workflow_task_timed_out_event_attributes.timeout_type
            schedule_to_start = kind == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
            kinds["schedule-to-start" if schedule_to_start else "start-to-close"] += 1
    return dict(kinds)


def note_task_timeouts(row: Row, stack: Stack, automation_id: str) -> None:
    try:
        timeouts = run_async(lambda: _task_timeouts(stack, automation_id))
    except Exception as error:
        row.notes.append(f"history unreadable: {short(str(error), 120)}")
        return
    row.figures["task_timeouts"] = timeouts
    if timeouts:
        row.notes.append(
            "workflow task timeouts: " + ", ".join(f"{n} {k}" for k, n in timeouts.items())
        )


def check_wedged(row: Row, stack: Stack, automation_ids: list[str], settle: float) -> None:
    """Count the automations left wedged (after up to `settle` seconds), with the reasons."""
    reasons = run_async(lambda: _wedged_reasons(stack, automation_ids, settle))
    row.wedged = len(reasons)
    for reason in dict.fromkeys(reasons.values()):
        row.notes.append(f"wedged: {short(reason, 160)}")


def ensure_running(row: Row, stack: Stack) -> None:
    """A worker or API that died on its own is a finding; restart it so the rest can be seen."""
    if stack.worker is not None and stack.worker.poll() is not None:
        row.problems.append(f"the worker exited by itself (code {stack.worker.returncode})")
        stack.start_worker()
    if stack.api is not None and stack.api.poll() is not None:
        row.problems.append(f"the API exited by itself (code {stack.api.returncode})")
        stack.start_api()


# --------------------------------------------------------------------------- 1. kill mid-stream


def _kill_midstream(
    label: str,
    size: int,
    kill: Callable[[Stack], None],
    restart: Callable[[Stack], None],
    outage_over: Callable[[Stack, EventStream], bool],
    rate: float,
) -> Row:
    row = Row(label)
    name = f"fault.{label.replace(' ', '-')}"
    timeout = 45 + size / 100
    with fresh_stack() as stack, Receiver() as receiver:
        automation = create(stack, per_event(name, receiver, "/acted"))
        events = [event(name) for _ in range(size)]
        stream = EventStream(
            stack, events, batch=max(5, int(rate // 20)), rate=rate, give_up_after=timeout
        ).start()
        restarted_at: float | None = None
        try:
            if not wait_until(lambda: stream.acked() >= size // 2, timeout=timeout):
                row.problems.append(f"only {stream.acked()} acknowledged before the kill")
            row.notes.append(f"killed after {stream.acked()} acknowledged")
            kill(stack)
            killed_at = time.time()
            wait_until(lambda: outage_over(stack, stream), timeout=5)
            try:
                restart(stack)
            except Exception as error:
                row.problems.append(f"restart failed: {short(str(error), 200)}")
            restarted_at = time.time()
            row.notes.append(f"down {restarted_at - killed_at:.1f} s")
            if not stream.wait(timeout):
                row.notes.append("the stream did not finish in time")
        finally:
            stream.stop()
        ensure_running(row, stack)
        acknowledged = set(stream.acknowledged)
        row.acknowledged = len(acknowledged)
        if len(acknowledged) < size:
            row.notes.append(
                f"{size - len(acknowledged)} never acknowledged ({len(stream.refused)} refused)"
            )
        row.notes.append(f"answers {stream.answer_summary()}")
        result, gave_up = await_acted(
            receiver, "/acted", acknowledged, timeout=timeout, stall=20 + size / 500
        )
        record(row, result, gave_up, since=restarted_at)
        if gave_up:
            row.notes.append(progress(stack, automation))
        note_engine_counters(row, stack, automation)
        note_task_timeouts(row, stack, automation)
        check_wedged(row, stack, [automation], settle=10 + size / 1000)
    return row


def server_kill(size: int) -> Row:
    """Item 1: the Temporal dev server SIGKILLed mid-stream, restarted on the same SQLite file."""

    def outage_over(stack: Stack, stream: EventStream) -> bool:
        return stream.failed_attempts() > 0 or stream.done()

    return _kill_midstream(
        "server killed mid-stream",
        size,
        Stack.kill_server,
        lambda stack: stack.start_server(),
        outage_over,
        rate=max(100.0, size / 8),
    )


def worker_kill(size: int) -> Row:
    """Item 1: the worker SIGKILLed mid-stream (events keep being accepted), then restarted."""
    return _kill_midstream(
        "worker killed mid-stream",
        size,
        Stack.kill_worker,
        Stack.start_worker,
        lambda stack, stream: stream.acked() >= size * 3 // 4 or stream.done(),
        rate=max(100.0, size / 8),
    )


def worker_restart(size: int) -> Row:
    """Item 8 as a deploy does it: the worker stopped with SIGTERM mid-stream (a graceful stop:
    its workflow tasks finished or handed back), a new worker started at once."""

    def restart(stack: Stack) -> None:
        stack.start_worker()

    return _kill_midstream(
        "worker restarted (SIGTERM) mid-stream",
        size,
        Stack.stop_worker,
        restart,
        lambda stack, stream: True,
        rate=max(100.0, size / 8),
    )


def api_kill(size: int) -> Row:
    """Item 1: the API SIGKILLed mid-stream (requests in flight unanswered), then restarted."""

    def restart(stack: Stack) -> None:
        stack.start_api()
        stack.wait_healthy(timeout=60)

    return _kill_midstream(
        "API killed mid-stream",
        size,
        Stack.kill_api,
        restart,
        lambda stack, stream: stream.failed_attempts() > 0 or stream.done(),
        rate=max(100.0, size / 8),
    )


# --------------------------------------------------------------------------- 2. worker backlog


def worker_backlog(size: int) -> Row:
    """Item 2: `size` events acknowledged while the worker is dead, then it starts: time to
    drain, nothing lost, the automation not wedged."""
    row = Row(f"backlog of {size} while the worker is dead")
    name = "fault.backlog"
    timeout = 60 + size / 50
    with fresh_stack() as stack, Receiver() as receiver:
        automation = create(stack, per_event(name, receiver, "/acted"))
        # Killed once idle (its status answers: the worker has run it), so that the time to
        # drain is not a workflow task that the killed worker held timing out.
        if not wait_until(lambda: automation_status(stack, automation) is not None, timeout=15):
            row.notes.append("the automation's status did not answer before the kill")
        stack.kill_worker()
        stream = EventStream(
            stack, [event(name) for _ in range(size)], batch=100, give_up_after=timeout
        ).start()
        try:
            if not stream.wait(timeout):
                row.notes.append("the stream did not finish in time")
        finally:
            stream.stop()
        acknowledged = set(stream.acknowledged)
        row.acknowledged = len(acknowledged)
        row.notes.append(f"answers {stream.answer_summary()}")
        started_at = time.time()
        stack.start_worker()
        result, gave_up = await_acted(
            receiver, "/acted", acknowledged, timeout=timeout, stall=30 if size > 2000 else 20
        )
        record(row, result, gave_up, since=started_at)
        if gave_up:
            row.notes.append(progress(stack, automation))
        note_engine_counters(row, stack, automation)
        if row.recover_seconds:
            row.notes.append(f"drained at {result.acted_on / row.recover_seconds:.0f} events/s")
        ensure_running(row, stack)
        check_wedged(row, stack, [automation], settle=10 + size / 1000)
    return row


# --------------------------------------------------------------------------- 3. poison input


def _poison_probes(name: str) -> list[tuple[str, str, bytes]]:
    """(what, path, JSON body) of each input that must be refused with 422."""

    def automation(posture: str, within: float) -> bytes:
        body = {
            "name": f"poison {posture} within {within}",
            "trigger": {"posture": posture, "expect": [name], "within": within},
            "actions": [{"type": "do-nothing"}],
        }
        return json.dumps(body).encode()  # NaN goes out as the bare literal NaN

    def at(occurred: str) -> bytes:
        return json.dumps([{**event(name), "occurred": occurred}]).encode()

    return [
        ("occurred 0001-01-01T00:00:00Z", "/events", at("0001-01-01T00:00:00Z")),
        ("occurred 0001-01-01T00:00:00+01:00", "/events", at("0001-01-01T00:00:00+01:00")),
        ("Reactive within 1e12", "/automations/", automation("Reactive", 1e12)),
        ("Proactive within 1e12", "/automations/", automation("Proactive", 1e12)),
        ("Reactive within NaN", "/automations/", automation("Reactive", math.nan)),
        ("Proactive within NaN", "/automations/", automation("Proactive", math.nan)),
    ]


def poison(size: int) -> Row:
    """Item 3: poison input is refused with 422 (not 204, not 500), and the automation that
    would have seen it still fires on normal events afterwards."""
    row = Row("poison input")
    name = "fault.poison"
    normal = max(1, size // 100)
    with fresh_stack() as stack, Receiver() as receiver:
        watcher = create(stack, per_event(name, receiver, "/acted"))
        automations = [watcher]
        answers: dict[str, int | str] = {}
        poison_ids: set[str] = set()
        for what, path, body in _poison_probes(name):
            # A connection of its own each: an answer of 500 may close a kept-alive one.
            try:
                with stack.sync_client() as api:
                    response = api.post(
                        path, content=body, headers={"Content-Type": "application/json"}
                    )
            except httpx.HTTPError as error:
                answers[what] = type(error).__name__
                continue
            answers[what] = response.status_code
            if response.status_code == 201:
                automations.append(str(response.json()["id"]))
            if response.status_code == 204:
                poison_ids.update(item["id"] for item in json.loads(body))
        row.figures["answers"] = answers
        for what, answer in answers.items():
            if answer != 422:
                row.problems.append(f"{what} answered {answer}")
        # Normal events after the poison: each must fire the watcher.
        events = [event(name) for _ in range(normal)]
        answer = post_events(stack, events)
        acknowledged = {e["id"] for e in events} if answer == 204 else set()
        if answer != 204:
            row.problems.append(f"normal events answered {answer}")
        row.acknowledged = len(acknowledged)
        result, gave_up = await_acted(
            receiver, "/acted", acknowledged, timeout=30, stall=20, known=frozenset(poison_ids)
        )
        record(row, result, gave_up, since=None)
        if poison_ids:
            acted = tally(receiver, "/acted", poison_ids).acted_on
            row.notes.append(f"poison events acknowledged {len(poison_ids)}, acted on {acted}")
        ensure_running(row, stack)
        note_engine_counters(row, stack, *automations)
        check_wedged(row, stack, automations, settle=5)
    return row


# --------------------------------------------------------------------------- 4. storm


def storm(size: int) -> Row:
    """Item 4: two automations that react to any event, so to each other's lifecycle events.
    The storm must end (bounded firings) and both must still fire on a normal event after."""
    row = Row("storm: two automations on any event")
    observe = 30.0 if size < 1000 else 60.0
    paths = ("/storm-a", "/storm-b")
    with fresh_stack() as stack, Receiver() as receiver:
        automations = [
            create(
                stack,
                {
                    "name": f"fault storm {path}",
                    "trigger": {"posture": "Reactive"},
                    "actions": [webhook(receiver, path)],
                },
            )
            for path in paths
        ]
        kick = event("fault.storm.kick")
        acknowledged: set[str] = set()
        if post_events(stack, [kick]) == 204:
            acknowledged.add(kick["id"])

        def firings() -> int:
            return sum(len(receiver.requests_snapshot(path)) for path in paths)

        def engine_idle() -> bool:
            """Neither automation reports work left (when its status says so)."""
            for automation_id in automations:
                status = automation_status(stack, automation_id)
                if status is None:
                    continue  # no answer: the webhooks alone tell
                if status.get("live") is False:
                    return False  # too busy to answer
                if any(status.get(key) for key in PENDING_WORK):
                    return False
            return True

        # Settled: no webhook for STORM_SETTLED_AFTER seconds, and no work left in the engine.
        started = time.monotonic()
        last_count, last_change, settled = -1, started, False
        while time.monotonic() - started < observe:
            count = firings()
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif count > 0 and time.monotonic() - last_change >= STORM_SETTLED_AFTER:
                if engine_idle():
                    settled = True
                    break
                last_change = time.monotonic()  # quiet at the receiver, busy inside: wait on
            time.sleep(0.1)
        total = firings()
        row.figures["storm_firings"] = total
        row.figures["storm_settled"] = settled
        if not settled:
            row.problems.append(f"still firing after {observe:.0f} s ({total} firings)")
        else:
            row.notes.append(f"{total} firings, the last {last_change - started:.1f} s in")
            if total > STORM_MAX_FIRINGS:
                row.problems.append(f"{total} firings (bound {STORM_MAX_FIRINGS})")

        # Both still alive: a fresh normal event reaches both webhooks.
        probe = event("fault.storm.probe")
        probed_at = time.time()
        if post_events(stack, [probe]) == 204:
            acknowledged.add(probe["id"])
        row.acknowledged = len(acknowledged)

        def both_acted() -> bool:
            return all(tally(receiver, path, acknowledged).lost == 0 for path in paths)

        wait_until(both_acted, timeout=20, interval=0.1)
        results = {path: tally(receiver, path, acknowledged) for path in paths}
        alive = [probe["id"] in result.arrivals for result in results.values()]
        row.figures["alive_after"] = alive
        if not all(alive):
            row.problems.append("not both fired on a normal event after the storm")
        row.acted_on = sum(
            all(i in result.arrivals for result in results.values()) for i in acknowledged
        )
        row.lost = len(acknowledged) - row.acted_on
        row.duplicates = sum(result.duplicates for result in results.values())
        if all(alive):
            row.recover_seconds = (
                max(result.arrivals[probe["id"]] for result in results.values()) - probed_at
            )
        note_engine_counters(row, stack, *automations)
        ensure_running(row, stack)
        check_wedged(row, stack, automations, settle=5)
    return row


# --------------------------------------------------------------------------- 5. deep payload


def nested(levels: int) -> dict[str, Any]:
    """A dict nested `levels` deep: {"d": {"d": ... {}}}."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


class ChainLinks:
    """Names the original event behind a webhook at the end of a chain of automations.

    The second link's webhook body is "<its triggering event id> prefect.event.<original id>"
    (the first automation's `prefect.automation.triggered`, and that event's triggering event);
    the third link's body is "prefect.event.<the second link's triggering event id>". Only
    event ids and the `triggering-event` related resource are used, not payload shapes."""

    def __init__(self, receiver: Receiver, second: str) -> None:
        self.receiver, self.second = receiver, second
        self.originals: dict[str, str] = {}

    def second_link(self, body: str) -> str:
        return body.partition(" ")[2].strip().removeprefix("prefect.event.")

    def third_link(self, body: str) -> str:
        triggered = body.strip().removeprefix("prefect.event.")
        if triggered not in self.originals:
            for request in self.receiver.requests_snapshot(self.second):
                body_ = request.body.decode(errors="replace")
                self.originals[body_.partition(" ")[0].strip()] = self.second_link(body_)
        return self.originals.get(triggered, f"unknown {triggered}")


def chained_on(automation_id: str, receiver: Receiver, path: str, payload: str) -> dict[str, Any]:
    return {
        "name": f"fault chained on {automation_id}",
        "trigger": {
            "posture": "Reactive",
            "expect": ["prefect.automation.triggered"],
            "match": {"prefect.resource.id": f"prefect.automation.{automation_id}"},
        },
        "actions": [webhook(receiver, path, payload)],
    }


def deep_payload(size: int) -> Row:
    """Item 5: an event whose payload is nested 197 levels deep is refused (4xx) or accepted
    (trimmed or not); either way a chain on `prefect.automation.triggered` (first -> second ->
    third) keeps firing for the normal events that follow: the second and third links' own
    lifecycle events must keep flowing too."""
    row = Row(f"payload nested {DEEP_PAYLOAD_LEVELS} deep")
    name = "fault.deep"
    normal = max(5, size // 20)
    with fresh_stack() as stack, Receiver() as receiver:
        first = create(stack, per_event(name, receiver, "/first"))
        second = create(
            stack,
            chained_on(
                first,
                receiver,
                "/second",
                "{{ event.id }} {{ event.related[0].id if event.related else '' }}",
            ),
        )
        third = create(
            stack,
            chained_on(
                second, receiver, "/third", "{{ event.related[0].id if event.related else '' }}"
            ),
        )
        links = ChainLinks(receiver, "/second")
        deep = event(name, payload=nested(DEEP_PAYLOAD_LEVELS))
        answer = post_events(stack, [deep])
        row.figures["deep_answer"] = answer
        row.notes.append(f"deep event answered {answer}")
        if not (isinstance(answer, int) and (answer == 204 or 400 <= answer < 500)):
            row.problems.append(f"the deep event answered {answer} (want 204, or a 4xx refusal)")
        events = [event(name) for _ in range(normal)]
        answer = post_events(stack, events)
        acknowledged = {e["id"] for e in events} if answer == 204 else set()
        if answer != 204:
            row.problems.append(f"normal events answered {answer}")
        row.acknowledged = len(acknowledged)
        result, gave_up = await_acted(
            receiver,
            "/third",
            acknowledged,
            timeout=45,
            stall=20,
            event_id=links.third_link,
            known=frozenset({deep["id"]}),
        )
        record(row, result, gave_up, since=None)
        reached = {
            link: tally(receiver, path, acknowledged, event_id)
            for link, path, event_id in (
                ("first", "/first", body_is_id),
                ("second", "/second", links.second_link),
            )
        }
        row.duplicates += sum(other.duplicates for other in reached.values())
        row.notes.append(
            "normal events reached the links: "
            + ", ".join(f"{link} {t.acted_on}" for link, t in reached.items())
            + f", third {result.acted_on} (of {len(acknowledged)})"
        )
        if row.figures["deep_answer"] == 204:
            deep_id = {deep["id"]}
            row.notes.append(
                "the deep event reached: "
                f"first {bool(tally(receiver, '/first', deep_id).acted_on)}, "
                f"second {bool(tally(receiver, '/second', deep_id, links.second_link).acted_on)}"
                f", third {bool(tally(receiver, '/third', deep_id, links.third_link).acted_on)}"
            )
        ensure_running(row, stack)
        note_engine_counters(row, stack, first, second, third)
        check_wedged(row, stack, [first, second, third], settle=10)
    return row


# --------------------------------------------------------------------------- 6. templates

LOOPS_TEMPLATE = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{{ a }}{% endfor %}{% endfor %}"
)
HUGE_TEMPLATE = "{{ 'a' * 10**9 }}"


def templates(size: int) -> Row:
    """Item 6: webhook templates with a million-iteration loop and a gigabyte string fail that
    action with a reason; meanwhile another automation's webhooks stay fast (a canary event
    every 50 ms) and the worker's memory stays bounded."""
    row = Row("runaway templates")
    timeout = 30.0 if size < 1000 else 90.0
    with fresh_stack() as stack, Receiver() as receiver:
        canary = create(stack, per_event("fault.canary", receiver, "/canary"))
        bad = {
            kind: create(
                stack,
                {
                    "name": f"fault template {kind}",
                    "trigger": {"posture": "Reactive", "expect": ["fault.template"]},
                    "actions": [webhook(receiver, f"/template-{kind}", template)],
                },
            )
            for kind, template in (("loops", LOOPS_TEMPLATE), ("huge", HUGE_TEMPLATE))
        }
        worker_pid = stack.worker.pid if stack.worker else None
        rss_start = rss_mb(worker_pid)
        canaries: dict[str, float] = {}  # id -> acknowledged at (time.time())
        stop = threading.Event()

        def send_canaries() -> None:
            with stack.sync_client(timeout=10) as api:
                for _ in range(size):
                    if stop.wait(0.05):
                        return
                    item = event("fault.canary")
                    try:
                        if api.post("/events", json=[item]).status_code == 204:
                            canaries[item["id"]] = time.time()
                    except httpx.HTTPError:
                        pass

        sender = threading.Thread(target=send_canaries, daemon=True)
        sender.start()
        outcomes: dict[str, dict[str, Any]] = {}
        with TreeMemory(worker_pid) as tree:
            try:
                wait_until(lambda: len(canaries) >= 10 or not sender.is_alive(), timeout=10)
                fired_at = time.time()
                answer = post_events(stack, [event("fault.template")])
                if answer != 204:
                    row.problems.append(f"the template event answered {answer}")

                def settled() -> bool:
                    for kind, automation_id in bad.items():
                        status = automation_status(stack, automation_id)
                        recent = (status or {}).get("stats", {}).get("recent", [])
                        actions = recent[-1]["actions"] if recent else []
                        if actions and actions[0]["status"] != "running":
                            outcomes[kind] = actions[0]
                    return len(outcomes) == len(bad)

                if wait_until(settled, timeout=timeout, interval=0.5):
                    row.recover_seconds = time.time() - fired_at
                wait_until(lambda: not sender.is_alive(), timeout=3)  # canaries after it, too
            finally:
                stop.set()
                sender.join(timeout=15)
        rss_peak = rss_mb(worker_pid, "VmHWM")
        acknowledged = set(canaries)
        row.acknowledged = len(acknowledged)
        result, gave_up = await_acted(receiver, "/canary", acknowledged, timeout=30, stall=10)
        record(row, result, gave_up, since=None)
        latencies = [result.arrivals[i] - canaries[i] for i in result.arrivals]
        if latencies:
            worst = max(latencies)
            row.figures["canary_max_latency_s"] = worst
            row.notes.append(
                f"canary latency max {worst * 1000:.0f} ms, "
                f"p50 {statistics.median(latencies) * 1000:.0f} ms"
                + (f" (of the {len(latencies)} acted on)" if result.lost else "")
            )
            if worst > CANARY_MAX_LATENCY:
                row.slow.append(f"a canary webhook took {worst:.1f} s")
        row.figures["worker_rss_mb"] = {"start": rss_start, "peak": rss_peak, "tree": tree.peak_mb}
        if rss_peak is not None:
            row.notes.append(
                f"worker RSS {rss_start or 0:.0f} MB at start, peak {rss_peak:.0f} MB"
                f" (with its child processes: {tree.peak_mb or 0:.0f} MB sampled)"
            )
            if rss_peak > WORKER_MAX_RSS_MB:
                row.problems.append(f"worker peak RSS {rss_peak:.0f} MB")
            if (tree.peak_mb or 0) > WORKER_TREE_MAX_RSS_MB:
                row.problems.append(f"worker and children peak RSS {tree.peak_mb:.0f} MB")
        else:
            row.problems.append("the worker's memory could not be read (did it die?)")
        row.figures["template_outcomes"] = outcomes
        for kind in bad:
            outcome = outcomes.get(kind)
            if outcome is None:
                row.problems.append(f"{kind}: no outcome within {timeout:.0f} s")
            elif outcome["status"] != "failed" or not outcome.get("detail"):
                row.problems.append(f"{kind}: {outcome['status']}, not failed with a reason")
            else:
                row.notes.append(f"{kind} failed: {short(outcome['detail'], 70)}")
        received = {kind: len(receiver.requests_snapshot(f"/template-{kind}")) for kind in bad}
        if any(received.values()):
            row.notes.append(f"template webhooks received {received}")
        ensure_running(row, stack)
        note_engine_counters(row, stack, canary, *bad.values())
        check_wedged(row, stack, [canary, *bad.values()], settle=10)
    return row


# --------------------------------------------------------------------------- 7. health


def health(size: int) -> Row:
    """Item 7: with the worker killed (in a steady state: its automation has just acted on an
    event), /api/health answers 503 within 5 s; after its restart, 200 again, and an event is
    acted on."""
    row = Row("health after the worker dies")
    name = "fault.health"
    give_up = 2 * HEALTH_503_WITHIN if size < 1000 else 90.0
    with fresh_stack() as stack, Receiver() as receiver:
        automation = create(stack, per_event(name, receiver, "/acted"))

        def health_status() -> int | str:
            try:
                return httpx.get(f"{stack.api_url}/health", timeout=5).status_code
            except httpx.HTTPError as error:
                return type(error).__name__

        before = event(name)
        acknowledged = {before["id"]} if post_events(stack, [before]) == 204 else set()
        if await_acted(receiver, "/acted", acknowledged, timeout=30, stall=20)[1] is not None:
            row.notes.append("the event before the kill was not acted on in time")
        stack.kill_worker()
        killed = time.monotonic()
        if wait_until(lambda: health_status() == 503, timeout=give_up, interval=0.1):
            seconds = time.monotonic() - killed
            row.figures["health_503_s"] = seconds
            row.notes.append(f"503 {seconds:.1f} s after the kill")
            if seconds > HEALTH_503_WITHIN:
                row.slow.append(f"503 only after {seconds:.1f} s")
        else:
            row.figures["health_503_s"] = None
            row.problems.append(f"still {health_status()} {give_up:.0f} s after the worker died")
        stack.start_worker()
        started = time.monotonic()
        if wait_until(lambda: health_status() == 200, timeout=30, interval=0.1):
            row.recover_seconds = time.monotonic() - started
        else:
            row.problems.append("health did not answer 200 within 30 s of the worker's restart")
        after = event(name)
        if post_events(stack, [after]) == 204:
            acknowledged.add(after["id"])
        row.acknowledged = len(acknowledged)
        result, gave_up = await_acted(receiver, "/acted", acknowledged, timeout=30, stall=20)
        record(row, result, gave_up, since=None)
        ensure_running(row, stack)
        note_engine_counters(row, stack, automation)
        check_wedged(row, stack, [automation], settle=10)
    return row


# --------------------------------------------------------------------------- 8. proactive


def proactive(size: int) -> Row:
    """Item 8: Proactive deadlines pass while the worker is dead; each fires within ~2 s of the
    worker's restart (its start-up included), once."""
    row = Row("proactive deadline, worker dead")
    within = 10.0
    count = max(3, size // 60)
    with fresh_stack() as stack, Receiver() as receiver:
        automation = create(
            stack,
            {
                "name": "fault proactive",
                "trigger": {
                    "posture": "Proactive",
                    "after": ["fault.started"],
                    "expect": ["fault.finished"],
                    "for_each": ["prefect.resource.id"],
                    "within": within,
                },
                "actions": [webhook(receiver, "/acted")],
            },
        )
        events = [event("fault.started") for _ in range(count)]
        answer = post_events(stack, events)
        acknowledged = {e["id"] for e in events} if answer == 204 else set()
        row.acknowledged = len(acknowledged)
        if answer != 204:
            row.problems.append(f"the events answered {answer}")
        last_deadline = max(datetime.fromisoformat(e["occurred"]).timestamp() for e in events)
        last_deadline += within

        def timer_armed() -> bool:
            status = automation_status(stack, automation)
            return bool(
                status
                and status["stats"]["events_received"] >= count
                and status["next_deadline"] is not None
            )

        if not wait_until(timer_armed, timeout=within / 2, interval=0.1):
            row.notes.append("the deadline was not armed before the kill")
        stack.kill_worker()
        wait_until(lambda: time.time() >= last_deadline + 2.0, timeout=within + 5, interval=0.1)
        early = len(receiver.requests_snapshot("/acted"))
        restarted_at = time.time()
        stack.start_worker()
        result, gave_up = await_acted(receiver, "/acted", acknowledged, timeout=30, stall=20)
        record(row, result, gave_up, since=restarted_at)
        if early:
            row.problems.append(f"{early} fired while the worker was dead")
        after = [at - restarted_at for at in result.arrivals.values()]
        row.figures["late_after_restart_s"] = max(after, default=None)
        if after:
            row.notes.append(
                f"fired {min(after):.1f}–{max(after):.1f} s after the worker's restart, "
                f"{max(result.arrivals.values()) - last_deadline:.1f} s after the last deadline"
            )
            if max(after) > PROACTIVE_AFTER_RESTART:
                row.slow.append(f"later than {PROACTIVE_AFTER_RESTART:g} s after the restart")
        ensure_running(row, stack)
        note_engine_counters(row, stack, automation)
        check_wedged(row, stack, [automation], settle=10)
    return row


# --------------------------------------------------------------------------- main


@dataclass(frozen=True)
class Scenario:
    run: Callable[[int], Row]
    small: int
    full: int


SCENARIOS: dict[str, Scenario] = {
    "server-kill": Scenario(server_kill, 400, 8_000),
    "worker-kill": Scenario(worker_kill, 400, 8_000),
    "worker-restart": Scenario(worker_restart, 400, 8_000),
    "api-kill": Scenario(api_kill, 400, 8_000),
    "backlog": Scenario(worker_backlog, 300, 5_000),
    "backlog-large": Scenario(worker_backlog, 1_000, 20_000),
    "poison": Scenario(poison, 300, 1_000),
    "storm": Scenario(storm, 300, 1_000),
    "deep-payload": Scenario(deep_payload, 300, 1_000),
    "templates": Scenario(templates, 300, 1_000),
    "health": Scenario(health, 300, 1_000),
    "proactive": Scenario(proactive, 300, 3_000),
}


def run_scenario(name: str, scale: str = "small") -> Row:
    """One scenario on its own stack; a harness failure becomes a row that says so."""
    scenario = SCENARIOS[name]
    size = scenario.full if scale == "full" else scenario.small
    try:
        return scenario.run(size)
    except Exception as error:
        traceback.print_exc(file=sys.stderr)
        return Row(name, problems=[f"could not run: {short(repr(error), 300)}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=("small", "full"), default="small")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set in every stack's environment (e.g. MAX_FIRINGS_PER_MINUTE=0); repeatable",
    )
    args = parser.parse_args()
    for setting in args.env:
        key, equals, value = setting.partition("=")
        if not key or not equals:
            parser.error(f"--env takes KEY=VALUE, not {setting!r}")
        STACK_ENV[key] = value
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    rows: list[Row] = []
    for name in names:
        started = time.monotonic()
        print(f"running {name} ({args.scale})…", file=sys.stderr, flush=True)
        rows.append(run_scenario(name, args.scale))
        print(f"  {name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    print(markdown_table(rows))
    settings = "".join(f", {key}={value}" for key, value in STACK_ENV.items())
    print(
        f"\n{args.scale} scale{settings}, {datetime.now(UTC).isoformat(timespec='seconds')}; "
        "recover = restart of the killed part → last acknowledged event acted on "
        "(templates: the bad actions' outcome; health: back to 200; storm: the probe acted on)."
    )


if __name__ == "__main__":
    main()
