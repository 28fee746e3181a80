"""Test-fire and backtest: what an automation would do with given events, without doing it.

The trigger is evaluated by the workflow's own TriggerEvaluator (domain/evaluation.py), with
the same entry points the workflow uses: `start` when the automation is enabled, `receive` for
events, `advance` for deadlines. Events are taken in `occurred` order and each is evaluated at
its own time (`now = occurred`): the events clock of a stream replayed from the store. Before
each event, and at the end of the range, deadlines up to that moment are acted on, so proactive
firings (a run that never completed) appear at their deadline. The chain-depth cut and the
firing rate limit the workflow applies are applied here too.

Actions are planned, never run: each gets its target resolved (domain/targets.py) and its
secrets masked; templates are rendered by the caller (off the event loop, bounded, as the
worker renders them). Pure: no Temporal, no network, no clock of its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Final, Literal
from uuid import UUID, uuid5

from pydantic import BaseModel, Field

from temporal_automations.domain.automations import (
    SECRET_MASK,
    Action,
    Automation,
    CallWebhook,
    ChangeFlowRunState,
    CompositeTrigger,
    EventTrigger,
    FlowRunAction,
    RunDeployment,
    SendNotification,
    TargetedAction,
    masked_url,
)
from temporal_automations.domain.evaluation import Firing, TriggerEvaluator
from temporal_automations.domain.events import Event
from temporal_automations.domain.lifecycle import MAX_CHAIN_DEPTH, firing_depth, is_own_event
from temporal_automations.domain.ratelimit import FiringBudget
from temporal_automations.domain.targets import NoTarget, target_id

DEFAULT_MAX_EVENTS = 100_000
# A proactive trigger of 10 s over a week is ~60,000 deadlines; past this many between two
# events the rest are settled at once (at the later moment).
MAX_DEADLINES_BETWEEN_EVENTS = 200_000
NOT_SENT: Final = "not sent"


class PlannedAction(BaseModel):
    """One action of a firing as it would go out: `status` is always "not sent"."""

    index: int
    type: str
    status: Literal["not sent"] = NOT_SENT
    target: str | None = None  # the resource it would act on (targeted actions)
    would_fail: str | None = None  # why it would fail (nothing to infer, a template error)
    request: dict[str, Any] = Field(default_factory=dict)  # url, method, headers, body, …
    # Template fields to render, by name in `request` (the caller renders them).
    templates: dict[str, str] = Field(default_factory=dict, exclude=True)


class SimulatedFiring(BaseModel):
    id: UUID
    firing: Firing
    acted_on: bool = True
    not_acted_on_because: str | None = None
    actions: list[PlannedAction] = Field(default_factory=list)

    @property
    def event_ids(self) -> list[UUID]:
        return [self.firing.event.id] if self.firing.event is not None else []


class Simulation(BaseModel):
    firings: list[SimulatedFiring] = Field(default_factory=list)
    events_scanned: int = 0
    events_evaluated: int = 0  # scanned, less the automation's own lifecycle events
    capped: bool = False  # more events than the cap: the rest were not evaluated
    evaluated_from: datetime | None = None
    evaluated_until: datetime | None = None
    problems: list[str] = Field(default_factory=list)


def _quiet_span(trigger: EventTrigger | CompositeTrigger) -> timedelta:
    """How long after the last event "and then nothing more happened" takes to settle: an
    event trigger's window; a composite's longest child window plus its `within`."""
    if isinstance(trigger, EventTrigger):
        return trigger.window
    windows = [leaf.window for leaf in trigger.leaves()]
    return max(windows, default=timedelta(0)) + timedelta(seconds=trigger.within or 0)


def simulate(
    automation: Automation,
    events: Iterable[Event],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_events: int = DEFAULT_MAX_EVENTS,
    firings_per_minute: int = 0,
    chained_firings_per_minute: int = 0,
) -> Simulation:
    """The firings `automation` would produce for `events`, from `since` (the moment it is
    taken as enabled; default: the first event) until `until` (deadlines up to it are acted
    on; default: the last event plus one window, i.e. "and then nothing more happened")."""
    ordered = sorted(events, key=lambda e: e.occurred)  # stable: ties keep delivery order
    result = Simulation(events_scanned=min(len(ordered), max_events))
    if len(ordered) > max_events:
        ordered, result.capped = ordered[:max_events], True
    if since is None:
        since = ordered[0].occurred if ordered else until
    if since is None:
        return result
    if until is None:
        last = ordered[-1].occurred if ordered else since
        until = last + _quiet_span(automation.trigger)
    result.evaluated_from, result.evaluated_until = since, until

    evaluator = TriggerEvaluator(automation.trigger)
    evaluator.start(since)
    budget = FiringBudget(per_minute=firings_per_minute)
    chained = FiringBudget(per_minute=chained_firings_per_minute)
    firings: list[Firing] = []

    def collect(new: list[Firing]) -> None:
        firings.extend(new)
        result.problems.extend(evaluator.problems)
        evaluator.problems.clear()

    def deadlines_up_to(moment: datetime) -> None:
        """Each deadline at its own time, as the workflow's timer wakes at it: a firing then
        says when it would have happened, not when the next event came."""
        for _ in range(MAX_DEADLINES_BETWEEN_EVENTS):
            deadline = evaluator.next_deadline()
            if deadline is None or deadline > moment:
                return
            collect(evaluator.advance(deadline))
            following = evaluator.next_deadline()
            if following is not None and following <= deadline:
                break  # no progress (should not happen): settle the rest at `moment`
        collect(evaluator.advance(moment))

    for event in ordered:
        if is_own_event(automation.id, event):
            continue
        result.events_evaluated += 1
        try:
            deadlines_up_to(event.occurred)
            collect(evaluator.receive([event], event.occurred))
        except Exception as error:  # the workflow records and skips such an event too
            result.problems.append(f"event {event.id} ({event.event}) skipped: {error!r}")
    if until >= since:
        try:
            deadlines_up_to(until)
        except Exception as error:
            result.problems.append(f"deadlines skipped: {error!r}")

    for number, firing in enumerate(firings):
        firing_id = uuid5(automation.id, f"test-fire:{number}")
        simulated = SimulatedFiring(id=firing_id, firing=firing)
        depth = firing_depth(firing)
        if depth > MAX_CHAIN_DEPTH:
            simulated.acted_on = False
            simulated.not_acted_on_because = (
                f"link {depth} of a chain of automations (at most {MAX_CHAIN_DEPTH})"
            )
        elif not (chained if depth > 1 else budget).take(firing.occurred):
            simulated.acted_on = False
            simulated.not_acted_on_because = "over the firing rate limit"
        else:
            simulated.actions = [
                plan_action(index, action, firing)
                for index, action in enumerate(actions_for(automation, firing))
            ]
        result.firings.append(simulated)
    return result


def actions_for(automation: Automation, firing: Firing) -> list[Action]:
    """The actions a firing runs (the workflow's rule): triggered → `actions` then
    `actions_on_trigger`; resolved → `actions_on_resolve`."""
    if firing.state == "triggered":
        return [*automation.actions, *automation.actions_on_trigger]
    return list(automation.actions_on_resolve)


def plan_action(index: int, action: Action, firing: Firing) -> PlannedAction:
    """What the action would send, secrets masked, target resolved; templates left to render."""
    planned = PlannedAction(index=index, type=action.type)
    if isinstance(action, CallWebhook):
        planned.request = {
            "method": action.method,
            "url": action.url if action.url else f"(the URL of block {action.block_document_id})",
            "headers": {name: SECRET_MASK for name in action.headers},
            "body": action.payload,
        }
        planned.templates = {"body": action.payload}
    elif isinstance(action, SendNotification):
        planned.request = {
            "to": [masked_url(url) for url in action.urls]
            or [f"(block {action.block_document_id})"],
            "subject": action.subject,
            "body": action.body,
        }
        planned.templates = {"subject": action.subject, "body": action.body}
    if isinstance(action, TargetedAction | FlowRunAction):
        try:
            planned.target = f"prefect.{action.target_kind}.{target_id(action, firing)}"
        except NoTarget as error:
            planned.would_fail = str(error)
    if isinstance(action, RunDeployment):
        planned.request = {
            "parameters": action.parameters or {},
            "job_variables": action.job_variables or {},
            "schedule_after_seconds": action.schedule_after,
        }
    elif isinstance(action, ChangeFlowRunState):
        planned.request = {"state": action.state, "name": action.name, "message": action.message}
    return planned
