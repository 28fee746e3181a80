"""AutomationWorkflow: one long-lived run per automation (workflow id `automation-<uuid>`).

The story, top to bottom:
1. events arrive as `deliver` signals and wait in the inbox;
2. the loop evaluates them with the pure TriggerEvaluator, at most EVENTS_PER_TASK per workflow
   task (a backlog drains across tasks, so no task nears the deadlock detector), and wakes on
   ONE durable timer for the nearest deadline;
3. each firing waits its turn in a queue; at most FIRINGS_IN_FLIGHT run their actions at once,
   in order, as activities;
4. the automation's own lifecycle events go out through an outbox, one activity at a time;
5. when Temporal suggests it, the run continues as new, carrying its state — measured in bytes.

Nothing that comes from outside can fail a workflow task: an event that breaks evaluation, a
window whose arithmetic fails, a lifecycle event our own API refuses are each caught, counted,
recorded (`last_error` in the status query and the memo) and skipped.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
import zlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from temporal_automations.activities.requests import (
        ACTIVITY_FOR_ACTION,
        CALL_WEBHOOKS,
        EMIT_EVENTS,
        ActionRequest,
        AutomationSummary,
        WebhookBatch,
        WebhookBatchItem,
        WebhookOutcome,
    )
    from temporal_automations.domain import evaluation_v1
    from temporal_automations.domain.automations import Automation, CompositeTrigger
    from temporal_automations.domain.evaluation import Firing, TriggerEvaluator, TriggerState
    from temporal_automations.domain.events import Event
    from temporal_automations.domain.lifecycle import (
        MAX_CHAIN_DEPTH,
        action_event,
        firing_depth,
        firing_event,
        is_own_event,
    )
    from temporal_automations.domain.ratelimit import FiringBudget
    from temporal_automations.temporal import (
        AUTOMATION_ENABLED,
        AUTOMATION_NAME,
        AUTOMATION_TAGS,
        AUTOMATION_UPDATED,
    )

    # What a run carries and answers: pydantic models, passed through so that the sandbox
    # does not build their validators again for every workflow it keeps (measured: about
    # 560 KB per cached workflow when they were defined here, see workflows/carried.py).
    from temporal_automations.workflows.carried import (
        DEFAULT_CHAINED_FIRINGS_PER_MINUTE as DEFAULT_CHAINED_FIRINGS_PER_MINUTE,
    )
    from temporal_automations.workflows.carried import (
        DEFAULT_FIRINGS_PER_MINUTE as DEFAULT_FIRINGS_PER_MINUTE,
    )
    from temporal_automations.workflows.carried import (
        MAX_CARRY_BYTES as MAX_CARRY_BYTES,
    )
    from temporal_automations.workflows.carried import (
        OVERFLOW_CHUNK_ITEMS as OVERFLOW_CHUNK_ITEMS,
    )
    from temporal_automations.workflows.carried import (
        ActionResult,
        AutomationRun,
        AutomationStats,
        AutomationStatus,
        CarriedWork,
        FiringRecord,
        LagReport,
        QueuedFiring,
    )
    from temporal_automations.workflows.carried import (
        RunLimits as RunLimits,
    )
    from temporal_automations.workflows.overflow import (
        TAKE_BACK_SIGNAL,
        OverflowChunk,
        OverflowWorkflow,
        ReturnedWork,
    )
    from temporal_automations.workflows.timer_lead import TimerLead

MAX_SIGNALS_PER_RUN = 2_000  # the server refuses more than 10,000 per run
EVENTS_PER_TASK = 500  # evaluated per workflow task; measured well under the 2 s detector
FIRINGS_IN_FLIGHT = 32  # firings whose actions run at once; the rest wait, in order
# Firings started per workflow task. Local activities hold their workflow task open until they
# finish (it reports in every 80% of its timeout): with a queue that never empties, one task
# would run actions for as long as the queue lasts, every action since its last report would
# run again after a crash, and a loaded worker that missed a report had the task time out and
# re-run it all, again and again. Past this many the task ends and the next one goes on.
FIRINGS_PER_TASK = 128
MAX_EMIT_BATCH = 500
MAX_EMIT_BYTES = 1_000_000
RECENT_FIRINGS = 20
MAX_ERROR_TEXT = 500

# Temporal refuses a payload over 2 MB and a gRPC message over 4 MB: what a run carries into
# the next one (its state, inbox, queue and outbox) stays under this, or the run keeps working
# off its backlog before it continues. Past these history sizes it continues regardless.
FORCE_CONTINUE_AT_EVENTS = 40_000  # the server terminates a run at 51,200
FORCE_CONTINUE_AT_BYTES = 40_000_000  # ... and at 50 MB
CARRY_RETRY_EVERY = 500  # history events between two tries when the carry is too big
MAX_MEMO_BYTES = 256_000
SHED_ROUNDS = 3
# Signals not decoded yet are decoded before continuing as new only up to this much (more
# would be a long workflow task); the run works them off first otherwise.
MAX_DECODE_AT_CONTINUE = 8_000_000
# Timers longer than this are re-armed when they fire (a deadline years away stays valid).
MAX_TIMER = timedelta(days=7)
YIELD_TASK = timedelta(milliseconds=1)
MEMO_EVERY = timedelta(seconds=5)
# What a run cannot carry goes to overflow children (workflows/overflow.py), in chunks of at
# most this many items and bytes (compressed); at most this much of them passes through one
# run's history, and at most this many chunks wait at once (~400,000 firings or events).
OVERFLOW_CHUNK_BYTES = 400_000
MAX_OVERFLOW_BYTES_PER_RUN = 8_000_000
MAX_OVERFLOW_CHUNKS = 200
# The next chunk is pulled back once the run's own backlog is below this many items.
OVERFLOW_LOW_WATER = 2 * EVENTS_PER_TASK
OVERFLOW_ANSWER_TIMEOUT = timedelta(minutes=1)
# A run that spills its overflow keeps room in its history for the chunks it starts.
FORCE_CONTINUE_AT_BYTES_WITH_OVERFLOW = 30_000_000
# workflow.patched ids: a change that alters the commands a running automation issues.
MEMO_WHEN_IDLE = "memo-when-idle-or-every-5s"
OVERFLOW_TO_CHILDREN = "overflow-to-children"
# Trigger semantics version 2 (event time, domain/evaluation.py). A run that started without it
# keeps version 1 (domain/evaluation_v1.py) until it continues as new; its state converts then.
SEMANTICS_V2 = "semantics-v2-event-time"
FIRINGS_PER_TASK_PATCH = "firings-per-task"
# The AutomationUpdated search attribute kept with the definition, by which API processes
# follow each other's changes (api/store.py); a run without it keeps the three others.
CATALOG_UPDATED_ATTRIBUTE = "catalog-updated-attribute"
# A firing's lifecycle events wait for its actions when they run as local activities in the
# same workflow task: one emit activity carries all three instead of two activities (the first
# left before the action's `executed` event existed), one workflow task less per lone firing.
EMIT_AFTER_LOCAL_ACTIONS = "emit-after-local-actions"

# A continue-as-new waits for the overflow chunk it asked for (or that request's timeout): the
# child's `take_back` arriving during the task that continues failed that task
# (UnhandledCommand, retried at once: nothing lost, but a failed workflow task in 6 of 8 runs
# of the overflow test).
CONTINUE_AFTER_RELEASE = "continue-after-release-answered"

# The server starts a timer when the workflow task that armed it completes, and a task running
# local activities completes only when they return; so a deadline armed beside a firing's
# webhook fired late by that webhook's time (20-30 ms a deadline in the proactive benchmark,
# over a second under load). Such a timer is armed for YIELD_TASK instead: it fires as the
# task completes, and the next task, which holds no local activity, arms the deadline. One more
# timer for such a deadline, never an early firing.
ARM_BEFORE_LOCAL_ACTIONS = "arm-timers-early-beside-local-actions"

# A deadline's timer is armed earlier by how late the last timers woke the workflow (the
# arming task's length plus the dispatch; workflows/timer_lead.py), so that the task it wakes
# starts at the deadline rather than 6-9 ms after it. A timer that wakes the workflow early is
# armed again for what remains: never an early firing.
ARM_WITH_LEAD = "arm-timers-ahead-by-their-lateness"
# A run's first timer is armed ahead too, by FIRST_LEAD (workflows/timer_lead.py).
ARM_FIRST_AHEAD = "arm-the-first-timer-of-a-run-ahead"

# An action's first attempts run as a local activity: in the worker, recorded in history as a
# marker, with no server round trips (the dev server manages a few hundred activity round trips
# a second; local ones are what reach hundreds of actions a second). A transient failure then
# goes on as a regular activity, whose backoff is durable and does not hold the workflow task.
LOCAL_ATTEMPT_TIMEOUT = timedelta(seconds=10)
LOCAL_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=2)
ACTION_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=5,
)
# Queued firings whose only action is one `call-webhook` start together, up to
# WEBHOOK_BATCH of them, as ONE local activity (`call_webhooks`): each local activity costs the
# worker's single process an activity task, its payload's decoding and a workflow activation to
# resolve it, about five times the webhook call itself (py-spy during a burst). Only what is
# already queued is batched: a lone firing starts at once, as before. A batch's input stays
# under MAX_WEBHOOK_BATCH_BYTES (Temporal refuses a payload over 2 MB). Each item's outcome
# comes back on its own; a transient failure goes on alone, as a regular activity, exactly as
# an unbatched firing's does, and so does every item of a batch whose activity failed.
BATCH_WEBHOOK_FIRINGS = "batch-webhook-firings"
WEBHOOK_BATCH = 16
MAX_WEBHOOK_BATCH_BYTES = 1_000_000
BATCH_ATTEMPT_TIMEOUT = timedelta(seconds=15)  # over one item's (activities/actions.py)
BATCH_RETRY = RetryPolicy(maximum_attempts=1)  # a failed batch goes on item by item

# A run started since stands for every patch above in one marker. Each workflow.patched() call
# of a new run records a marker and upserts the TemporalChangeVersion search attribute (the SDK
# core does it): the 11 patches above made 22 of the commands of every new run's first task,
# and each upsert a visibility write. A run recorded before replays each patch as it was.
EVERY_PATCH_TO_BATCHED_WEBHOOKS = "every-patch-to-batched-webhooks-in-one"
PATCHES_IT_STANDS_FOR = (
    SEMANTICS_V2,
    MEMO_WHEN_IDLE,
    OVERFLOW_TO_CHILDREN,
    FIRINGS_PER_TASK_PATCH,
    CATALOG_UPDATED_ATTRIBUTE,
    EMIT_AFTER_LOCAL_ACTIONS,
    CONTINUE_AFTER_RELEASE,
    ARM_BEFORE_LOCAL_ACTIONS,
    BATCH_WEBHOOK_FIRINGS,
    ARM_WITH_LEAD,
    ARM_FIRST_AHEAD,
)

EMIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


@dataclass
class _QueuedBatch:
    """Firings taken off the queue together, and the batch request made of them."""

    items: list[QueuedFiring]
    request: WebhookBatch
    encoded: RawValue  # `request` as its payload


# --------------------------------------------------------------------------- the workflow


@workflow.defn(name="AutomationWorkflow")
class AutomationWorkflow:
    @workflow.init
    def __init__(self, run: AutomationRun) -> None:
        run = _unpacked(run)
        self.automation = run.automation
        self.every_patch = workflow.patched(EVERY_PATCH_TO_BATCHED_WEBHOOKS)
        # Decided once per run, at its start: a run recorded before semantics version 2
        # replays with version 1; every run started since evaluates in event time.
        self.semantics = 2 if self._patched(SEMANTICS_V2) else 1
        self.fresh = run.state is None
        self.evaluator = self._evaluator(run.automation, run.state)
        self.inbox: list[Event] = list(run.inbox)
        # Signals as they came, decoded a chunk at a time: a backlog of thousands of signals
        # arrives in ONE workflow task, and decoding it all there could take seconds.
        self.undecoded: list[Payload] = []
        self.undecoded_bytes = 0
        self.queue: list[QueuedFiring] = list(run.queue)
        self.outbox: list[Event] = list(run.outbox)
        self.stats = run.stats
        self.limits = run.limits
        self.budget = run.budget or FiringBudget(per_minute=run.limits.firings_per_minute)
        self.chained_budget = run.chained_budget or FiringBudget(
            per_minute=run.limits.chained_firings_per_minute
        )
        self.signals_this_run = 0
        self.in_flight = 0
        self.emitting = False
        self.continuing = False  # draining in-flight work before continue-as-new
        self.carry_retry_at = 0  # history length at which to try continuing again
        self.timer: asyncio.Task[None] | None = None
        self.timer_deadline: datetime | None = None
        self.timer_fires_at: datetime | None = None
        self.deadline_moved = False  # a new definition or resume: re-arm without waiting
        self.memo_stale = False
        self.memo_published_at: datetime | None = None
        self.memo_when_idle = False  # decided once, at the start of `run` (workflow.patched)
        self.overflow_to_children = False  # likewise
        self.catalog_attribute = False  # likewise
        self.overflow: list[str] = list(run.overflow)
        self.returned: list[ReturnedWork] = []  # chunks signalled back, not unpacked yet
        self.releasing: str | None = None  # the overflow child asked for its chunk
        self.overflow_bytes_this_run = 0
        self.overflow_started_this_run = 0
        self.firings_per_task = False  # decided at the start of `run` (workflow.patched)
        self.task_mark = -1  # history length when the current workflow task started
        self.started_this_task = 0
        self.emit_after_local_actions = False  # decided at the start of `run` (workflow.patched)
        self.continue_after_release = False  # likewise
        self.arm_early = False  # likewise
        self.batch_webhooks = False  # likewise
        self.batch_too_big_at = -1  # history length of the task a batch went over its bytes
        self.armed_early_for: datetime | None = None  # the deadline last armed early
        self.arm_with_lead = False  # decided at the start of `run` (workflow.patched)
        self.timer_lead = TimerLead()
        self.timer_measures = False  # the timer is armed for its full time: its lateness counts
        # Firings whose actions are running, by the history length of the task that started them
        self.running_by_task: dict[int, int] = {}

    def _patched(self, patch: str) -> bool:
        """`workflow.patched(patch)`, or true without a marker of its own for one of
        PATCHES_IT_STANDS_FOR in a run that recorded EVERY_PATCH_TO_BATCHED_WEBHOOKS (a patch
        added later is not among them: such a run started before it)."""
        covered = self.every_patch and patch in PATCHES_IT_STANDS_FOR
        return covered or workflow.patched(patch)

    @workflow.run
    async def run(self, run: AutomationRun) -> None:
        self.memo_when_idle = self._patched(MEMO_WHEN_IDLE)
        self.overflow_to_children = self._patched(OVERFLOW_TO_CHILDREN)
        self.firings_per_task = self._patched(FIRINGS_PER_TASK_PATCH)
        self.catalog_attribute = self._patched(CATALOG_UPDATED_ATTRIBUTE)
        self.emit_after_local_actions = self._patched(EMIT_AFTER_LOCAL_ACTIONS)
        self.continue_after_release = self._patched(CONTINUE_AFTER_RELEASE)
        self.arm_early = self._patched(ARM_BEFORE_LOCAL_ACTIONS)
        self.batch_webhooks = self._patched(BATCH_WEBHOOK_FIRINGS)
        self.arm_with_lead = self._patched(ARM_WITH_LEAD)
        self.timer_lead.lead_first = self.arm_with_lead and self._patched(ARM_FIRST_AHEAD)
        if self.fresh and self.automation.enabled:
            self.evaluator.start(workflow.now())
        while True:
            self._arm_timer()
            await workflow.wait_condition(self._has_work)
            self._evaluate()
            self._take_back_some()
            self._start_firings()
            self._flush_outbox()
            self._release_overflow()
            self._publish_counters()
            if self._should_continue_as_new():
                await self._continue_as_new()
            elif self.inbox or self.undecoded or (self.queue and self._task_full()):
                # A backlog: end this workflow task here and take the next chunk in a new one.
                await workflow.sleep(YIELD_TASK, summary="next chunk of a backlog")

    # ------------------------------------------------------------------ messages

    @workflow.signal
    def deliver(self, batch: RawValue) -> None:
        """Events from the router (a JSON list of events). Accepted (durable) as soon as the
        server records the signal. Taken raw: the SDK would drop a whole batch that fails to
        decode; here only the events that fail are skipped, and recorded."""
        self.signals_this_run += 1
        self.undecoded.append(batch.payload)
        self.undecoded_bytes += len(batch.payload.data)

    @workflow.signal(name=TAKE_BACK_SIGNAL)
    def take_back(self, returned: ReturnedWork) -> None:
        """A chunk of this automation's own overflow, sent back by the child that held it."""
        self.returned.append(returned)
        if returned.overflow_id in self.overflow:
            self.overflow.remove(returned.overflow_id)

    def _decode_some(self) -> None:
        """Move signals into the inbox until it holds a chunk's worth of events."""
        while self.undecoded and len(self.inbox) < EVENTS_PER_TASK:
            self._decode_next()

    def _decode_next(self) -> None:
        payload = self.undecoded.pop(0)
        self.undecoded_bytes -= len(payload.data)
        events = self._decode_events(payload)
        self.inbox.extend(e for e in events if not is_own_event(self.automation.id, e))

    def _decode_events(self, payload: Payload) -> list[Event]:
        converter = workflow.payload_converter()
        try:
            events: list[Event] = converter.from_payload(payload, list[Event])
            self.stats.events_received += len(events)
            return events
        except Exception:
            pass
        try:
            items = converter.from_payload(payload, list[Any])
        except Exception as error:
            self._record_error(f"a batch that is not a list of events was skipped: {error!r}")
            return []
        self.stats.events_received += len(items)
        decoded: list[Event] = []
        for index, item in enumerate(items):
            try:
                decoded.append(Event.model_validate(item))
            except Exception as error:
                self._record_error(f"event {index} of a batch skipped: {error!r}")
        return decoded

    def _evaluator(
        self, automation: Automation, state: TriggerState | None = None
    ) -> TriggerEvaluator | evaluation_v1.TriggerEvaluator:
        if self.semantics == 1 and isinstance(automation.trigger, CompositeTrigger):
            # Version 1 never knew composites, so no history of it holds one: safe to switch.
            self.semantics = 2
        if self.semantics == 1:
            old = (
                None
                if state is None
                else evaluation_v1.TriggerState.model_validate(state.model_dump())
            )
            return evaluation_v1.TriggerEvaluator(automation.trigger, old)  # type: ignore[arg-type]
        return TriggerEvaluator(automation.trigger, state)

    @workflow.signal
    def report_lag(self, raw: RawValue) -> None:
        """A source's lag (a LagReport): proactive deadlines wait for its events (up to
        MAX_LAG). Taken raw, like `deliver`: one that does not decode is recorded, skipped."""
        try:
            report = workflow.payload_converter().from_payload(raw.payload, LagReport)
            lag = float(report.lag_seconds)
        except Exception as error:
            self._record_error(f"a lag report was skipped: {error!r}")
            return
        if isinstance(self.evaluator, TriggerEvaluator):
            self.evaluator.report_lag(lag, workflow.now())
            self.deadline_moved = True

    @workflow.update
    def replace(self, automation: Automation) -> Automation:
        """PUT: a new definition; the trigger starts again from nothing. A header value sent
        back as the mask keeps the secret it stands for."""
        automation = automation.keeping_secrets_of(self.automation)
        self.automation = automation
        self.evaluator = self._evaluator(automation)
        if automation.enabled:
            self.evaluator.start(workflow.now())
        self.deadline_moved = True
        self._publish_definition()
        return automation

    @replace.validator
    def _check_replace(self, automation: Automation) -> None:
        if automation.id != self.automation.id:
            raise ApplicationError(f"this workflow runs automation {self.automation.id}")

    @workflow.update
    def set_enabled(self, enabled: bool) -> Automation:
        """PATCH enabled: a paused automation evaluates nothing; resuming starts it afresh."""
        if enabled != self.automation.enabled:
            self.automation = self.automation.model_copy(
                update={"enabled": enabled, "updated": workflow.now()}
            )
            self.evaluator = self._evaluator(self.automation)
            if enabled:
                self.evaluator.start(workflow.now())
            self.deadline_moved = True
            self._publish_definition()
        return self.automation

    @workflow.query
    def status(self) -> AutomationStatus:
        state = self.evaluator.state
        return AutomationStatus(
            automation=self.automation,
            stats=self.stats,
            next_deadline=self.evaluator.next_deadline() if self.automation.enabled else None,
            open_windows=len(state.buckets),
            triggered_keys=len(state.triggered),
            held_events=len(state.held),
            backlog=len(self.inbox),
            waiting_signals=len(self.undecoded),
            queued_firings=len(self.queue),
            running_firings=self.in_flight,
            overflow_chunks=len(self.overflow) + len(self.returned),
            semantics=self.semantics,
            trigger_state=(
                self.evaluator.describe() if isinstance(self.evaluator, TriggerEvaluator) else None
            ),
        )

    # ------------------------------------------------------------------ evaluation

    def _has_work(self) -> bool:
        return bool(
            self.inbox
            or self.undecoded
            or self._timer_due()
            or (self.queue and self._may_start_firing())
            or self._may_flush()
            or self.deadline_moved
            or (self._should_continue_as_new() and not self.continuing)
            or (self.memo_when_idle and self.memo_stale and self._idle())
            or (self.returned and self._backlog_low())
            or self._may_release_overflow()
        )

    def _arm_timer(self) -> None:
        """Keep exactly one timer, for the nearest deadline; re-arm only when it moves."""
        self.deadline_moved = False
        deadline = self.evaluator.next_deadline() if self.automation.enabled else None
        if deadline == self.timer_deadline and (self.timer is None or not self.timer.done()):
            return
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        self.timer, self.timer_deadline, self.timer_fires_at = None, deadline, None
        self.timer_measures = False
        if deadline is not None:
            now = workflow.now()
            delay = min(deadline - now, MAX_TIMER)
            if delay > timedelta(0):
                if self._timer_would_start_late(deadline, delay):
                    delay, self.armed_early_for = YIELD_TASK, deadline
                elif self.arm_with_lead:
                    self.timer_measures = True
                    if delay == deadline - now:  # not a MAX_TIMER step towards a far deadline
                        delay = self._led(delay, self.timer_lead.lead_for(deadline))
                self.timer_fires_at = now + delay
                self.timer = asyncio.create_task(
                    workflow.sleep(delay, summary="next trigger deadline")
                )

    @staticmethod
    def _led(delay: timedelta, lead: timedelta) -> timedelta:
        """`delay` shortened by `lead`, down to a timer that fires as the task completes."""
        return delay - lead if delay - lead >= YIELD_TASK else min(delay, YIELD_TASK)

    def _timer_would_start_late(self, deadline: datetime, delay: timedelta) -> bool:
        """Firings in flight run local activities that hold this task open
        (ARM_BEFORE_LOCAL_ACTIONS); once per deadline, however long they take."""
        return (
            self.arm_early
            and self.in_flight > 0
            and delay > YIELD_TASK
            and deadline != self.armed_early_for
        )

    def _timer_due(self) -> bool:
        return self.timer_deadline is not None and (self.timer is None or self.timer.done())

    def _evaluate(self) -> None:
        """Evaluate at most EVENTS_PER_TASK events, then act on every deadline that passed."""
        now = workflow.now()
        if self._timer_due() and self.timer_deadline is not None:
            if self.timer_measures and self.timer_fires_at is not None:
                self.timer_lead.observe(now - self.timer_fires_at)
            if self.timer_fires_at is None or self.timer_fires_at >= self.timer_deadline:
                # The timer fired for this deadline; never let clock rounding put `now`
                # before it.
                now = max(now, self.timer_deadline)
            self.timer_deadline = None
        self._decode_some()
        if not self.automation.enabled:
            self.inbox.clear()  # a paused automation evaluates nothing
            return
        events, self.inbox = self.inbox[:EVENTS_PER_TASK], self.inbox[EVENTS_PER_TASK:]
        for event in events:
            try:
                firings = self.evaluator.receive([event], now)
            except Exception as error:  # one poisonous event must not stop the automation
                self._record_error(
                    f"event {event.id} ({event.event}) skipped: {error!r}", event_id=str(event.id)
                )
                continue
            self._on_firings(firings)
        try:
            firings = self.evaluator.advance(now)
        except Exception as error:
            self._record_error(f"deadlines skipped: {error!r}")
            firings = []
        self._on_firings(firings)
        for problem in self.evaluator.problems:
            self._record_error(problem)
        self.evaluator.problems.clear()

    # ------------------------------------------------------------------ firings

    def _on_firings(self, firings: list[Firing]) -> None:
        for firing in firings:
            try:
                self._on_firing(firing)
            except Exception as error:
                self._record_error(f"firing for key {firing.key} skipped: {error!r}")

    def _on_firing(self, firing: Firing) -> None:
        """Record a firing, announce it, and queue its actions — unless it ends a chain of
        automations or goes over the firing rate limit."""
        depth = firing_depth(firing)
        if depth > MAX_CHAIN_DEPTH:
            self.stats.chain_cut += 1
            self._record_error(
                f"firing not acted on: it would be link {depth} of a chain of "
                f"automations triggering each other (at most {MAX_CHAIN_DEPTH})",
                skipped="chain cut",
            )
            return
        chained = depth > 1
        budget = self.chained_budget if chained else self.budget
        if not budget.take(workflow.now()):
            self.stats.suppressed_firings += 1
            what = "chained firings (caused by other automations)" if chained else "firings"
            self._record_error(
                f"rate limit of {budget.per_minute} {what} a minute reached: "
                f"{self.stats.suppressed_firings} firings suppressed so far",
                skipped="rate limited",
            )
            return
        firing_id = workflow.uuid4()
        record = FiringRecord(
            id=firing_id,
            state=firing.state,
            key=firing.key,
            labels=firing.labels,
            event_id=firing.event.id if firing.event else None,
            event_name=firing.event.event if firing.event else None,
            event_resource_id=firing.event.resource_id if firing.event else None,
            occurred=firing.occurred,
            actions=[
                ActionResult(index=index, type=action.type, status="queued")
                for index, action in enumerate(self._actions_for(firing))
            ],
            path=firing.path,
            window_start=firing.window_start,
            window_end=firing.window_end,
            count=firing.count,
            evaluated=firing.evaluated,
            lag_seconds=firing.lag_seconds,
            lag_capped=firing.lag_capped,
        )
        self.stats.firings += 1
        self.stats.last_fired = firing.occurred
        self.stats.recent = [*self.stats.recent, record][-RECENT_FIRINGS:]
        self.memo_stale = True
        self.outbox.append(firing_event(self.automation, firing, firing_id, workflow.uuid4()))
        if record.actions:
            self.queue.append(QueuedFiring(id=firing_id, firing=firing))

    def _actions_for(self, firing: Firing) -> list[Any]:
        automation = self.automation
        if firing.state == "triggered":
            return [*automation.actions, *automation.actions_on_trigger]
        return list(automation.actions_on_resolve)

    def _may_start_firing(self) -> bool:
        return self.in_flight < FIRINGS_IN_FLIGHT and not self.continuing and not self._task_full()

    def _task_full(self) -> bool:
        """This workflow task started FIRINGS_PER_TASK firings already (a new task is known by
        the history having grown: within one task its length stays the same)."""
        if not self.firings_per_task:
            return False
        length = workflow.info().get_current_history_length()
        if length != self.task_mark:
            self.task_mark, self.started_this_task = length, 0
        return self.started_this_task >= FIRINGS_PER_TASK

    def _start_firings(self) -> None:
        while self.queue and self._may_start_firing():
            batch = self._take_webhook_batch() if self.batch_webhooks else None
            started = batch.items if batch is not None else [self.queue.pop(0)]
            self.in_flight += len(started)
            self.started_this_task += len(started)
            mark = workflow.info().get_current_history_length()
            self.running_by_task[mark] = self.running_by_task.get(mark, 0) + len(started)
            if batch is not None:
                asyncio.create_task(self._run_webhook_batch(batch, mark))
            else:
                asyncio.create_task(self._run_actions(started[0], mark))

    def _take_webhook_batch(self) -> _QueuedBatch | None:
        """The queued firings at the head of the queue whose only action is the same
        `call-webhook`, as many as may start now (at most WEBHOOK_BATCH and
        MAX_WEBHOOK_BATCH_BYTES); None when fewer than two are (the head starts alone)."""
        room = min(WEBHOOK_BATCH, FIRINGS_IN_FLIGHT - self.in_flight)
        if self.firings_per_task:
            room = min(room, FIRINGS_PER_TASK - self.started_this_task)
        if room < 2:
            return None
        action = self._only_webhook(self.queue[0])
        if action is None:
            return None
        count = 1
        while count < min(room, len(self.queue)):
            other = self._only_webhook(self.queue[count])
            if other is None or not (other is action or other == action):
                break
            count += 1
        if count < 2:
            return None
        if self.batch_too_big_at == workflow.info().get_current_history_length():
            return None  # measured once in this workflow task already: big firings go alone
        summary = AutomationSummary.of(self.automation)
        items = [WebhookBatchItem(firing=q.firing, firing_id=q.id) for q in self.queue[:count]]
        request = WebhookBatch(automation=summary, action=action, items=items)
        # Encoded here once, measured, and handed to the activity as it is (a RawValue passes
        # the converter untouched): measuring costs no second encoding.
        converter = workflow.payload_converter()
        (payload,) = converter.to_payloads([request])
        if len(payload.data) > MAX_WEBHOOK_BATCH_BYTES:
            # Big firings: the longest run of them that fits, each measured once; not again
            # in this task (each firing started alone encodes its own request anyway).
            self.batch_too_big_at = workflow.info().get_current_history_length()
            count = _fitting_items(request, MAX_WEBHOOK_BATCH_BYTES)
            if count < 2:
                return None
            request = request.model_copy(update={"items": items[:count]})
            (payload,) = converter.to_payloads([request])
        started = self.queue[:count]
        del self.queue[:count]
        return _QueuedBatch(items=started, request=request, encoded=RawValue(payload))

    def _only_webhook(self, queued: QueuedFiring) -> Any:
        """The firing's action if it is exactly one `call-webhook`, else None."""
        actions = self._actions_for(queued.firing)
        if len(actions) == 1 and actions[0].type == "call-webhook":
            return actions[0]
        return None

    async def _run_webhook_batch(self, batch: _QueuedBatch, mark: int) -> None:
        """Run a batch's firings as one local activity; then each firing's outcome goes into
        its record, its log and its lifecycle events exactly as `_run_actions` puts them."""
        automation = self.automation
        request = batch.request
        action = request.action
        handed = 0  # firings handed to _finish_batched, which finishes them; the rest here
        try:
            started: list[tuple[ActionResult, UUID]] = []
            for queued in batch.items:
                result = self._result_slot(self._record_of(queued), 0, action.type)
                result.status = "running"
                event_id = self._lifecycle(
                    automation, queued.firing, queued.id, "triggered", 0, action
                )
                started.append((result, event_id))
            outcomes = await self._call_webhooks(request, batch.encoded)
            finishing = []
            for position, (result, event_id) in enumerate(started):
                outcome = outcomes[position] if outcomes is not None else None
                finishing.append(
                    self._finish_batched(
                        automation, request, position, result, event_id, outcome, mark
                    )
                )
                handed += 1
            await asyncio.gather(*finishing)
        except Exception as error:  # a bug here must not fail the workflow task
            self._record_error(f"a batch of {len(batch.items)} webhook firings stopped: {error!r}")
        finally:
            for _ in range(len(batch.items) - handed):
                self._firing_done(mark)

    async def _call_webhooks(
        self, request: WebhookBatch, encoded: RawValue
    ) -> list[WebhookOutcome] | None:
        """Each item's outcome, or None when the batch's activity itself failed (a timeout,
        the worker): its items then go on one by one."""
        try:
            outcomes: list[WebhookOutcome] = await workflow.execute_local_activity(
                CALL_WEBHOOKS,
                encoded,
                result_type=list[WebhookOutcome],
                start_to_close_timeout=BATCH_ATTEMPT_TIMEOUT,
                retry_policy=BATCH_RETRY,
                summary=f"call-webhook x{len(request.items)}",
            )
        except Exception as error:
            self._log(logging.INFO, "a batch of %d webhooks failed: %r", len(request.items), error)
            return None
        if len(outcomes) != len(request.items):
            self._record_error(
                f"a batch of {len(request.items)} webhooks answered {len(outcomes)} outcomes"
            )
            return None
        return outcomes

    async def _finish_batched(
        self,
        automation: Automation,
        batch: WebhookBatch,
        position: int,
        result: ActionResult,
        started: UUID,
        outcome: WebhookOutcome | None,
        mark: int,
    ) -> None:
        """The outcome of the firing at `position` of `batch` (None: the batch failed); a
        transient failure is retried alone, as an unbatched firing's is (`_run_action`)."""
        item = batch.items[position]
        firing, firing_id, action = item.firing, item.firing_id, batch.action
        try:
            done = functools.partial(
                self._action_outcome, automation, firing, firing_id, action, result, started
            )
            if outcome is not None and outcome.status == "executed":
                done(detail=outcome.detail)
            elif outcome is not None and outcome.permanent:
                done(failure=outcome.detail, error_type=outcome.error_type)
            else:
                try:
                    detail = await self._retry_action("call_webhook", batch.request(item))
                except FailureError as error:
                    done(failure=_reason(error), error_type=_error_type(error))
                else:
                    done(detail=detail)
        except Exception as error:  # a bug here must not fail the workflow task
            self._record_error(
                f"actions of firing {firing_id} stopped: {error!r}", firing_id=str(firing_id)
            )
        finally:
            self._firing_done(mark)

    def _action_outcome(
        self,
        automation: Automation,
        firing: Firing,
        firing_id: UUID,
        action: Any,
        result: ActionResult,
        started: UUID,
        *,
        detail: str | None = None,
        failure: str | None = None,
        error_type: str | None = None,
    ) -> None:
        """An action executed (`detail`) or failed (`failure`): its result, log and lifecycle
        event."""
        if failure is None:
            result.detail = (detail or "")[:MAX_ERROR_TEXT]
            result.status = "executed"
            self._log_action(logging.DEBUG, result, firing_id)
        else:
            result.status = "failed"
            result.detail = failure[:MAX_ERROR_TEXT]
            self._log_action(logging.WARNING, result, firing_id, error_type=error_type)
        self._lifecycle(
            automation,
            firing,
            firing_id,
            result.status,
            result.index,
            action,
            reason=None if failure is None else result.detail,
            follows=started,
        )
        self.memo_stale = True

    def _firing_done(self, mark: int) -> None:
        self.in_flight -= 1
        left = self.running_by_task.get(mark, 0) - 1
        if left > 0:
            self.running_by_task[mark] = left
        else:
            self.running_by_task.pop(mark, None)

    async def _run_actions(self, queued: QueuedFiring, mark: int) -> None:
        """Run one firing's actions in order (the definition's actions as they are now)."""
        try:
            automation = self.automation
            firing, firing_id = queued.firing, queued.id
            record = self._record_of(queued)
            summary = AutomationSummary.of(automation)
            for index, action in enumerate(self._actions_for(firing)):
                result = self._result_slot(record, index, action.type)
                result.status = "running"
                started = self._lifecycle(automation, firing, firing_id, "triggered", index, action)
                try:
                    detail = await self._run_action(
                        ActionRequest(
                            automation=summary,
                            action=action,
                            action_index=index,
                            firing=firing,
                            firing_id=firing_id,
                        )
                    )
                except FailureError as error:
                    self._action_outcome(
                        automation,
                        firing,
                        firing_id,
                        action,
                        result,
                        started,
                        failure=_reason(error),
                        error_type=_error_type(error),
                    )
                else:
                    self._action_outcome(
                        automation, firing, firing_id, action, result, started, detail=detail
                    )
        except Exception as error:  # a bug here must not fail the workflow task
            self._record_error(
                f"actions of firing {queued.id} stopped: {error!r}", firing_id=str(queued.id)
            )
        finally:
            self._firing_done(mark)

    def _record_of(self, queued: QueuedFiring) -> FiringRecord:
        for record in self.stats.recent:
            if record.id == queued.id:
                return record
        # Rolled out of the recent list while it waited: results are kept nowhere visible.
        firing = queued.firing
        return FiringRecord(
            id=queued.id,
            state=firing.state,
            key=firing.key,
            labels=firing.labels,
            event_id=None,
            event_name=None,
            occurred=firing.occurred,
        )

    @staticmethod
    def _result_slot(record: FiringRecord, index: int, action_type: str) -> ActionResult:
        for result in record.actions:
            if result.index == index:
                result.type = action_type
                return result
        result = ActionResult(index=index, type=action_type)
        record.actions.append(result)
        return result

    async def _run_action(self, request: ActionRequest) -> str:
        activity_name = ACTIVITY_FOR_ACTION.get(request.action.type)
        if activity_name is None:  # do-nothing
            return "nothing to do"
        summary = f"{request.action.type} #{request.action_index}"
        try:
            # Named activities return Any to mypy; result_type=str makes it a str.
            done: str = await workflow.execute_local_activity(
                activity_name,
                request,
                result_type=str,
                start_to_close_timeout=LOCAL_ATTEMPT_TIMEOUT,
                retry_policy=LOCAL_RETRY,
                summary=summary,
            )
            return done
        except FailureError as error:
            if _is_permanent(error):
                raise
        return await self._retry_action(activity_name, request)

    @staticmethod
    async def _retry_action(activity_name: str, request: ActionRequest) -> str:
        """An action whose local attempts failed transiently, as a regular activity: its
        backoff is durable and does not hold the workflow task."""
        retried: str = await workflow.execute_activity(
            activity_name,
            request,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTION_RETRY,
            summary=f"{request.action.type} #{request.action_index} (retrying)",
        )
        return retried

    def _lifecycle(
        self,
        automation: Automation,
        firing: Firing,
        firing_id: UUID,
        outcome: str,
        index: int,
        action: Any,
        reason: str | None = None,
        follows: UUID | None = None,
    ) -> UUID:
        event = action_event(
            automation,
            firing,
            firing_id,
            workflow.uuid4(),
            workflow.now(),
            outcome=outcome,
            action_index=index,
            action_type=action.type,
            reason=reason,
            follows=follows,
        )
        self.outbox.append(event)
        return event.id

    # ------------------------------------------------------------------ lifecycle events out

    def _may_flush(self) -> bool:
        if not self.outbox or self.emitting:
            return False
        if not self.emit_after_local_actions or len(self.outbox) >= MAX_EMIT_BATCH:
            return True
        # Actions started in this workflow task run as local activities inside it, and the task
        # ends once they return (or reports in after 80% of its timeout: a new task, with a new
        # history length, which lets the batch go): their events join this batch.
        return not self.running_by_task.get(workflow.info().get_current_history_length())

    def _flush_outbox(self) -> None:
        if self._may_flush():
            self.emitting = True
            asyncio.create_task(self._emit(self._next_emit_batch()))

    def _next_emit_batch(self) -> list[Event]:
        candidates = self.outbox[:MAX_EMIT_BATCH]
        # Encoding the whole batch once costs far less than once per event (each goes through
        # the sandboxed converter: 500 of them ran past the 2 s deadlock detector at load 8).
        # The events' own sizes add up to less than their list's, so when the list fits, the
        # loop below would take every one of them: the batch is the same, command for command.
        if _payload_bytes(candidates) <= MAX_EMIT_BYTES:
            return list(candidates)
        batch: list[Event] = []
        size = 0
        for event in candidates:
            event_size = _payload_bytes(event)
            if batch and size + event_size > MAX_EMIT_BYTES:
                break
            batch.append(event)
            size += event_size
        return batch

    async def _emit(self, batch: list[Event]) -> None:
        try:
            refused = await workflow.execute_activity(
                EMIT_EVENTS,
                batch,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=EMIT_RETRY,
                summary=f"emit {len(batch)} lifecycle events",
            )
            if refused:
                self._record_error(f"{refused} lifecycle events refused by the events API")
        except Exception as error:
            self._record_error(f"{len(batch)} lifecycle events not emitted: {error!r}")
        finally:
            del self.outbox[: len(batch)]
            self.emitting = False

    # ------------------------------------------------------------------ what went wrong

    def _record_error(self, message: str, **fields: Any) -> None:
        self.stats.errors += 1
        self.stats.last_error = message[:MAX_ERROR_TEXT]
        self.stats.last_error_at = workflow.now()
        self.memo_stale = True
        self._log(logging.WARNING, message[:MAX_ERROR_TEXT], **fields)

    def _log(self, level: int, message: str, *args: object, **fields: Any) -> None:
        """A record with the automation's id and `fields` (firing_id, …) as its extra fields.
        workflow.logger is silent while the workflow replays: no record twice, no command."""
        if workflow.logger.isEnabledFor(level):
            extra = {"automation_id": str(self.automation.id), **fields}
            workflow.logger.log(level, message, *args, extra=extra)

    def _log_action(self, level: int, result: ActionResult, firing_id: UUID, **fields: Any) -> None:
        """One record per action outcome: `result`'s status and detail, with its firing."""
        self._log(
            level,
            "action %d (%s) %s: %s",
            result.index,
            result.type,
            result.status,
            result.detail,
            firing_id=str(firing_id),
            action_index=result.index,
            action_type=result.type,
            **fields,
        )

    # ------------------------------------------------------------------ memo and search attributes

    def _publish_definition(self) -> None:
        attributes = search_attributes_for(self.automation, updated=self.catalog_attribute)
        workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in attributes])
        workflow.upsert_memo(_bounded_memo(memo_for(self.automation, self.stats)))
        self.memo_stale = False

    def _publish_counters(self) -> None:
        if not self.memo_stale:
            return
        if self.memo_when_idle:
            # Each upsert is a history event: once per action it doubled a burst's history.
            # Now: when the automation has nothing left to do, else at most every MEMO_EVERY.
            now = workflow.now()
            recent = self.memo_published_at and now - self.memo_published_at < MEMO_EVERY
            if recent and not self._idle():
                return
            self.memo_published_at = now
        workflow.upsert_memo(counters_memo(self.stats))
        self.memo_stale = False

    def _idle(self) -> bool:
        return not (
            self.inbox or self.undecoded or self.queue or self.in_flight or self._overflowing()
        )

    # ------------------------------------------------------------------ overflow

    def _overflowing(self) -> bool:
        return bool(self.overflow or self.returned)

    def _backlog_low(self) -> bool:
        return len(self.inbox) + len(self.queue) < OVERFLOW_LOW_WATER and not self.undecoded

    def _take_back_some(self) -> None:
        """Unpack one returned chunk into the run's work, when its own backlog runs low."""
        if self.returned and self._backlog_low():
            self._take_back(self.returned.pop(0))

    def _take_back(self, returned: ReturnedWork) -> None:
        try:
            work = _unpacked_work(returned.packed_work)
        except Exception as error:
            self._record_error(f"overflow {returned.overflow_id} unreadable, skipped: {error!r}")
            return
        self._log(
            logging.INFO,
            "overflow %s taken back: %d events, %d firings, %d lifecycle events",
            returned.overflow_id,
            len(work.inbox),
            len(work.queue),
            len(work.outbox),
        )
        # What a chunk holds is older than what arrived since: it goes first.
        self.inbox[:0] = work.inbox
        self.queue[:0] = work.queue
        self.outbox[:0] = work.outbox

    def _keep(self, packed: str) -> None:
        """A chunk that found no overflow child: back at the end, as the newest work."""
        work = _unpacked_work(packed)
        self.inbox.extend(work.inbox)
        self.queue.extend(work.queue)
        self.outbox.extend(work.outbox)

    def _may_release_overflow(self) -> bool:
        return bool(
            self.overflow
            and self.releasing is None
            and not self.returned
            and not self.continuing
            and self._backlog_low()
        )

    def _release_overflow(self) -> None:
        if self._may_release_overflow():
            self.releasing = self.overflow[0]
            asyncio.create_task(self._release(self.overflow[0]))

    async def _release(self, overflow_id: str) -> None:
        """Ask an overflow child for its chunk; it answers with `take_back`."""
        try:
            child = workflow.get_external_workflow_handle(overflow_id)
            await child.signal(OverflowWorkflow.release)
            await workflow.wait_condition(
                lambda: overflow_id not in self.overflow, timeout=OVERFLOW_ANSWER_TIMEOUT
            )
        except Exception as error:  # gone (terminated by hand), or it did not answer
            if overflow_id in self.overflow:
                self.overflow.remove(overflow_id)
                self._record_error(f"overflow {overflow_id} not taken back: {error!r}")
        finally:
            if self.releasing == overflow_id:
                self.releasing = None

    def _may_spill(self) -> bool:
        return (
            self.overflow_to_children
            and len(self.overflow) < MAX_OVERFLOW_CHUNKS
            and self.overflow_bytes_this_run < MAX_OVERFLOW_BYTES_PER_RUN
        )

    async def _spill(self, carried_bytes: int) -> int:
        """Hand the newest work to overflow children, keeping the oldest share that fits into
        the next run (`carried_bytes`: what all of it weighs compressed); how many items went."""
        fixed = _payload_bytes(_packed(self._carry().model_copy(update=EMPTY_WORK)))
        room = self.limits.max_carry_bytes * 0.9 - fixed
        if room <= 0:  # the trigger's state alone fills the budget: nothing to gain
            return 0
        share = room / max(1, carried_bytes - fixed)
        lists = (self.queue, self.inbox, self.outbox)
        keep = [int(len(items) * share) for items in lists]
        spilled = CarriedWork(
            queue=self.queue[keep[0] :], inbox=self.inbox[keep[1] :], outbox=self.outbox[keep[2] :]
        )
        del self.queue[keep[0] :], self.inbox[keep[1] :], self.outbox[keep[2] :]
        chunks = _chunked(spilled, self.limits.overflow_chunk_items)
        if not chunks:
            return 0
        room = min(
            MAX_OVERFLOW_CHUNKS - len(self.overflow),
            _fitting(chunks, MAX_OVERFLOW_BYTES_PER_RUN - self.overflow_bytes_this_run),
        )
        chunks, left = chunks[:room], chunks[room:]
        info = workflow.info()
        first = self.overflow_started_this_run
        ids = [f"{info.workflow_id}-overflow-{info.run_id}-{first + n}" for n in range(len(chunks))]
        self.overflow_started_this_run += len(chunks)
        self.overflow_bytes_this_run += sum(len(packed) for packed, _ in chunks)
        started = await asyncio.gather(
            *(
                workflow.start_child_workflow(
                    OverflowWorkflow.run,
                    OverflowChunk(
                        automation_workflow_id=info.workflow_id, packed_work=packed, items=items
                    ),
                    id=overflow_id,
                    task_queue=info.task_queue,
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    static_summary=f"{items} items of {self.automation.name!r} waiting their turn",
                )
                for overflow_id, (packed, items) in zip(ids, chunks, strict=True)
            ),
            return_exceptions=True,
        )
        spilled_items = 0
        for overflow_id, outcome, (packed, items) in zip(ids, started, chunks, strict=True):
            if isinstance(outcome, BaseException):  # not started: its work stays here
                left.append((packed, items))
                self._record_error(f"overflow {overflow_id} not started: {outcome!r}")
            else:
                self.overflow.append(overflow_id)
                spilled_items += items
                self._log(logging.INFO, "overflow %s started: %d items", overflow_id, items)
        for packed, _ in left:  # no room for them: back into this run (to be shed at worst)
            self._keep(packed)
        return spilled_items

    # ------------------------------------------------------------------ continue-as-new

    def _should_continue_as_new(self) -> bool:
        if not self._within_history_headroom():
            return True
        info = workflow.info()
        wanted = self.signals_this_run >= MAX_SIGNALS_PER_RUN or info.is_continue_as_new_suggested()
        return wanted and info.get_current_history_length() >= self.carry_retry_at

    def _may_continue(self) -> bool:
        """Nothing of this run is still under way: no firing in flight, no emit, no handler,
        and no overflow chunk asked for and not yet answered."""
        return (
            self.in_flight == 0
            and not self.emitting
            and workflow.all_handlers_finished()
            and not (self.continue_after_release and self.releasing is not None)
        )

    async def _continue_as_new(self) -> None:
        # Firings in flight finish in this run (an activity cannot cross into the next one);
        # no new firing starts meanwhile, and events go on being evaluated into the queue.
        self.continuing = True
        while not self._may_continue():
            await workflow.wait_condition(
                lambda: (
                    bool(self.inbox or self.undecoded) or self._may_flush() or self._may_continue()
                )
            )
            self._evaluate()
            self._flush_outbox()
            if self.inbox or self.undecoded:
                await workflow.sleep(YIELD_TASK, summary="next chunk of a backlog")
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        if self.undecoded_bytes > MAX_DECODE_AT_CONTINUE and self._within_history_headroom():
            self._postpone_continue_as_new(self.undecoded_bytes)
            return
        while True:
            while self.undecoded:  # a bounded amount to decode (the check above)
                self._decode_next()
            while self.returned:
                self._take_back(self.returned.pop(0))
            carry = self._carry()
            memo = memo_for(self.automation, self.stats)
            size = _payload_bytes(carry) + _payload_bytes(memo)
            if size > self.limits.max_carry_bytes:
                # Events and firings repeat the same names and labels: they compress well.
                carry = _packed(carry)
                size = _payload_bytes(carry) + _payload_bytes(memo)
            if size <= self.limits.max_carry_bytes:
                break
            if self._may_spill() and await self._spill(size):
                continue
            if self._within_history_headroom():
                self._postpone_continue_as_new(size)
                return
            carry = self._shed(_unpacked(carry))
            break
        self._log(
            logging.INFO,
            "continuing as new after %d history events, carrying %d bytes",
            workflow.info().get_current_history_length(),
            size,
        )
        workflow.continue_as_new(
            carry,
            memo=_bounded_memo(memo),
            search_attributes=search_attributes_for(
                self.automation, updated=self.catalog_attribute
            ),
        )

    def _postpone_continue_as_new(self, size: int) -> None:
        """Too much to carry: work off the backlog in this run (it has headroom up to the
        server's hard limits), and try again once the history grew a little."""
        self.continuing = False
        self.carry_retry_at = workflow.info().get_current_history_length() + CARRY_RETRY_EVERY
        self._log(
            logging.INFO,
            "%d bytes to carry, over %d; continuing as new later",
            size,
            self.limits.max_carry_bytes,
        )

    def _within_history_headroom(self) -> bool:
        info = workflow.info()
        force_at_bytes = (
            FORCE_CONTINUE_AT_BYTES_WITH_OVERFLOW
            if self.overflow_to_children
            else FORCE_CONTINUE_AT_BYTES
        )
        return (
            info.get_current_history_length() < FORCE_CONTINUE_AT_EVENTS
            and info.get_current_history_size() < force_at_bytes
        )

    def _carry(self) -> AutomationRun:
        state = self.evaluator.state
        return AutomationRun(
            automation=self.automation,
            state=(
                state
                if isinstance(state, TriggerState)
                else TriggerState.model_validate(state.model_dump())
            ),
            semantics=self.semantics,
            inbox=self.inbox,
            queue=self.queue,
            outbox=self.outbox,
            stats=self.stats,
            limits=self.limits,
            budget=self.budget,
            chained_budget=self.chained_budget,
            overflow=self.overflow,
        )

    def _shed(self, carry: AutomationRun) -> AutomationRun:
        """The last resort, when the run nears the server's hard limits with more than fits
        even compressed: drop the newest work, lifecycle events first, just enough for the
        compressed carry to fit, and say how much (else the server would terminate the run and
        every bit of it would be lost)."""
        dropped: dict[str, int] = {}
        for name, items in (
            ("lifecycle events", carry.outbox),
            ("queued firings", carry.queue),
            ("events", carry.inbox),
        ):
            for _ in range(SHED_ROUNDS):
                size = _payload_bytes(_packed(carry))
                if not items or size <= self.limits.max_carry_bytes:
                    break
                # Items compress alike: keep the share that fits, less a margin.
                keep = int(len(items) * self.limits.max_carry_bytes / size * 0.9)
                dropped[name] = dropped.get(name, 0) + len(items) - keep
                del items[keep:]
        self._record_error(
            "history reached its limits with more work than a run can carry, even compressed; "
            f"dropped the newest: {', '.join(f'{n} {k}' for k, n in dropped.items())}"
        )
        carry.stats = self.stats
        return _packed(carry)


