"""AutomationWorkflow with the real worker and activities, on real Temporal servers.

The time-skipping test server runs the 30-minute cases in moments; a dev server started with a
small `limit.historyCount.suggestContinueAsNew` forces continue-as-new early. Webhooks and the
lifecycle-event sink are a real local HTTP server (tests.support.Receiver).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from automations.devserver import DevServer
from automations.settings import Settings
from automations.temporal import AUTOMATION_NAME, workflow_id
from domain.automations import Automation
from domain.events import Event
from tests.support import STUCK_TRIGGER, Receiver, make_automation, make_event, webhook_action
from worker import build_worker
from workflows.automation import (
    MAX_SIGNALS_PER_RUN,
    AutomationRun,
    AutomationStats,
    AutomationWorkflow,
    memo_for,
    search_attributes_for,
)


@asynccontextmanager
async def running_worker(client: Client, receiver: Receiver) -> AsyncIterator[str]:
    task_queue = f"test-{uuid.uuid4()}"
    settings = Settings(
        task_queue=task_queue, api_url=f"{receiver.url}/api", allow_private_webhooks=True
    )
    async with aiohttp.ClientSession() as http, build_worker(client, settings, http):
        yield task_queue


async def start(
    client: Client, task_queue: str, automation: Automation, search_attributes: bool = False
) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        AutomationWorkflow.run,
        AutomationRun(automation=automation),
        id=workflow_id(automation.id),
        task_queue=task_queue,
        memo=memo_for(automation, AutomationStats()),
        search_attributes=search_attributes_for(automation) if search_attributes else None,
    )


async def deliver(handle: WorkflowHandle[Any, Any], *events: Event) -> None:
    await handle.signal(AutomationWorkflow.deliver, list(events))


async def settled(handle: WorkflowHandle[Any, Any]) -> Any:
    """The status once the workflow has processed everything sent so far."""
    await asyncio.sleep(0.3)
    return await handle.query(AutomationWorkflow.status)


# --------------------------------------------------------------------------- proactive


async def test_stuck_run_fires_at_the_30_minute_deadline_and_only_for_the_stuck_run(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    env, client = time_skipping_env, time_skipping_env.client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            STUCK_TRIGGER, [webhook_action(receiver, "/stuck", "{{ event.resource.id }}")]
        )
        handle = await start(client, task_queue, automation)
        now = await env.get_current_time()
        stuck = make_event("prefect.flow-run.Running", "prefect.flow-run.stuck", occurred=now)
        done = make_event("prefect.flow-run.Running", "prefect.flow-run.done", occurred=now)
        completed = make_event(
            "prefect.flow-run.Completed",
            "prefect.flow-run.done",
            occurred=now + timedelta(minutes=5),
        )
        await deliver(handle, stuck, done)
        await deliver(handle, completed)

        await env.sleep(timedelta(minutes=29, seconds=50))
        assert await receiver.arrived(1, "/stuck", timeout=1) == []
        status = await handle.query(AutomationWorkflow.status)
        assert status.stats.firings == 0

        await env.sleep(timedelta(seconds=20))
        calls = await receiver.arrived(1, "/stuck", timeout=10)
        await asyncio.sleep(0.5)
        calls = receiver.requests_snapshot("/stuck")
        assert [c.body.decode() for c in calls] == ["prefect.flow-run.stuck"]
        assert calls[0].headers["Idempotency-Key"].startswith(f"{automation.id}:")

        status = await handle.query(AutomationWorkflow.status)
        (firing,) = status.stats.recent
        assert firing.labels == {"prefect.resource.id": "prefect.flow-run.stuck"}
        assert firing.event_id == stuck.id
        assert [a.status for a in firing.actions] == ["executed"]
        await handle.terminate()


# --------------------------------------------------------------------------- reactive and actions


async def test_reactive_webhook_templates_and_lifecycle_events(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["prefect.flow-run.Failed"]},
            [webhook_action(receiver, "/hook", "{{ automation.name }} {{ event.resource.id }}")],
            name="failures",
        )
        handle = await start(client, task_queue, automation)
        await deliver(handle, make_event("prefect.flow-run.Failed", "prefect.flow-run.f1"))
        await deliver(handle, make_event("prefect.flow-run.Completed", "prefect.flow-run.f2"))
        (call,) = await receiver.arrived(1, "/hook")
        assert call.body == b"failures prefect.flow-run.f1"

        deadline = asyncio.get_running_loop().time() + 10
        names: list[str] = []
        while asyncio.get_running_loop().time() < deadline and len(names) < 3:
            names = [e["event"] for e in receiver.lifecycle_events()]
            await asyncio.sleep(0.05)
        assert names == [
            "prefect.automation.triggered",
            "prefect.automation.action.triggered",
            "prefect.automation.action.executed",
        ]
        executed = receiver.lifecycle_events()[2]
        assert executed["resource"]["prefect.resource.id"] == f"prefect.automation.{automation.id}"
        assert executed["related"][0]["prefect.resource.role"] == "triggering-event"
        await handle.terminate()


async def test_transient_failures_are_retried_with_the_same_idempotency_key(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"]}, [webhook_action(receiver, "/flaky")]
        )
        handle = await start(client, task_queue, automation)
        receiver.fail_next(
            500, times=3, path="/flaky"
        )  # both local attempts, then the first regular one
        await deliver(handle, make_event("x"))
        assert len(await receiver.arrived(3, "/flaky", timeout=10)) == 3
        await time_skipping_env.sleep(timedelta(seconds=5))  # the durable retry backoff
        calls = await receiver.arrived(4, "/flaky", timeout=10)
        assert len(calls) == 4
        assert len({c.headers["Idempotency-Key"] for c in calls}) == 1
        status = await settled(handle)
        assert [a.status for a in status.stats.recent[0].actions] == ["executed"]
        await handle.terminate()


async def test_a_4xx_answer_fails_the_action_at_once_with_a_reason(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"]},
            [webhook_action(receiver, "/refuses"), {"type": "do-nothing"}],
        )
        handle = await start(client, task_queue, automation)
        receiver.fail_next(400, path="/refuses")
        await deliver(handle, make_event("x"))
        assert len(await receiver.arrived(1, "/refuses")) == 1
        status = await settled(handle)
        first, second = status.stats.recent[0].actions
        assert first.status == "failed" and "answered 400" in (first.detail or "")
        assert second.status == "executed"  # one failure fails that action only
        assert len(receiver.requests_snapshot("/refuses")) == 1  # not retried
        failed = [e for e in receiver.lifecycle_events() if e["event"].endswith("action.failed")]
        assert "answered 400" in failed[0]["payload"]["reason"]
        await handle.terminate()


async def test_private_webhook_targets_are_refused_unless_allowed(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver
) -> None:
    client = time_skipping_env.client
    task_queue = f"test-{uuid.uuid4()}"
    settings = Settings(task_queue=task_queue, api_url=f"{receiver.url}/api")
    async with aiohttp.ClientSession() as http, build_worker(client, settings, http):
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"]}, [webhook_action(receiver, "/private")]
        )
        handle = await start(client, task_queue, automation)
        await deliver(handle, make_event("x"))
        status = await settled(handle)
        (action,) = status.stats.recent[0].actions
        assert action.status == "failed" and "private or loopback" in (action.detail or "")
        assert receiver.requests_snapshot("/private") == []
        await handle.terminate()


# --------------------------------------------------------------------------- state handling


async def test_disabled_evaluates_nothing_and_replace_resets_state(
    dev_client: Client, receiver: Receiver
) -> None:
    client = dev_client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"], "threshold": 2, "within": 3600},
            [webhook_action(receiver, "/count")],
        )
        handle = await start(client, task_queue, automation)
        await deliver(handle, make_event("x"))
        await handle.execute_update(AutomationWorkflow.set_enabled, False)
        await deliver(handle, make_event("x"), make_event("x"))
        assert (await settled(handle)).stats.firings == 0

        # Resuming starts afresh: the count before the pause is gone.
        await handle.execute_update(AutomationWorkflow.set_enabled, True)
        await deliver(handle, make_event("x"))
        assert (await settled(handle)).stats.firings == 0
        await deliver(handle, make_event("x"))
        assert (await settled(handle)).stats.firings == 1

        changed = automation.model_copy(
            update={"trigger": automation.trigger.model_copy(update={"threshold": 1})}
        )
        replaced = await handle.execute_update(AutomationWorkflow.replace, changed)
        assert replaced.trigger.threshold == 1
        await deliver(handle, make_event("x"))
        assert (await settled(handle)).stats.firings == 2
        await handle.terminate()


async def test_the_same_event_id_fires_once(dev_client: Client, receiver: Receiver) -> None:
    client = dev_client
    async with running_worker(client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"]}, [webhook_action(receiver, "/once")]
        )
        handle = await start(client, task_queue, automation)
        event = make_event("x")
        await deliver(handle, event)
        await deliver(handle, event, event)
        status = await settled(handle)
        assert status.stats.firings == 1
        assert len(await receiver.arrived(1, "/once")) == 1
        await handle.terminate()


async def test_state_survives_continue_as_new_after_many_signals(
    dev_client: Client, receiver: Receiver
) -> None:
    """More signals than a run takes: the count carries over to the next run."""
    client = dev_client
    total = MAX_SIGNALS_PER_RUN + 50
    async with running_worker(client, receiver) as task_queue:
        counting = make_automation(
            {"posture": "Reactive", "expect": ["x"], "threshold": total, "within": 36000},
            [webhook_action(receiver, "/counted")],
        )
        handle = await start(client, task_queue, counting)
        first_run = (await handle.describe()).run_id
        for _ in range(total - 1):
            await deliver(handle, make_event("x"))
        assert (await settled(handle)).stats.firings == 0
        await deliver(handle, make_event("x"))
        assert len(await receiver.arrived(1, "/counted", timeout=15)) == 1
        status = await settled(handle)
        assert status.stats.firings == 1 and status.stats.events_received == total
        assert (await client.get_workflow_handle(handle.id).describe()).run_id != first_run
        await client.get_workflow_handle(handle.id).terminate()


async def test_an_open_window_survives_continue_as_new_on_a_dev_server(receiver: Receiver) -> None:
    """The dev server suggests continue-as-new after a few history events; the stuck-run
    window opened before it must still fire after it."""
    with DevServer(dynamic_config={"limit.historyCount.suggestContinueAsNew": "30"}) as server:
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        async with running_worker(client, receiver) as task_queue:
            trigger = {**STUCK_TRIGGER, "within": 12}
            automation = make_automation(
                trigger, [webhook_action(receiver, "/late", "{{ event.resource.id }}")]
            )
            handle = await start(client, task_queue, automation, search_attributes=True)
            first_run = (await handle.describe()).run_id
            await deliver(handle, make_event("prefect.flow-run.Running", "prefect.flow-run.slow"))
            for index in range(40):  # unrelated traffic grows the history past the limit
                await deliver(
                    handle, make_event("prefect.flow-run.Running", f"prefect.flow-run.q{index}")
                )
                await deliver(
                    handle, make_event("prefect.flow-run.Completed", f"prefect.flow-run.q{index}")
                )
            await asyncio.sleep(1)
            assert (await client.get_workflow_handle(handle.id).describe()).run_id != first_run
            calls = await receiver.arrived(1, "/late", timeout=30)
            assert [c.body.decode() for c in calls] == ["prefect.flow-run.slow"]
            await client.get_workflow_handle(handle.id).terminate()


@pytest.mark.parametrize("enabled", [True, False])
async def test_memo_and_search_attributes_describe_the_automation(
    dev_client: Client, receiver: Receiver, enabled: bool
) -> None:
    name = f"memo check {enabled}"
    secret_action = {
        "type": "call-webhook",
        "url": f"{receiver.url}/secret",
        "headers": {"Authorization": "Bearer very-secret"},
    }
    async with running_worker(dev_client, receiver) as task_queue:
        automation = make_automation(
            {"posture": "Reactive", "expect": ["x"]}, [secret_action], name=name
        )
        handle = await start(dev_client, task_queue, automation, search_attributes=True)
        await handle.execute_update(AutomationWorkflow.set_enabled, enabled)
        description = await handle.describe()
        memo = await description.memo()
        assert memo["automation"]["name"] == name
        assert "very-secret" not in str(memo)
        assert description.typed_search_attributes.get(AUTOMATION_NAME) == name

        query = f"AutomationName = '{name}' AND AutomationEnabled = {str(enabled).lower()}"
        found: list[str] = []
        deadline = asyncio.get_running_loop().time() + 5
        while not found and asyncio.get_running_loop().time() < deadline:
            found = [w.id async for w in dev_client.list_workflows(query)]
            await asyncio.sleep(0.1)
        assert found == [handle.id]
        await handle.terminate()
