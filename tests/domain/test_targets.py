"""Inferred targets: the first resource of the action's kind, else a NoTarget with a reason."""

from __future__ import annotations

import pytest

from temporal_automations.domain.automations import (
    CancelFlowRun,
    PauseDeployment,
    PauseWorkQueue,
    ResumeWorkPool,
    RunDeployment,
)
from temporal_automations.domain.evaluation import Firing, bucket_key
from temporal_automations.domain.events import RESOURCE_ID, Event
from temporal_automations.domain.targets import NoTarget, infer_target_id, target_id
from tests.domain.builders import at, event, related, uid

RUN = f"prefect.flow-run.{uid(1)}"


def firing(ev: Event | None, labels: dict[str, str] | None = None) -> Firing:
    labels = labels or {}
    return Firing(
        state="triggered", key=bucket_key(labels), labels=labels, event=ev, occurred=at(0)
    )


def flow_run_event(*related_resources: dict[str, str], resource: str = RUN) -> Event:
    return event("prefect.flow-run.Failed", 0, resource, related=list(related_resources))


def test_infers_from_the_events_resource() -> None:
    assert infer_target_id("flow-run", firing(flow_run_event())) == uid(1)


def test_infers_from_related_resources_in_order() -> None:
    ev = flow_run_event(
        related(f"prefect.flow.{uid(2)}", "flow"),
        related(f"prefect.deployment.{uid(3)}", "deployment"),
        related(f"prefect.work-queue.{uid(4)}", "work-queue"),
        related(f"prefect.work-pool.{uid(5)}", "work-pool"),
        related(f"prefect.deployment.{uid(6)}", "deployment"),
    )
    f = firing(ev)
    assert infer_target_id("flow", f) == uid(2)
    assert infer_target_id("deployment", f) == uid(3)  # the first of two
    assert infer_target_id("work-queue", f) == uid(4)
    assert infer_target_id("work-pool", f) == uid(5)


def test_the_resource_comes_before_related_resources_of_the_same_kind() -> None:
    ev = flow_run_event(
        related(f"prefect.deployment.{uid(3)}", "deployment"),
        resource=f"prefect.deployment.{uid(9)}",
    )
    assert infer_target_id("deployment", firing(ev)) == uid(9)


def test_kinds_do_not_match_by_prefix() -> None:
    # "prefect.flow." is not a prefix of "prefect.flow-run.<id>"; work-queue is not work-pool
    ev = flow_run_event(related(f"prefect.work-queue.{uid(4)}", "work-queue"))
    with pytest.raises(NoTarget):
        infer_target_id("flow", firing(ev))
    with pytest.raises(NoTarget):
        infer_target_id("work-pool", firing(ev))


def test_an_id_that_is_not_a_uuid_is_skipped() -> None:
    ev = flow_run_event(
        related("prefect.deployment.not-a-uuid", "deployment"),
        related(f"prefect.deployment.{uid(3)}", "deployment"),
    )
    assert infer_target_id("deployment", firing(ev)) == uid(3)


def test_a_proactive_firing_without_event_infers_from_its_key_labels() -> None:
    f = firing(None, {RESOURCE_ID: RUN})
    assert infer_target_id("flow-run", f) == uid(1)
    by_deployment = firing(
        None, {"related:deployment:prefect.resource.id": f"prefect.deployment.{uid(3)}"}
    )
    assert infer_target_id("deployment", by_deployment) == uid(3)


def test_nothing_to_infer_from_an_event_raises_no_target_with_a_reason() -> None:
    with pytest.raises(NoTarget) as raised:
        infer_target_id("work-queue", firing(flow_run_event()))
    message = str(raised.value)
    assert "work-queue" in message and "triggering event" in message
    assert "prefect.work-queue.<id>" in message
    assert isinstance(raised.value, ValueError)


def test_nothing_to_infer_without_an_event_names_the_firings_labels() -> None:
    with pytest.raises(NoTarget, match="firing's labels"):
        infer_target_id("deployment", firing(None, {RESOURCE_ID: RUN}))
    with pytest.raises(NoTarget, match="firing's labels"):
        infer_target_id("flow-run", firing(None))  # no for_each: no labels at all


def test_selected_actions_use_their_own_id_whatever_the_firing() -> None:
    action = PauseDeployment.model_validate({"source": "selected", "deployment_id": str(uid(7))})
    assert target_id(action, firing(None)) == uid(7)
    ev = flow_run_event(related(f"prefect.deployment.{uid(3)}", "deployment"))
    assert target_id(action, firing(ev)) == uid(7)


def test_inferred_actions_infer_their_kind() -> None:
    ev = flow_run_event(
        related(f"prefect.deployment.{uid(3)}", "deployment"),
        related(f"prefect.work-queue.{uid(4)}", "work-queue"),
        related(f"prefect.work-pool.{uid(5)}", "work-pool"),
    )
    f = firing(ev)
    assert target_id(RunDeployment.model_validate({"source": "inferred"}), f) == uid(3)
    assert target_id(PauseWorkQueue.model_validate({"source": "inferred"}), f) == uid(4)
    assert target_id(ResumeWorkPool.model_validate({"source": "inferred"}), f) == uid(5)
    with pytest.raises(NoTarget):
        target_id(RunDeployment.model_validate({"source": "inferred"}), firing(flow_run_event()))


def test_flow_run_actions_always_act_on_the_firings_flow_run() -> None:
    assert target_id(CancelFlowRun(), firing(flow_run_event())) == uid(1)
    with pytest.raises(NoTarget, match="flow-run"):
        target_id(CancelFlowRun(), firing(event("x", 0, f"prefect.deployment.{uid(3)}")))
