"""AutomationWorkflow: one long-lived run per automation (workflow id `automation-<uuid>`).

The story, top to bottom:
1. events arrive as `deliver` signals and wait in the inbox;
2. the loop evaluates them with the pure TriggerEvaluator, and wakes on ONE durable timer for
   the nearest deadline (a Proactive window's end, a held event's patience running out);
3. each firing runs its actions in order as activities, in its own task, so evaluation goes on;
4. the automation's own lifecycle events go out through an outbox, one activity at a time;
5. when the history grows long, the run continues as new, carrying its state.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from temporal_automations.activities.requests import (
        ACTIVITY_FOR_ACTION,
        EMIT_EVENTS,
        ActionRequest,
    )
    from temporal_automations.domain.automations import Automation
    from temporal_automations.domain.evaluation import Firing, TriggerEvaluator, TriggerState
    from temporal_automations.domain.events import Event
    from temporal_automations.domain.lifecycle import action_event, firing_event, is_own_event
    from temporal_automations.temporal import AUTOMATION_ENABLED, AUTOMATION_NAME, AUTOMATION_TAGS

MAX_SIGNALS_PER_RUN = 2_000  # the server refuses more than 10,000 per run
MAX_EMIT_BATCH = 500
RECENT_FIRINGS = 20

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
EMIT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


# --------------------------------------------------------------------------- what it carries


class ActionResult(BaseModel):
    index: int
    type: str
    status: Literal["running", "executed", "failed"] = "running"
    detail: str | None = None


class FiringRecord(BaseModel):
    id: UUID
    state: Literal["triggered", "resolved"]
    key: str
    labels: dict[str, str]
    event_id: UUID | None
    event_name: str | None
    event_resource_id: str | None = None
    occurred: datetime
    actions: list[ActionResult] = Field(default_factory=list)


class AutomationStats(BaseModel):
    events_received: int = 0
    firings: int = 0
    last_fired: datetime | None = None
    recent: list[FiringRecord] = Field(default_factory=list)


class AutomationRun(BaseModel):
    """The workflow's input: a fresh start (`state` None) or a continuation."""

    automation: Automation
    state: TriggerState | None = None
    inbox: list[Event] = Field(default_factory=list)
    outbox: list[Event] = Field(default_factory=list)
    pending_firings: list[Firing] = Field(default_factory=list)
    stats: AutomationStats = Field(default_factory=AutomationStats)


class AutomationStatus(BaseModel):
    """The `status` query: the definition, counters, and what the trigger is waiting for."""

    automation: Automation
    stats: AutomationStats
    next_deadline: datetime | None
    open_windows: int
    triggered_keys: int
    held_events: int


# --------------------------------------------------------------------------- the workflow