def _packed(carry: AutomationRun) -> AutomationRun:
    """`carry` with its work compressed (deterministic: the same input gives the same bytes)."""
    work = CarriedWork(inbox=carry.inbox, queue=carry.queue, outbox=carry.outbox)
    packed = _packed_work(work)
    return carry.model_copy(update={"inbox": [], "queue": [], "outbox": [], "packed_work": packed})


EMPTY_WORK: dict[str, Any] = {"inbox": [], "queue": [], "outbox": []}


def _packed_work(work: CarriedWork) -> str:
    return base64.b64encode(zlib.compress(work.model_dump_json().encode(), 6)).decode()


def _unpacked_work(packed: str) -> CarriedWork:
    return CarriedWork.model_validate_json(zlib.decompress(base64.b64decode(packed)))


def _chunked(work: CarriedWork, chunk_items: int) -> list[tuple[str, int]]:
    """`work` in packed chunks of at most `chunk_items` items and OVERFLOW_CHUNK_BYTES,
    oldest first (queued firings, then events, then lifecycle events), with their item counts."""
    items: list[tuple[str, Any]] = [
        *(("queue", q) for q in work.queue),
        *(("inbox", e) for e in work.inbox),
        *(("outbox", e) for e in work.outbox),
    ]
    chunks: list[tuple[str, int]] = []
    pending = [items[i : i + chunk_items] for i in range(0, len(items), max(1, chunk_items))]
    while pending:
        part = pending.pop(0)
        chunk = CarriedWork(
            queue=[item for kind, item in part if kind == "queue"],
            inbox=[item for kind, item in part if kind == "inbox"],
            outbox=[item for kind, item in part if kind == "outbox"],
        )
        packed = _packed_work(chunk)
        if len(packed) > OVERFLOW_CHUNK_BYTES and len(part) > 1:
            half = len(part) // 2
            pending[:0] = [part[:half], part[half:]]
        else:
            chunks.append((packed, len(part)))
    return chunks


