"""The automation's own events, in Prefect's shape, so one automation can react to another."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from temporal_automations.domain.automations import Automation, automation_id_from_resource
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event, trim_payload

TRIGGERED = "prefect.automation.triggered"
RESOLVED = "prefect.automation.resolved"
ACTION_TRIGGERED = "prefect.automation.action.triggered"
ACTION_EXECUTED = "prefect.automation.action.executed"
ACTION_FAILED = "prefect.automation.action.failed"

# A chain of automations reacting to each other's lifecycle events stops at this depth (as
# Prefect's does): each lifecycle event says how deep in such a chain it is.
MAX_CHAIN_DEPTH = 20
CHAIN_DEPTH = "chain_depth"
# The triggering event rides along in `prefect.automation.triggered`; its payload is cut to
# these, so a chain of lifecycle events embedding each other stays small and shallow.
EMBEDDED_PAYLOAD_BYTES = 16_000
EMBEDDED_PAYLOAD_DEPTH = 8


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


def chain_depth(event: Event | None) -> int:
    """How deep in a chain of automations `event` is: 0 for anything but a lifecycle event."""
    if event is None or not event.event.startswith("prefect.automation."):
        return 0
    depth = event.payload.get(CHAIN_DEPTH, 1)
    return depth if isinstance(depth, int) and not isinstance(depth, bool) and depth > 0 else 1


def firing_depth(firing: Firing) -> int:
    """The chain depth of a firing: one more than the event that caused it."""
    return chain_depth(firing.event) + 1


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
            CHAIN_DEPTH: firing_depth(firing),
            "triggering_labels": firing.labels,
            "triggering_event": _embedded(firing.event),
        },
    )


def _embedded(event: Event | None) -> dict[str, Any] | None:
    if event is None:
        return None
    data = event.model_dump(mode="json")
    data["payload"] = trim_payload(data["payload"], EMBEDDED_PAYLOAD_BYTES, EMBEDDED_PAYLOAD_DEPTH)
    return data


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
        CHAIN_DEPTH: firing_depth(firing),
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
