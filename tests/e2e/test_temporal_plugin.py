"""The worker plugin on a real worker and dev server: failures reported as they happen, user
code untouched when our API is away, the buffer bounded, replay deterministic and silent."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Replayer, Worker

from temporal_automations.devserver import DevServer, free_port
from temporal_automations.plugin import AutomationsInterceptor, AutomationsPlugin, EventBuffer
from temporal_automations.temporal_bridge import event_id
from tests.support import Receiver
from tests.temporal_user import ACTIVITIES, WORKFLOWS, Echo, RetriesAnActivity


@pytest.fixture(scope="module")
async def address() -> AsyncIterator[str]:
    with DevServer() as server:
        yield server.address


async def test_activity_attempts_and_the_workflow_failure_are_sent_as_they_happen(
    address: str, receiver: Receiver
) -> None:
    plugin = AutomationsPlugin(receiver.url)
    client = await Client.connect(address, plugins=[plugin])
    workflow_id = f"retries-{uuid.uuid4().hex[:6]}"
    queue = f"q-{workflow_id}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        handle = await client.start_workflow(
            RetriesAnActivity.run, 3, id=workflow_id, task_queue=queue
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()

        def events() -> list[dict]:
            return [
                e
                for e in receiver.lifecycle_events()
                if workflow_id in str(e["resource"]) + str(e["related"])
            ]

        for _ in range(200):
            if len(events()) >= 4:
                break
            await asyncio.sleep(0.05)
    plugin.buffer.close()
    found = events()
    activity_failures = [e for e in found if e["event"] == "temporal.activity.failed"]
    assert [e["resource"]["temporal.attempt"] for e in activity_failures] == ["1", "2", "3"]
    assert [e["payload"]["failure"] for e in activity_failures] == [
        {"type": "Flaky", "message": f"attempt {n} of 3 failed"} for n in (1, 2, 3)
    ]
    assert activity_failures[0]["resource"]["temporal.activity-type"] == "always_fails"
    (failed,) = [e for e in found if e["event"] == "temporal.workflow.failed"]
    # The bridge would report the same failure under the same id: one event from two sources.
    assert failed["id"] == event_id("default", workflow_id, handle.result_run_id, "failed")
    assert failed["payload"]["failure"]["type"] == "Flaky"
    assert failed["resource"]["temporal.workflow-type"] == "RetriesAnActivity"

    # Replaying the failed run with the plugin's interceptor: deterministic, and it sends nothing.
    before = len(receiver.lifecycle_events())
    history = await handle.fetch_history()
    replay = await Replayer(
        workflows=WORKFLOWS, interceptors=[AutomationsInterceptor(plugin.buffer)]
    ).replay_workflow(history, raise_on_replay_failure=False)
    assert replay.replay_failure is None
    assert plugin.buffer.offered == 4
    assert len(receiver.lifecycle_events()) == before


async def test_with_our_api_unreachable_user_code_runs_as_before_and_the_buffer_stays_bounded(
    address: str,
) -> None:
    plugin = AutomationsPlugin(f"http://127.0.0.1:{free_port()}/api", buffer_size=5)
    client = await Client.connect(address, plugins=[plugin])
    queue = f"q-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=ACTIVITIES):
        failures = [
            client.execute_workflow(RetriesAnActivity.run, 2, id=f"{queue}-{n}", task_queue=queue)
            for n in range(10)
        ]
        results = await asyncio.gather(*failures, return_exceptions=True)
        assert all(isinstance(result, WorkflowFailureError) for result in results)
        assert (
            await client.execute_workflow(Echo.run, "fine", id=f"{queue}-ok", task_queue=queue)
            == "fine"
        )
    assert plugin.buffer.offered == 30  # 2 activity attempts and 1 workflow failure, 10 times
    assert len(plugin.buffer.buffer) <= 5
    assert plugin.buffer.dropped >= 25 and plugin.buffer.sent == 0
    plugin.buffer.close(timeout=0.5)


async def test_an_event_that_cannot_be_sent_is_dropped_and_the_sender_goes_on(
    receiver: Receiver,
) -> None:
    buffer = EventBuffer(receiver.url, buffer_size=2)
    buffer.offer({"not": object()})  # not JSON: dropped by the sender, the caller never knows
    for _ in range(100):
        if not buffer.buffer:
            break
        await asyncio.sleep(0.02)
    buffer.offer({"id": "y"})
    for _ in range(100):
        if buffer.sent:
            break
        await asyncio.sleep(0.02)
    assert buffer.offered == 2 and buffer.sent == 1
    assert receiver.lifecycle_events() == [{"id": "y"}]
    buffer.close(timeout=0.5)