def _fitting_items(batch: WebhookBatch, budget: int) -> int:
    """How many of `batch`'s items, from the first, fit in a batch of `budget` bytes."""
    size = _payload_bytes(batch.model_copy(update={"items": []}))
    count = 0
    for item in batch.items:
        size += _payload_bytes(item) + 1  # and its comma
        if size > budget:
            break
        count += 1
    return count


def _fitting(chunks: list[tuple[str, int]], budget: int) -> int:
    """How many of `chunks`, from the first, fit into `budget` bytes."""
    count = 0
    for packed, _ in chunks:
        budget -= len(packed)
        if budget < 0:
            break
        count += 1
    return count


def _unpacked(run: AutomationRun) -> AutomationRun:
    if run.packed_work is None:
        return run
    work = _unpacked_work(run.packed_work)
    return run.model_copy(
        update={
            "inbox": [*work.inbox, *run.inbox],
            "queue": [*work.queue, *run.queue],
            "outbox": [*work.outbox, *run.outbox],
            "packed_work": None,
        }
    )


def _payload_bytes(value: Any) -> int:
    """What `value` weighs as a Temporal payload, encoded as the worker will encode it."""
    return sum(len(p.data) for p in workflow.payload_converter().to_payloads([value]))


def _bounded_memo(memo: dict[str, Any]) -> dict[str, Any]:
    if _payload_bytes(memo) <= MAX_MEMO_BYTES:
        return memo
    automation = memo.get("automation") or {}
    return {**memo, "automation": {"id": automation.get("id"), "name": automation.get("name")}}


