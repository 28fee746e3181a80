"""Firings whose only action is one webhook, queued together, run as ONE local activity
(`call_webhooks`, patch batch-webhook-firings): each webhook still goes out once with its
firing's Idempotency-Key, and each firing's outcome is its own (a transient failure retried
alone as a regular activity, a permanent one failed alone)."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_automations.activities.actions import ActionActivities
from temporal_automations.activities.prefect import PrefectClient
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import CALL_WEBHOOKS
from temporal_automations.settings import Settings
from temporal_automations.workflows.automation import (
    MAX_WEBHOOK_BATCH_BYTES,
    WEBHOOK_BATCH,
    AutomationWorkflow,
)
from tests.support import Receiver, make_automation, make_event, webhook_action
from tests.workflow_support import automation_workflow, deliver, lifecycle_names, running_worker

EACH_RUN: dict[str, Any] = {
    "posture": "Reactive",
    "expect": ["x"],
    "for_each": ["prefect.resource.id"],
}


async def _history_counts(handle: WorkflowHandle[Any, Any]) -> tuple[int, list[str]]:
    """Local-activity markers, and the regular activities scheduled (their types)."""
    history = await handle.fetch_history()
    markers = 0
    scheduled: list[str] = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            if event.marker_recorded_event_attributes.marker_name == "core_local_activity":
                markers += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    return markers, scheduled


@asynccontextmanager
async def worker_without_call_webhooks(client: Client, receiver: Receiver) -> AsyncIterator[str]:
    """The production workflow and action activities, but `call_webhooks`: every batch's
    local activity fails (activity not registered), as a lost worker's or a timed-out one."""
    task_queue = f"test-{uuid.uuid4()}"
    settings = Settings(
        task_queue=task_queue, api_url=f"{receiver.url}/api", allow_private_webhooks=True
    )
    async with aiohttp.ClientSession() as http, TemplateRenderer() as renderer:
        actions = ActionActivities(settings, http, PrefectClient(settings, http), renderer)
        activities = [a for a in actions.all() if activity_name(a) != CALL_WEBHOOKS]
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=[AutomationWorkflow],
            activities=activities,
        ):
            yield task_queue


def activity_name(function: Any) -> str | None:
    definition = activity._Definition.from_callable(function)
    return definition.name if definition else None