@workflow.defn(name="AutomationWorkflow")
class AutomationWorkflow:
    @workflow.init
    def __init__(self, run: AutomationRun) -> None:
        self.automation = run.automation
        self.evaluator = TriggerEvaluator(run.automation.trigger, run.state)
        self.inbox: list[Event] = list(run.inbox)
        self.outbox: list[Event] = list(run.outbox)
        self.pending_firings: list[Firing] = list(run.pending_firings)
        self.stats = run.stats
        self.signals_this_run = 0
        self.actions_in_flight = 0
        self.emitting = False
        self.timer: asyncio.Task[None] | None = None
        self.timer_deadline: datetime | None = None
        self.deadline_moved = False  # a new definition or resume: re-arm without waiting
        self.memo_stale = False

    @workflow.run
    async def run(self, run: AutomationRun) -> None:
        if run.state is None and self.automation.enabled:
            self.evaluator.start(workflow.now())
        for firing in self.pending_firings:
            self._act_on(firing)
        self.pending_firings = []
        while True:
            self._arm_timer()
            await workflow.wait_condition(self._has_work)
            self._evaluate(start_actions=True)
            self._flush_outbox()
            self._publish_counters()
            if self._should_continue_as_new():
                await self._continue_as_new()

    # ------------------------------------------------------------------ messages

    @workflow.signal
    def deliver(self, events: list[Event]) -> None:
        """Events from the router. Accepted (durable) as soon as the server records the signal."""
        self.signals_this_run += 1
        self.stats.events_received += len(events)
        self.inbox.extend(e for e in events if not is_own_event(self.automation.id, e))

    @workflow.update
    def replace(self, automation: Automation) -> Automation:
        """PUT: a new definition; the trigger starts again from nothing."""
        self.automation = automation
        self.evaluator = TriggerEvaluator(automation.trigger)
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
            self.evaluator = TriggerEvaluator(self.automation.trigger)
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
        )

    # ------------------------------------------------------------------ evaluation

    def _has_work(self) -> bool:
        return bool(
            self.inbox
            or self._timer_due()
            or (self.outbox and not self.emitting)
            or self.deadline_moved
            or self._should_continue_as_new()
        )

    def _arm_timer(self) -> None:
        """Keep exactly one timer, for the nearest deadline; re-arm only when it moves."""
        self.deadline_moved = False
        deadline = self.evaluator.next_deadline() if self.automation.enabled else None
        if deadline == self.timer_deadline and (self.timer is None or not self.timer.done()):
            return
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        self.timer, self.timer_deadline = None, deadline
        if deadline is not None:
            delay = (deadline - workflow.now()).total_seconds()
            if delay > 0:
                self.timer = asyncio.create_task(
                    workflow.sleep(delay, summary="next trigger deadline")
                )

    def _timer_due(self) -> bool:
        return self.timer_deadline is not None and (self.timer is None or self.timer.done())

    def _evaluate(self, start_actions: bool) -> None:
        now = workflow.now()
        if self._timer_due() and self.timer_deadline is not None:
            # The timer fired for this deadline; never let clock rounding put `now` before it.
            now = max(now, self.timer_deadline)
            self.timer_deadline = None
        events, self.inbox = self.inbox, []
        if not self.automation.enabled:
            return
        firings = self.evaluator.receive(events, now) + self.evaluator.advance(now)
        for firing in firings:
            if start_actions:
                self._act_on(firing)
            else:
                self.pending_firings.append(firing)

    # ------------------------------------------------------------------ actions

    def _act_on(self, firing: Firing) -> None:
        firing_id = workflow.uuid4()
        automation = self.automation
        record = FiringRecord(
            id=firing_id,
            state=firing.state,
            key=firing.key,
            labels=firing.labels,
            event_id=firing.event.id if firing.event else None,
            event_name=firing.event.event if firing.event else None,
            event_resource_id=firing.event.resource_id if firing.event else None,
            occurred=firing.occurred,
        )
        self.stats.firings += 1
        self.stats.last_fired = firing.occurred
        self.stats.recent = [*self.stats.recent, record][-RECENT_FIRINGS:]
        self.memo_stale = True
        self.outbox.append(firing_event(automation, firing, firing_id, workflow.uuid4()))
        if firing.state == "triggered":
            actions = [*automation.actions, *automation.actions_on_trigger]
        else:
            actions = list(automation.actions_on_resolve)
        if actions:
            self.actions_in_flight += 1
            asyncio.create_task(self._run_actions(automation, firing, firing_id, actions, record))

    async def _run_actions(
        self,
        automation: Automation,
        firing: Firing,
        firing_id: UUID,
        actions: list[Any],
        record: FiringRecord,
    ) -> None:
        try:
            for index, action in enumerate(actions):
                result = ActionResult(index=index, type=action.type)
                record.actions.append(result)
                started = self._lifecycle(automation, firing, firing_id, "triggered", index, action)
                try:
                    result.detail = await self._run_action(
                        ActionRequest(
                            automation=automation,
                            action=action,
                            action_index=index,
                            firing=firing,
                            firing_id=firing_id,
                        )
                    )
                    result.status = "executed"
                    self._lifecycle(
                        automation, firing, firing_id, "executed", index, action, follows=started
                    )
                except FailureError as error:
                    result.status = "failed"
                    result.detail = _reason(error)
                    self._lifecycle(
                        automation,
                        firing,
                        firing_id,
                        "failed",
                        index,
                        action,
                        reason=result.detail,
                        follows=started,
                    )
                self.memo_stale = True
        finally:
            self.actions_in_flight -= 1

    async def _run_action(self, request: ActionRequest) -> str:
        activity_name = ACTIVITY_FOR_ACTION.get(request.action.type)
        if activity_name is None:  # do-nothing
            return "nothing to do"
        summary = f"{request.action.type} #{request.action_index}"
        try:
            return await workflow.execute_local_activity(
                activity_name,
                request,
                result_type=str,
                start_to_close_timeout=LOCAL_ATTEMPT_TIMEOUT,
                retry_policy=LOCAL_RETRY,
                summary=summary,
            )
        except FailureError as error:
            if _is_permanent(error):
                raise
        return await workflow.execute_activity(
            activity_name,
            request,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=ACTION_RETRY,
            summary=f"{summary} (retrying)",
        )

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

    def _flush_outbox(self) -> None:
        if self.outbox and not self.emitting:
            self.emitting = True
            asyncio.create_task(self._emit(self.outbox[:MAX_EMIT_BATCH]))

    async def _emit(self, batch: list[Event]) -> None:
        try:
            await workflow.execute_activity(
                EMIT_EVENTS,
                batch,
                result_type=int,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=EMIT_RETRY,
                summary=f"emit {len(batch)} lifecycle events",
            )
        finally:
            del self.outbox[: len(batch)]
            self.emitting = False

    # ------------------------------------------------------------------ memo and search attributes

    def _publish_definition(self) -> None:
        workflow.upsert_search_attributes(
            [pair.key.value_set(pair.value) for pair in search_attributes_for(self.automation)]
        )
        workflow.upsert_memo(memo_for(self.automation, self.stats))
        self.memo_stale = False

    def _publish_counters(self) -> None:
        if self.memo_stale:
            workflow.upsert_memo(counters_memo(self.stats))
            self.memo_stale = False

    # ------------------------------------------------------------------ continue-as-new

    def _should_continue_as_new(self) -> bool:
        return (
            self.signals_this_run >= MAX_SIGNALS_PER_RUN
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _continue_as_new(self) -> None:
        # Actions in flight finish in this run; meanwhile events are still evaluated (so the
        # inbox stays small) and new firings wait to start in the next run.
        while not (
            self.actions_in_flight == 0 and not self.emitting and workflow.all_handlers_finished()
        ):
            await workflow.wait_condition(
                lambda: (
                    bool(self.inbox)
                    or (
                        self.actions_in_flight == 0
                        and not self.emitting
                        and workflow.all_handlers_finished()
                    )
                )
            )
            self._evaluate(start_actions=False)
        if self.timer is not None and not self.timer.done():
            self.timer.cancel()
        workflow.continue_as_new(
            AutomationRun(
                automation=self.automation,
                state=self.evaluator.state,
                inbox=self.inbox,
                outbox=self.outbox,
                pending_firings=self.pending_firings,
                stats=self.stats,
            ),
            memo=memo_for(self.automation, self.stats),
            search_attributes=search_attributes_for(self.automation),
        )


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
    }


def search_attributes_for(automation: Automation) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(AUTOMATION_NAME, automation.name),
            SearchAttributePair(AUTOMATION_ENABLED, automation.enabled),
            SearchAttributePair(AUTOMATION_TAGS, automation.tags),
        ]
    )
