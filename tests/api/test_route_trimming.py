"""Routing a large request: an oversized payload is trimmed before a workflow stores it, and
the events with nothing to trim (an empty payload, most of them) are delivered as they are."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from temporal_automations.api.batches import validate_inline
from temporal_automations.api.routing import STORED_PAYLOAD_BYTES, EventRouter
from temporal_automations.domain.events import Event
from temporal_automations.domain.inputs import AutomationCore


class RecordingBatcher:
    """A fake of SignalBatcher (no Temporal here): records what each automation would get."""

    def __init__(self) -> None:
        self.delivered: dict[UUID, list[Event]] = {}

    async def deliver(self, automation_id: UUID, events: list[Event], size: int) -> None:
        self.delivered.setdefault(automation_id, []).extend(events)


def event_json(payload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "x",
        "resource": {"prefect.resource.id": "r"},
        **({"payload": payload} if payload is not None else {}),
    }


async def test_a_big_payload_is_trimmed_and_empty_ones_pass_untouched() -> None:
    now = datetime.now(UTC)
    listener = AutomationCore.model_validate(
        {
            "name": "a",
            "trigger": {"posture": "Reactive", "expect": ["x"], "threshold": 1000},
            "actions": [{"type": "do-nothing"}],
        }
    ).to_automation(uuid.uuid4(), now, now)
    router = EventRouter(client=None)  # type: ignore[arg-type]  # the batcher is replaced
    batcher = RecordingBatcher()
    router.batcher = batcher  # type: ignore[assignment]
    router.reindex([listener])
    body = json.dumps(
        [
            *(event_json() for _ in range(300)),
            event_json({"log": "y" * (STORED_PAYLOAD_BYTES + 1)}),
            event_json({"note": "small"}),
        ]
    ).encode()
    assert len(body) > STORED_PAYLOAD_BYTES  # the request is big enough to be checked
    events = validate_inline(body)

    await router.route(events, len(body))

    got = batcher.delivered[listener.id]
    assert [e.id for e in got] == [e.id for e in events]  # each once, in order
    assert all(a is b for a, b in zip(got[:300], events[:300], strict=True))
    assert got[300].payload["trimmed"] is True
    assert got[300].payload["original_bytes"] > STORED_PAYLOAD_BYTES
    assert got[301].payload == {"note": "small"}