def _outcomes(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """Each firing's final lifecycle event (executed or failed), by its invocation key."""
    return {
        event["payload"]["invocation"]: event
        for event in receiver.lifecycle_events()
        if event["event"]
        in ("prefect.automation.action.executed", "prefect.automation.action.failed")
    }


async def test_firings_queued_together_run_as_few_local_activities_each_webhook_once(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    firings = 40
    automation = make_automation(EACH_RUN, [webhook_action(receiver, "/each", "{{ event.id }}")])
    events = [make_event("x", f"prefect.flow-run.{n}") for n in range(firings)]
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, *events)  # one signal: all 40 firings queue in one task
        calls = await receiver.arrived(firings, "/each", timeout=30)
        # triggered once each, then action.triggered and action.executed each
        names = await lifecycle_names(receiver, 3 * firings, timeout=30)
        markers, scheduled = await _history_counts(handle)

    assert len(calls) == firings
    assert sorted(c.body.decode() for c in calls) == sorted(str(e.id) for e in events)
    keys = Counter(c.headers["Idempotency-Key"] for c in calls)
    assert len(keys) == firings and set(keys.values()) == {1}
    assert all(key.startswith(f"{automation.id}:") and key.endswith(":0") for key in keys)
    # Batched: a handful of local activities, not one per firing; no regular activity but
    # the lifecycle events' emits.
    assert 1 <= markers <= math.ceil(firings / WEBHOOK_BATCH)
    assert set(scheduled) <= {"emit_events"}
    assert Counter(names) == {
        "prefect.automation.triggered": firings,
        "prefect.automation.action.triggered": firings,
        "prefect.automation.action.executed": firings,
    }
    outcomes = _outcomes(receiver)
    assert set(outcomes) == set(keys)
    started = {
        e["id"]
        for e in receiver.lifecycle_events()
        if e["event"] == "prefect.automation.action.triggered"
    }
    assert {e["follows"] for e in outcomes.values()} == started


async def test_a_transient_failure_in_a_batch_is_retried_alone_and_a_permanent_one_fails_alone(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    firings = 8
    automation = make_automation(EACH_RUN, [webhook_action(receiver, "/mixed")])
    # Whichever call of the batch comes first answers 500 (then 200 when retried), the
    # second 400 (refused: permanent); the others 200.
    receiver.fail_next(500, times=1, path="/mixed")
    receiver.fail_next(400, times=1, path="/mixed")
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, *(make_event("x", f"prefect.flow-run.{n}") for n in range(firings)))
        calls = await receiver.arrived(firings + 1, "/mixed", timeout=30)
        await lifecycle_names(receiver, 3 * firings, timeout=30)
        markers, scheduled = await _history_counts(handle)

    assert len(calls) == firings + 1  # one call more: the retry of the 500
    by_key: dict[str, list[int]] = {}
    for call in calls:
        by_key.setdefault(call.headers["Idempotency-Key"], []).append(call.status)
    assert len(by_key) == firings
    assert sorted(by_key.values()) == sorted([[500, 200], [400]] + [[200]] * (firings - 2))
    retried = next(key for key, statuses in by_key.items() if statuses == [500, 200])
    refused = next(key for key, statuses in by_key.items() if statuses == [400])

    assert markers == 1  # the batch
    assert scheduled.count("call_webhook") == 1  # the transient one alone, as a regular activity
    outcomes = _outcomes(receiver)
    assert set(outcomes) == set(by_key)
    assert outcomes[retried]["event"] == "prefect.automation.action.executed"
    assert outcomes[refused]["event"] == "prefect.automation.action.failed"
    assert "400" in outcomes[refused]["payload"]["reason"]
    others = [e for key, e in outcomes.items() if key not in (retried, refused)]
    assert all(e["event"] == "prefect.automation.action.executed" for e in others)


async def test_a_batch_whose_activity_fails_sends_each_firing_the_regular_way_once(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    """The batch's local activity itself fails (here: a worker without `call_webhooks`, as a
    lost worker or a timeout would): each of its firings goes on as the regular `call_webhook`
    activity, with its own Idempotency-Key, and is acted on once."""
    client = time_skipping_env.client
    firings = 6
    automation = make_automation(EACH_RUN, [webhook_action(receiver, "/fallback")])
    async with (
        worker_without_call_webhooks(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, *(make_event("x", f"prefect.flow-run.{n}") for n in range(firings)))
        calls = await receiver.arrived(firings, "/fallback", timeout=30)
        await lifecycle_names(receiver, 3 * firings, timeout=30)
        _, scheduled = await _history_counts(handle)

    keys = Counter(c.headers["Idempotency-Key"] for c in calls)
    assert len(calls) == firings and len(keys) == firings
    # Unbatched, each would have run (and succeeded) as a local `call_webhook`.
    assert scheduled.count("call_webhook") == firings
    outcomes = _outcomes(receiver)
    assert set(outcomes) == set(keys)
    assert all(e["event"] == "prefect.automation.action.executed" for e in outcomes.values())


async def test_big_firings_are_batched_only_as_far_as_the_batch_bytes_allow(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    """Sixteen firings of ~90 KB each (their events' payloads) weigh more than a batch may
    (MAX_WEBHOOK_BATCH_BYTES): the longest run that fits goes as one batch, the rest alone;
    each webhook still goes out once."""
    client = time_skipping_env.client
    firings = 16
    automation = make_automation(EACH_RUN, [webhook_action(receiver, "/big", "{{ event.id }}")])
    events = [
        make_event("x", f"prefect.flow-run.{n}").model_copy(
            update={"payload": {"blob": "x" * 90_000}}
        )
        for n in range(firings)
    ]
    assert firings * 90_000 > MAX_WEBHOOK_BATCH_BYTES
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, *events)
        calls = await receiver.arrived(firings, "/big", timeout=30)
        await lifecycle_names(receiver, 3 * firings, timeout=30)
        markers, scheduled = await _history_counts(handle)

    assert sorted(c.body.decode() for c in calls) == sorted(str(e.id) for e in events)
    assert len({c.headers["Idempotency-Key"] for c in calls}) == firings
    assert 1 < markers < firings  # one batch of those that fit, then the others alone
    assert "call_webhook" not in scheduled
