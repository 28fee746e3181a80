"""AutomationWorkflow with the real worker and activities, on real Temporal servers.

Most cases run on the time-skipping test server (a 30-minute deadline passes in moments; our
search attributes are registered on it, so workflows start exactly as the API starts them).
A dev server started with a small `limit.historyCount.suggestContinueAsNew` makes the server
itself suggest continue-as-new early, and offers visibility. Webhooks and the lifecycle-event
sink are a real local HTTP server (tests.support.Receiver), not mocks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from temporal_automations.domain.automations import SECRET_MASK, Automation
from temporal_automations.domain.events import Event
from temporal_automations.temporal import AUTOMATION_ENABLED, AUTOMATION_NAME
from temporal_automations.workflows.automation import (
    EVERY_PATCH_TO_BATCHED_WEBHOOKS,
    AutomationWorkflow,
)
from tests.support import STUCK_TRIGGER, Receiver, make_automation, make_event, webhook_action
from tests.workflow_support import (
    actions_done,
    automation_workflow,
    deliver,
    lifecycle_names,
    received,
    running_worker,
    status_when,
)

REACTIVE_X: dict[str, Any] = {"posture": "Reactive", "expect": ["x"]}


# --------------------------------------------------------------------------- proactive


async def test_stuck_run_fires_at_the_30_minute_deadline_only_for_the_run_still_running(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(
        STUCK_TRIGGER, [webhook_action(receiver, "/stuck", "{{ event.resource.id }}")]
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        now = await env.get_current_time()
        stuck = make_event("prefect.flow-run.Running", "prefect.flow-run.stuck", occurred=now)
        await deliver(
            handle,
            stuck,
            make_event("prefect.flow-run.Running", "prefect.flow-run.done", occurred=now),
        )
        await deliver(
            handle,
            make_event(
                "prefect.flow-run.Completed",
                "prefect.flow-run.done",
                occurred=now + timedelta(minutes=5),
            ),
        )
        status = await status_when(handle, received(3))
        assert status.next_deadline == now + timedelta(minutes=30)

        await env.sleep(timedelta(minutes=29, seconds=50))
        assert await receiver.arrived(1, "/stuck", timeout=0.5) == []  # not before the deadline
        assert (await handle.query(AutomationWorkflow.status)).stats.firings == 0

        await env.sleep(timedelta(seconds=20))
        assert len(await receiver.arrived(1, "/stuck", timeout=10)) == 1
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        (firing,) = status.stats.recent
        assert firing.labels == {"prefect.resource.id": "prefect.flow-run.stuck"}
        assert firing.event_id == stuck.id
        assert [a.status for a in firing.actions] == ["executed"]

        # Once: the run's window is spent until it starts Running again.
        await env.sleep(timedelta(hours=1))
        calls = receiver.requests_snapshot("/stuck")
        assert [c.body.decode() for c in calls] == ["prefect.flow-run.stuck"]
        assert calls[0].headers["Idempotency-Key"] == f"{automation.id}:{firing.id}:0"
        assert (await handle.query(AutomationWorkflow.status)).stats.firings == 1
        names = await lifecycle_names(receiver, 3)
        assert names.count("prefect.automation.triggered") == 1


async def test_a_resumed_or_replaced_silence_trigger_arms_its_deadline(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    """A Proactive trigger with no `after` watches for silence from the moment it is enabled:
    after set_enabled(True) or replace(), its first deadline needs a timer, with no event."""
    env, client = time_skipping_env, time_skipping_env.client
    silence = {"posture": "Proactive", "expect": ["heartbeat"], "within": 60}
    paused = make_automation(silence, [webhook_action(receiver, "/resumed")], enabled=False)
    reactive = make_automation(REACTIVE_X, [webhook_action(receiver, "/replaced")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, paused) as resumed,
        automation_workflow(client, task_queue, reactive) as replaced,
    ):
        await env.sleep(timedelta(minutes=5))
        assert receiver.requests_snapshot() == []  # paused: nothing watches

        await resumed.execute_update(AutomationWorkflow.set_enabled, True)
        await replaced.execute_update(
            AutomationWorkflow.replace,
            reactive.model_copy(update={"trigger": paused.trigger}),
        )
        await env.sleep(timedelta(seconds=61))
        assert len(await receiver.arrived(1, "/resumed", timeout=10)) == 1
        assert len(await receiver.arrived(1, "/replaced", timeout=10)) == 1


# --------------------------------------------------------------------------- reactive and actions


async def test_reactive_webhook_renders_templates_and_lifecycle_events_reach_the_sink(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    automation = make_automation(
        {"posture": "Reactive", "expect": ["prefect.flow-run.Failed"]},
        [webhook_action(receiver, "/hook", "{{ automation.name }} {{ event.resource.id }}")],
        name="failures",
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("prefect.flow-run.Failed", "prefect.flow-run.f1"))
        await deliver(handle, make_event("prefect.flow-run.Completed", "prefect.flow-run.f2"))
        (call,) = await receiver.arrived(1, "/hook")
        assert call.method == "POST"
        assert call.body == b"failures prefect.flow-run.f1"

        names = await lifecycle_names(receiver, 3)
        assert names == [
            "prefect.automation.triggered",
            "prefect.automation.action.triggered",
            "prefect.automation.action.executed",
        ]
        sink = [r for r in receiver.requests_snapshot() if r.path == "/api/events"]
        assert sink and all(r.method == "POST" for r in sink)
        triggered, started, executed = receiver.lifecycle_events()
        assert executed["resource"]["prefect.resource.id"] == f"prefect.automation.{automation.id}"
        assert executed["related"][0]["prefect.resource.role"] == "triggering-event"
        assert executed["follows"] == started["id"]
        assert triggered["payload"]["triggering_event"]["resource"]["prefect.resource.id"] == (
            "prefect.flow-run.f1"
        )
        assert executed["payload"]["invocation"] == call.headers["Idempotency-Key"]
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        assert status.stats.events_received == 2


@pytest.mark.parametrize(
    ("failures", "calls"),
    [
        (2, 3),  # both local attempts fail; the first regular attempt succeeds
        (3, 4),  # ... and the first regular attempt too: a durable backoff, then success
    ],
)
async def test_a_5xx_answer_is_retried_with_the_same_idempotency_key(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver, failures: int, calls: int
) -> None:
    client = time_skipping_env.client
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/flaky")])
    receiver.fail_next(500, times=failures, path="/flaky")
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        assert len(await receiver.arrived(min(calls, 3), "/flaky", timeout=10)) == min(calls, 3)
        if calls > 3:
            await time_skipping_env.sleep(timedelta(seconds=5))  # past the retry backoff
        found = await receiver.arrived(calls, "/flaky", timeout=10)
        assert len(found) == calls
        keys = {c.headers["Idempotency-Key"] for c in found}
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        (firing,) = status.stats.recent
        assert keys == {f"{automation.id}:{firing.id}:0"}
        assert [a.status for a in firing.actions] == ["executed"]
        # Nothing after the success: the action is done (its activity completed, so Temporal
        # retries it no more), and the receiver records each call before it answers.
        assert len(receiver.requests_snapshot("/flaky")) == calls


async def test_a_4xx_answer_fails_the_action_at_once_with_a_reason(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    automation = make_automation(
        REACTIVE_X, [webhook_action(receiver, "/refuses"), {"type": "do-nothing"}]
    )
    receiver.fail_next(400, path="/refuses")
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        status = await status_when(
            handle, lambda s: s.stats.firings == 1 and len(s.stats.recent[0].actions) == 2
        )
        status = await status_when(handle, actions_done)
        first, second = status.stats.recent[0].actions
        assert first.status == "failed" and "answered 400" in (first.detail or "")
        assert second.status == "executed"  # one failure fails that action only
        names = await lifecycle_names(receiver, 5)
        assert names == [
            "prefect.automation.triggered",
            "prefect.automation.action.triggered",
            "prefect.automation.action.failed",
            "prefect.automation.action.triggered",
            "prefect.automation.action.executed",
        ]
        failed = receiver.lifecycle_events()[2]
        assert "answered 400" in failed["payload"]["reason"]
        await time_skipping_env.sleep(timedelta(minutes=2))  # past any retry backoff
        assert len(receiver.requests_snapshot("/refuses")) == 1  # never retried


async def test_private_webhook_targets_are_refused_unless_allowed(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/private")])
    async with (
        running_worker(client, receiver, allow_private_webhooks=False) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        (action,) = status.stats.recent[0].actions
        assert action.status == "failed" and "private or loopback" in (action.detail or "")
        assert receiver.requests_snapshot("/private") == []


# --------------------------------------------------------------------------- state handling


async def test_disabled_evaluates_nothing_and_replace_resets_state(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    automation = make_automation(
        {"posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 3600},
        [webhook_action(receiver, "/count")],
    )

    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        now = await env.get_current_time()

        def x() -> Event:
            return make_event("x", occurred=now)

        await deliver(handle, x())
        assert (await status_when(handle, received(1))).open_windows == 1
        paused = await handle.execute_update(AutomationWorkflow.set_enabled, False)
        assert paused.enabled is False
        status = await handle.query(AutomationWorkflow.status)
        assert status.open_windows == 0 and status.next_deadline is None
        await deliver(handle, x(), x(), x())
        status = await status_when(handle, received(4))
        assert status.stats.firings == 0 and status.open_windows == 0

        # Resuming starts afresh: the count before the pause is gone.
        await handle.execute_update(AutomationWorkflow.set_enabled, True)
        await deliver(handle, x())
        assert (await status_when(handle, received(5))).stats.firings == 0
        await deliver(handle, x())
        assert (await status_when(handle, received(6))).stats.firings == 1

        # replace() starts the trigger again from nothing, with the new definition.
        await deliver(handle, make_event("y", occurred=now))
        await status_when(handle, received(7))
        changed = automation.model_copy(
            update={
                "name": "renamed",
                "trigger": automation.trigger.model_copy(update={"expect": ["y"]}),
            }
        )
        replaced = await handle.execute_update(AutomationWorkflow.replace, changed)
        assert replaced.name == "renamed"
        status = await handle.query(AutomationWorkflow.status)
        assert status.automation.name == "renamed" and status.open_windows == 0
        await deliver(handle, make_event("y", occurred=now))  # one, not two: state was reset
        assert (await status_when(handle, received(8))).stats.firings == 1
        await deliver(handle, make_event("y", occurred=now))
        assert (await status_when(handle, received(9))).stats.firings == 2

        description = await handle.describe()
        assert description.typed_search_attributes.get(AUTOMATION_NAME) == "renamed"
        assert description.typed_search_attributes.get(AUTOMATION_ENABLED) is True
        assert len(await receiver.arrived(2, "/count")) == 2


async def test_the_same_event_id_fires_once(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/once")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        event = make_event("x")
        await deliver(handle, event)
        await deliver(handle, event, event)
        status = await status_when(handle, received(3))
        assert status.stats.firings == 1
        await status_when(handle, actions_done)
        assert len(receiver.requests_snapshot("/once")) == 1


async def test_a_new_run_records_one_patch_for_every_patch_so_far_and_runs_with_all_of_them(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    # Each patch of a new run is a marker and a TemporalChangeVersion upsert (the SDK core's):
    # one for the 11 of the first task instead of 22 commands. The patches still hold: the run
    # evaluates in event time (semantics-v2-event-time), and the webhook fires.
    client = time_skipping_env.client
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/patched")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        await receiver.arrived(1, "/patched")
        status = await status_when(handle, actions_done)
        history = await handle.fetch_history()
    patch_markers = [
        event.marker_recorded_event_attributes
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert len(patch_markers) == 1
    (details,) = patch_markers[0].details.values()
    assert EVERY_PATCH_TO_BATCHED_WEBHOOKS in details.payloads[0].data.decode()
    version_upserts = [
        event
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
        and "TemporalChangeVersion"
        in event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    ]
    assert len(version_upserts) == 1
    assert status.semantics == 2


# --------------------------------------------------------------------------- on a dev server
#
# Continue-as-new runs on real dev servers: the time-skipping test server (1.40) mishandles a
# signal that races a continue-as-new (it completes the run yet answers the workflow task's
# completion with "workflow execution already completed"; the next run then never answers a
# query: "query deadline exceeded"). It also lacks visibility.


async def test_a_replace_that_sends_back_a_masked_header_keeps_the_secret(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    """A client edits what it was shown (header values masked) and saves it: the workflow
    keeps the real value the mask stands for; a header given anew replaces it."""
    client = time_skipping_env.client
    action = {**webhook_action(receiver, "/secret"), "headers": {"Authorization": "Bearer s3"}}
    automation = make_automation(REACTIVE_X, [action])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        shown = automation.without_secrets()
        assert shown["actions"][0]["headers"] == {"Authorization": SECRET_MASK}
        edited = Automation.model_validate({**shown, "name": "renamed"})
        await handle.execute_update(AutomationWorkflow.replace, edited)
        await deliver(handle, make_event("x"))
        calls = await receiver.arrived(1, "/secret")
        assert calls[0].headers["Authorization"] == "Bearer s3"

        fresh = {**shown, "actions": [{**shown["actions"][0], "headers": {"Authorization": "B"}}]}
        await handle.execute_update(AutomationWorkflow.replace, Automation.model_validate(fresh))
        await deliver(handle, make_event("x"))
        calls = await receiver.arrived(2, "/secret")
        assert calls[1].headers["Authorization"] == "B"