def _is_permanent(error: FailureError) -> bool:
    """A non-retryable failure (a 4xx, a missing target, a bad template), as opposed to a
    transient one that only ran out of local attempts. A local activity's failure arrives as
    the ApplicationError itself; a regular one's wrapped in an ActivityError."""
    if isinstance(error, ActivityError):
        return error.retry_state == RetryState.NON_RETRYABLE_FAILURE or _is_permanent_cause(
            error.cause
        )
    return _is_permanent_cause(error)


def _is_permanent_cause(error: BaseException | None) -> bool:
    return isinstance(error, ApplicationError) and error.non_retryable


def _error_type(error: FailureError) -> str | None:
    """The ApplicationError type an activity failed with (activities/errors.py), if any."""
    cause = error.cause if isinstance(error, ActivityError) else error
    return cause.type if isinstance(cause, ApplicationError) else None


def _reason(error: FailureError) -> str:
    cause = error.cause if isinstance(error, ActivityError) and error.cause else error
    return cause.message if isinstance(cause, FailureError) else str(cause)


def memo_for(automation: Automation, stats: AutomationStats) -> dict[str, Any]:
    """What the Temporal Web UI shows: the definition without secrets, and counters."""
    return {"automation": automation.without_secrets(), **counters_memo(stats)}


def counters_memo(stats: AutomationStats) -> dict[str, Any]:
    return {
        "firings": stats.firings,
        "last_fired": stats.last_fired.isoformat() if stats.last_fired else None,
        "events_received": stats.events_received,
        "errors": stats.errors,
        "last_error": stats.last_error,
    }


def search_attributes_for(automation: Automation, updated: bool = True) -> TypedSearchAttributes:
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(AUTOMATION_NAME, automation.name),
        SearchAttributePair(AUTOMATION_ENABLED, automation.enabled),
        SearchAttributePair(AUTOMATION_TAGS, automation.tags),
    ]
    if updated:
        pairs.append(SearchAttributePair(AUTOMATION_UPDATED, automation.updated))
    return TypedSearchAttributes(pairs)
