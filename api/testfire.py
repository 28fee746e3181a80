"""Test-fire and backtest as a service: the API's `POST /api/automations/test` and the CLI's
`automations test` both call `test_fire`.

The evaluation is domain/simulation.py (the workflow's own evaluator); this adds the one part
that cannot be pure: rendering the actions' templates, done as the worker does it — in child
processes bounded in time and memory (activities/rendering.py), with the same template context.
Nothing is sent, started or emitted.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import AutomationSummary
from temporal_automations.domain.automations import Automation, CompositeTrigger, EventTrigger
from temporal_automations.domain.events import Event
from temporal_automations.domain.simulation import SimulatedFiring, Simulation, simulate
from temporal_automations.domain.templates import TemplateRenderError, action_context


async def test_fire(
    automation: Automation,
    events: list[Event],
    renderer: TemplateRenderer,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    max_events: int,
    firings_per_minute: int = 0,
    chained_firings_per_minute: int = 0,
) -> dict[str, Any]:
    # In a thread: a backtest over 100,000 events takes seconds of evaluation, which must not
    # hold the API's event loop (the ingest path) for that long in one piece.
    simulation = await asyncio.to_thread(
        simulate,
        automation,
        events,
        since=since,
        until=until,
        max_events=max_events,
        firings_per_minute=firings_per_minute,
        chained_firings_per_minute=chained_firings_per_minute,
    )
    for firing in simulation.firings:
        await _render(automation, firing, renderer)
    return report(automation, simulation, max_events)


async def _render(automation: Automation, simulated: SimulatedFiring, renderer: Any) -> None:
    context = action_context(
        AutomationSummary.of(automation),  # as the worker passes it
        simulated.firing,
        simulated.id,
    )
    for action in simulated.actions:
        if not action.templates:
            continue
        names = list(action.templates)
        try:
            rendered = await renderer.render([action.templates[n] for n in names], context)
        except (TemplateRenderError, RuntimeError) as error:
            action.would_fail = f"template: {error}"
            continue
        for name, text in zip(names, rendered, strict=True):
            action.request[name] = text


def report(automation: Automation, simulation: Simulation, max_events: int) -> dict[str, Any]:
    return {
        "automation": {"id": str(automation.id), "name": automation.name},
        "side_effects": "none: nothing was sent, started or emitted",
        "events_scanned": simulation.events_scanned,
        "events_evaluated": simulation.events_evaluated,
        "max_events": max_events,
        "capped": simulation.capped,
        "evaluated_from": _iso(simulation.evaluated_from),
        "evaluated_until": _iso(simulation.evaluated_until),
        "problems": simulation.problems,
        "firings": [_firing(f) for f in simulation.firings],
    }


def _firing(simulated: SimulatedFiring) -> dict[str, Any]:
    firing = simulated.firing
    event = firing.event
    return {
        "id": str(simulated.id),
        "state": firing.state,
        "occurred": firing.occurred.isoformat(),
        "key": firing.key,
        "labels": firing.labels,
        "window_start": _iso(firing.window_start),
        "window_end": _iso(firing.window_end),
        "count": firing.count,
        "event": None
        if event is None
        else {
            "id": str(event.id),
            "event": event.event,
            "occurred": event.occurred.isoformat(),
            "resource_id": event.resource_id,
        },
        "acted_on": simulated.acted_on,
        "not_acted_on_because": simulated.not_acted_on_because,
        "actions": [action.model_dump(mode="json") for action in simulated.actions],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def event_name_prefixes(trigger: EventTrigger | CompositeTrigger) -> list[str] | None:
    """Name prefixes that cover every event the trigger can care about, for reading only
    those from the store; None when it may care about any name (`expect` empty, a negation).
    A composite cares about what any of its event triggers does."""
    prefixes: set[str] = set()
    for leaf in trigger.leaves():
        names = [*leaf.after, *leaf.expect]
        if not leaf.expect or any(name.startswith("!") for name in names):
            return None
        prefixes.update(name[:-1] if name.endswith("*") else name for name in names)
    return sorted(prefixes)
