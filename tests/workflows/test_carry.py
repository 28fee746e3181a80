"""What a run carries into the next one fits Temporal's payload limit: a backlog too big to
carry plain is carried compressed, and comes back the same. (Event ids are random: about 70
bytes an event remain after compression, so up to ~18,000 fit; a larger backlog is worked off
in the run before it continues.)"""

from __future__ import annotations

import uuid

from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.domain.evaluation import Firing
from temporal_automations.workflows.automation import (
    MAX_CARRY_BYTES,
    AutomationRun,
    QueuedFiring,
    _packed,
    _unpacked,
)
from tests.support import make_automation, make_event


def encoded_bytes(run: AutomationRun) -> int:
    return sum(len(p.data) for p in pydantic_data_converter.payload_converter.to_payloads([run]))


def test_a_15000_event_backlog_is_carried_compressed_under_the_budget_and_unchanged() -> None:
    events = [
        make_event("prefect.flow-run.Failed", f"prefect.flow-run.{uuid.uuid4()}")
        for _ in range(15_000)
    ]
    queue = [
        QueuedFiring(
            id=uuid.uuid4(),
            firing=Firing(
                state="triggered", key="k", labels={}, event=e, occurred=e.occurred, count=1
            ),
        )
        for e in events[:3_000]
    ]
    automation = make_automation({"posture": "Reactive", "expect": ["prefect.flow-run.*"]})
    run = AutomationRun(automation=automation, inbox=events[3_000:], queue=queue)
    plain = encoded_bytes(run)
    assert plain > 3 * MAX_CARRY_BYTES  # far too big to continue as new with
    packed = _packed(run)
    size = encoded_bytes(packed)
    print(f"\ncarry of 12,000 events and 3,000 queued firings: {plain:,} bytes, {size:,} packed")
    assert size < MAX_CARRY_BYTES
    assert packed.inbox == [] and packed.queue == []
    assert _packed(run) == packed  # deterministic, as a workflow must be
    back = _unpacked(AutomationRun.model_validate_json(packed.model_dump_json()))
    assert back.packed_work is None
    assert back.model_dump_json() == run.model_dump_json()
