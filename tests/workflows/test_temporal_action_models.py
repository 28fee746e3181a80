"""The Temporal actions' models and targets, without a server (their activities against a real
cluster: tests/e2e/test_temporal_action_activities.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from temporal_automations.activities.requests import (
    ACTIVITY_FOR_ACTION,
    ActionRequest,
    AutomationSummary,
)
from temporal_automations.activities.temporal_actions import (
    Target,
    resolve_target,
)
from temporal_automations.domain.automations import TEMPORAL_ACTIONS, Automation
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.settings import Settings
from tests.support import make_event

TRIGGER = {"posture": "Reactive", "expect": ["temporal.workflow.failed"]}


def core(*actions: dict[str, Any]) -> AutomationCore:
    return AutomationCore.model_validate({"name": "t", "trigger": TRIGGER, "actions": actions})


def test_every_temporal_action_has_an_activity_and_reads_back_as_stored() -> None:
    assert {cls.model_fields["type"].default for cls in TEMPORAL_ACTIONS} <= set(
        ACTIVITY_FOR_ACTION
    )
    made = core(
        {"type": "temporal-cancel-workflow", "source": "inferred"},
        {"type": "temporal-terminate-workflow", "workflow_id": "w", "reason": "r"},
        {"type": "temporal-signal-workflow", "workflow_id": "w", "signal": "s", "args": [1]},
        {"type": "temporal-start-workflow", "workflow_type": "T", "task_queue": "q"},
        {
            "type": "temporal-reset-workflow",
            "source": "inferred",
            "reset_to": "first-workflow-task",
        },
        {"type": "temporal-pause-schedule", "schedule_id": "s"},
        {"type": "temporal-unpause-schedule", "source": "inferred"},
        {"type": "temporal-trigger-schedule", "schedule_id": "s", "namespace": "other"},
    )
    now = datetime.now(UTC)
    stored = made.to_automation(uuid.uuid4(), now, now)
    again = Automation.model_validate_json(stored.model_dump_json())
    assert again == stored
    assert [type(a).__name__ for a in again.actions] == [
        c.__name__ for c in TEMPORAL_ACTIONS[:2]
    ] + [
        "TemporalSignalWorkflow",
        "TemporalStartWorkflow",
        "TemporalResetWorkflow",
        "TemporalPauseSchedule",
        "TemporalUnpauseSchedule",
        "TemporalTriggerSchedule",
    ]


@pytest.mark.parametrize(
    ("action", "complaint"),
    [
        ({"type": "temporal-cancel-workflow"}, "workflow_id is required"),
        (
            {"type": "temporal-cancel-workflow", "source": "inferred", "workflow_id": "w"},
            "not allowed",
        ),
        (
            {"type": "temporal-cancel-workflow", "source": "inferred", "run_id": "r"},
            "run_id is not allowed",
        ),
        ({"type": "temporal-pause-schedule"}, "schedule_id is required"),
        ({"type": "temporal-cancel-workflow", "workflow_id": "w" * 1001}, "at most 1000"),
        ({"type": "temporal-signal-workflow", "workflow_id": "w", "signal": ""}, "at least 1"),
        (
            {
                "type": "temporal-signal-workflow",
                "workflow_id": "w",
                "signal": "s",
                "args": ["x" * 70_000],
            },
            "64000 bytes",
        ),
        ({"type": "temporal-start-workflow", "workflow_type": "T"}, "task_queue"),
        (
            {
                "type": "temporal-start-workflow",
                "workflow_type": "T",
                "task_queue": "q",
                "execution_timeout": 0,
            },
            "greater than 0",
        ),
        ({"type": "temporal-reset-workflow", "workflow_id": "w", "reset_to": "middle"}, "reset_to"),
        ({"type": "temporal-cancel-workflow", "workflow_id": "w", "surprise": 1}, "Extra inputs"),
    ],
)
def test_the_edge_refuses_bad_temporal_actions(action: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as refused:
        core(action)
    assert complaint in str(refused.value)


def request(
    action: dict[str, Any], event: Any = None, labels: dict[str, str] | None = None
) -> ActionRequest:
    stored = core(action).to_automation(uuid.uuid4(), datetime.now(UTC), datetime.now(UTC))
    firing = Firing(
        state="triggered", key="k", labels=labels or {}, event=event, occurred=datetime.now(UTC)
    )
    return ActionRequest(
        automation=AutomationSummary.of(stored),
        action=stored.actions[0],
        action_index=0,
        firing=firing,
        firing_id=uuid.uuid4(),
    )


def test_targets_are_inferred_from_the_resource_then_related_then_the_key() -> None:
    event = make_event(
        "temporal.workflow.failed",
        "temporal.workflow.order-7",
        related=[
            {
                "prefect.resource.id": "temporal.schedule.nightly",
                "prefect.resource.role": "schedule",
                "temporal.namespace": "shop",
            }
        ],
        **{"temporal.namespace": "shop", "temporal.run-id": "run-1"},
    )
    cancel = request({"type": "temporal-cancel-workflow", "source": "inferred"}, event)
    assert resolve_target(cancel.action, cancel, "default") == Target("order-7", "shop", "")  # type: ignore[arg-type]
    reset = request({"type": "temporal-reset-workflow", "source": "inferred"}, event)
    assert resolve_target(reset.action, reset, "default").run_id == "run-1"  # type: ignore[arg-type]
    pause = request({"type": "temporal-pause-schedule", "source": "inferred"}, event)
    target = resolve_target(pause.action, pause, "default")  # type: ignore[arg-type]
    assert (target.id, target.namespace) == ("nightly", "shop")
    keyed = request(
        {"type": "temporal-cancel-workflow", "source": "inferred"},
        None,
        {"prefect.resource.id": "temporal.workflow.stuck-1"},
    )
    assert resolve_target(keyed.action, keyed, "users").id == "stuck-1"  # type: ignore[arg-type]
    chosen = request(
        {"type": "temporal-cancel-workflow", "workflow_id": "w", "namespace": "x"}, event
    )
    assert resolve_target(chosen.action, chosen, "default").namespace == "x"  # type: ignore[arg-type]


def test_the_target_cluster_defaults_to_the_engines_and_can_differ() -> None:
    same = Settings(temporal_address="a:1", temporal_namespace="engine")
    assert same.target_connection() == same.engine_connection()
    other = Settings(
        temporal_address="a:1",
        target_temporal_address="b:2",
        target_temporal_namespace="users",
        target_temporal_api_key="k",
    )
    target = other.target_connection()
    assert (target.address, target.namespace, target.uses_tls) == ("b:2", "users", True)
    assert not other.engine_connection().uses_tls
