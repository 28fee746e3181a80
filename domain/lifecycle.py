"""The automation's own events, in Prefect's shape, so one automation can react to another."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from temporal_automations.domain.automations import Automation, automation_id_from_resource
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event

TRIGGERED = "prefect.automation.triggered"
RESOLVED = "prefect.automation.resolved"
ACTION_TRIGGERED = "prefect.automation.action.triggered"
ACTION_EXECUTED = "prefect.automation.action.executed"
ACTION_FAILED = "prefect.automation.action.failed"


def _resource(automation: Automation) -> dict[str, str]:
    return {
        RESOURCE_ID: automation.resource_id,
        "prefect.resource.name": automation.name,
        "prefect.posture": automation.trigger.posture.value,
    }


def _related(firing: Firing) -> list[dict[str, str]]:
    if firing.event is None:
        return []
    return [{RESOURCE_ID: f"prefect.event.{firing.event.id}", RESOURCE_ROLE: "triggering-event"}]


def firing_event(automation: Automation, firing: Firing, firing_id: UUID, event_id: UUID) -> Event:
    """`prefect.automation.triggered` or `.resolved` for one firing."""
    return Event(
        id=event_id,
        occurred=firing.occurred,
        event=TRIGGERED if firing.state == "triggered" else RESOLVED,
        resource=_resource(automation),
        related=_related(firing),
        payload={
            "firing_id": str(firing_id),
            "triggering_labels": firing.labels,
            "triggering_event": (
                firing.event.model_dump(mode="json") if firing.event is not None else None
            ),
        },
    )


def action_event(
    automation: Automation,
    firing: Firing,
    firing_id: UUID,
    event_id: UUID,
    occurred: datetime,
    *,
    outcome: str,
    action_index: int,
    action_type: str,
    reason: str | None = None,
    follows: UUID | None = None,
) -> Event:
    """`prefect.automation.action.<outcome>` (triggered, executed or failed)."""
    payload: dict[str, Any] = {
        "firing_id": str(firing_id),
        "action_index": action_index,
        "action_type": action_type,
        "invocation": f"{automation.id}:{firing_id}:{action_index}",
    }
    if reason is not None:
        payload["reason"] = reason
    return Event(
        id=event_id,
        occurred=occurred,
        event=f"prefect.automation.action.{outcome}",
        resource=_resource(automation),
        related=_related(firing),
        payload=payload,
        follows=follows,
    )


def is_own_event(automation_id: UUID, event: Event) -> bool:
    """An automation never reacts to its own lifecycle events (no self-triggering loop)."""
    return (
        event.event.startswith("prefect.automation.")
        and automation_id_from_resource(event.resource) == automation_id
    )
