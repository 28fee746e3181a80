"""Small, self-contained builders for the domain tests (no server, no Temporal, no network)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporal_automations.domain.automations import Automation, EventTrigger
from temporal_automations.domain.evaluation import Firing, TriggerEvaluator
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event, EventIn
from temporal_automations.domain.inputs import AutomationCore, EventTriggerInput

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

RUNNING = "prefect.flow-run.Running"
COMPLETED = "prefect.flow-run.Completed"
FAILED = "prefect.flow-run.Failed"
TERMINAL = [COMPLETED, FAILED, "prefect.flow-run.Crashed", "prefect.flow-run.Cancelled"]

STUCK: dict[str, Any] = {
    "posture": "Proactive",
    "after": [RUNNING],
    "expect": TERMINAL,
    "for_each": [RESOURCE_ID],
    "within": 1800,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def uid(n: int) -> uuid.UUID:
    """A readable, fixed UUID: uid(7) == 00000000-0000-4000-8000-000000000007."""
    return uuid.UUID(f"00000000-0000-4000-8000-{n:012d}")


def trigger(**fields: Any) -> EventTrigger:
    """A trigger as a user writes it (checked at the edge), in the form a workflow stores."""
    return EventTrigger.model_validate(EventTriggerInput.model_validate(fields).model_dump())


def evaluator(**fields: Any) -> TriggerEvaluator:
    return TriggerEvaluator(trigger(**fields))


def event(
    name: str,
    seconds: float = 0,
    resource: str = "prefect.flow-run.r1",
    *,
    related: list[dict[str, str]] | None = None,
    follows: uuid.UUID | None = None,
    id: uuid.UUID | None = None,
    **labels: str,
) -> Event:
    return EventIn(
        id=id or uuid.uuid4(),
        occurred=at(seconds),
        event=name,
        resource={RESOURCE_ID: resource, **labels},
        related=related or [],
        follows=follows,
    )


def related(resource_id: str, role: str, **labels: str) -> dict[str, str]:
    return {RESOURCE_ID: resource_id, RESOURCE_ROLE: role, **labels}


def triggered(firings: list[Firing]) -> list[Firing]:
    return [f for f in firings if f.state == "triggered"]


def resolved(firings: list[Firing]) -> list[Firing]:
    return [f for f in firings if f.state == "resolved"]


def states(firings: list[Firing]) -> list[str]:
    return [f.state for f in firings]


def automation(**fields: Any) -> Automation:
    data: dict[str, Any] = {
        "id": uid(1),
        "name": "watch runs",
        "trigger": {"posture": "Reactive", "expect": [FAILED]},
        "actions": [{"type": "do-nothing"}],
    }
    data.update(fields)
    automation_id = uuid.UUID(str(data.pop("id")))
    return AutomationCore.model_validate(data).to_automation(automation_id, T0, T0)
