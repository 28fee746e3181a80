"""AutomationWorkflow under backlogs and hostile input, on a real dev server: nothing wedges.

Each test shows the automation still works afterwards, and that no workflow task of its
histories failed or timed out (a failing workflow task is retried forever: the automation
would be wedged while the API kept answering).
"""

from __future__ import annotations

import uuid
from typing import Any

from temporalio.client import Client

from temporal_automations.domain.events import Event, EventIn
from temporal_automations.domain.lifecycle import MAX_CHAIN_DEPTH, TRIGGERED
from temporal_automations.workflows.automation import (
    EVENTS_PER_TASK,
    FIRINGS_IN_FLIGHT,
    FIRINGS_PER_TASK,
    RunLimits,
)
from temporal_automations.workflows.overflow import OVERFLOW_WORKFLOW_TYPE
from tests.support import Receiver, make_automation, make_event, webhook_action
from tests.workflow_support import (
    actions_done,
    automation_workflow,
    current_run_id,
    deliver,
    lifecycle_names,
    most_markers_per_task,
    run_histories,
    running_worker,
    status_when,
    workflow_task_report,
)

UNLIMITED = RunLimits(firings_per_minute=0)
EVERY_X = {"posture": "Reactive", "expect": ["x"]}


def events(count: int, name: str = "x") -> list[Event]:
    return [make_event(name, f"prefect.flow-run.{index}") for index in range(count)]


async def test_a_20000_event_backlog_drains_across_workflow_tasks(
    dev_client: Client, receiver: Receiver
) -> None:
    """Events queue up while no worker runs; the first workflow task then holds all of them.
    They are evaluated EVENTS_PER_TASK at a time, each chunk in its own workflow task."""
    client, total = dev_client, 20_000
    automation = make_automation(EVERY_X, [])
    task_queue = f"backlog-{uuid.uuid4()}"
    async with automation_workflow(client, task_queue, automation, UNLIMITED) as handle:
        first_run = await current_run_id(client, handle)
        backlog = events(total)
        for start in range(0, total, EVENTS_PER_TASK):
            await handle.signal("deliver", backlog[start : start + EVENTS_PER_TASK])
        async with running_worker(client, receiver, task_queue=task_queue):
            status = await status_when(handle, lambda s: s.stats.firings == total, timeout=180)
            assert status.stats.events_received == total and status.stats.errors == 0
            problems, longest = workflow_task_report(
                await run_histories(client, handle.id, first_run)
            )
            print(f"\nlongest workflow task under a {total}-event backlog: {longest * 1000:.0f} ms")
            assert problems == []


async def test_a_poisonous_event_is_skipped_recorded_and_the_next_one_fires(
    dev_client: Client, receiver: Receiver
) -> None:
    client = dev_client
    automation = make_automation(EVERY_X, [webhook_action(receiver, "/after")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        first_run = await current_run_id(client, handle)
        year_one = make_event("x").model_dump(mode="json") | {"occurred": "0001-01-01T00:00:00Z"}
        no_resource: dict[str, Any] = {"id": str(uuid.uuid4()), "event": "x"}
        fine = make_event("x")
        await handle.signal("deliver", [year_one, no_resource, fine.model_dump(mode="json")])
        await handle.signal("deliver", {"not": "a list"})
        alone = make_event("x").model_dump(mode="json") | {"occurred": "0001-01-01T00:00:00+01:00"}
        await handle.signal("deliver", [alone])

        status = await status_when(handle, lambda s: s.stats.errors >= 4, timeout=20)
        assert status.stats.firings == 1
        assert status.stats.last_error is not None
        nxt = make_event("x")
        await deliver(handle, nxt)
        calls = await receiver.arrived(2, "/after", timeout=20)
        assert len(calls) == 2
        status = await status_when(handle, lambda s: s.stats.firings == 2 and actions_done(s))
        assert status.stats.recent[-1].event_id == nxt.id
        memo = await (await handle.describe()).memo()
        assert memo["errors"] >= 4 and memo["last_error"]
        problems, _ = workflow_task_report(await run_histories(client, handle.id, first_run))
        assert problems == []


def lifecycle_of_another(depth: int) -> EventIn:
    other = uuid.uuid4()
    return EventIn(
        event=TRIGGERED,
        resource={"prefect.resource.id": f"prefect.automation.{other}"},
        payload={"chain_depth": depth},
    )


async def test_a_chain_of_automations_is_cut_at_its_maximum_depth(
    dev_client: Client, receiver: Receiver
) -> None:
    client = dev_client
    automation = make_automation(
        {"posture": "Reactive", "expect": [TRIGGERED]}, [webhook_action(receiver, "/chained")]
    )
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, lifecycle_of_another(MAX_CHAIN_DEPTH))
        status = await status_when(handle, lambda s: s.stats.chain_cut == 1)
        assert status.stats.firings == 0 and "chain" in (status.stats.last_error or "")
        await deliver(handle, lifecycle_of_another(5))
        calls = await receiver.arrived(1, "/chained", timeout=20)
        assert len(calls) == 1
        await lifecycle_names(receiver, 3)  # triggered, action triggered, action executed
        sent = [e for e in receiver.lifecycle_events() if e["event"] == TRIGGERED]
        assert [e["payload"]["chain_depth"] for e in sent] == [6]
        status = await status_when(handle, lambda s: s.stats.firings == 1)
        assert status.stats.chain_cut == 1


async def test_a_storm_over_the_firing_rate_limit_is_recorded_not_acted_on(
    dev_client: Client, receiver: Receiver
) -> None:
    client = dev_client
    automation = make_automation(EVERY_X, [webhook_action(receiver, "/storm")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(
            client, task_queue, automation, RunLimits(firings_per_minute=5)
        ) as handle,
    ):
        await deliver(handle, *events(12))
        status = await status_when(handle, lambda s: s.stats.suppressed_firings == 7)
        assert status.stats.firings == 5
        assert "rate limit" in (status.stats.last_error or "")
        assert len(await receiver.arrived(5, "/storm", timeout=20)) == 5


async def test_continue_as_new_in_the_middle_of_a_backlog_loses_and_repeats_nothing(
    eager_continue_as_new_client: Client, receiver: Receiver
) -> None:
    """The server suggests continuing after 30 history events, long before the backlog is
    worked off: queued firings and unread events cross into the next runs, each acted on once."""
    client, total = eager_continue_as_new_client, 3 * EVENTS_PER_TASK
    automation = make_automation(EVERY_X, [webhook_action(receiver, "/each")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation, UNLIMITED) as handle,
    ):
        first_run = await current_run_id(client, handle)
        await handle.signal("deliver", events(total))
        status = await status_when(
            handle, lambda s: s.stats.firings == total and actions_done(s), timeout=120
        )
        calls = await receiver.arrived(total, "/each", timeout=60)
        keys = [call.headers.get("Idempotency-Key") for call in calls]
        assert len(keys) == total and len(set(keys)) == total  # each once
        histories = await run_histories(client, handle.id, first_run)
        assert len(histories) > 1  # it did continue as new, several times
        problems, _ = workflow_task_report(histories)
        assert problems == [] and status.stats.errors == 0


async def test_a_lifecycle_event_our_api_refuses_holds_back_nothing(
    dev_client: Client, receiver: Receiver
) -> None:
    """Before, a refused lifecycle event was retried forever: no later lifecycle event of the
    automation went out, and continue-as-new was held back. Now the refused one is skipped
    (counted), the rest of its batch and everything after goes out."""
    client = dev_client
    automation = make_automation(EVERY_X, [{"type": "do-nothing"}])
    # The batch is refused, then the first event of it sent on its own.
    receiver.fail_next(422, times=2, path="/api/events")
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x"))
        status = await status_when(handle, lambda s: s.stats.errors == 1, timeout=20)
        assert "refused" in (status.stats.last_error or "")
        await deliver(handle, make_event("x"))
        status = await status_when(handle, lambda s: s.stats.firings == 2 and actions_done(s))
        names = await lifecycle_names(receiver, 5)
        # Three lifecycle events per firing (triggered, action triggered, executed), one refused.
        assert len(names) == 5 and names.count(TRIGGERED) == 1  # the first one was refused


async def test_firings_caused_by_other_automations_have_a_smaller_budget(
    dev_client: Client, receiver: Receiver
) -> None:
    """Two automations reacting to each other multiply at every link (each firing emits one
    lifecycle event per action and outcome): those chained firings have their own, small
    budget; firings on ordinary events keep theirs."""
    client = dev_client
    automation = make_automation(
        {"posture": "Reactive", "expect": [TRIGGERED, "x"]}, [webhook_action(receiver, "/b")]
    )
    limits = RunLimits(firings_per_minute=100, chained_firings_per_minute=3)
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation, limits) as handle,
    ):
        await deliver(handle, *(lifecycle_of_another(1) for _ in range(5)))
        status = await status_when(handle, lambda s: s.stats.suppressed_firings == 2)
        assert status.stats.firings == 3 and "chained" in (status.stats.last_error or "")
        await deliver(handle, *events(4))
        status = await status_when(handle, lambda s: s.stats.firings == 7 and actions_done(s))
        assert status.stats.suppressed_firings == 2
        assert len(await receiver.arrived(7, "/b", timeout=20)) == 7


async def test_work_too_big_to_carry_waits_in_overflow_children_and_comes_back_once(
    eager_continue_as_new_client: Client, receiver: Receiver
) -> None:
    """A backlog over what a run may carry (here made small: 150 KB, and each event carries
    512 bytes that do not compress) is not shed: the newest part goes to overflow children,
    which hand it back chunk by chunk as the backlog runs low. Every event is acted on once,
    no workflow task fails, and every overflow child ends."""
    client, total = eager_continue_as_new_client, 2 * EVENTS_PER_TASK
    automation = make_automation(EVERY_X, [webhook_action(receiver, "/each")])
    limits = RunLimits(firings_per_minute=0, max_carry_bytes=150_000, overflow_chunk_items=100)
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation, limits) as handle,
    ):
        first_run = await current_run_id(client, handle)
        backlog = [
            e.model_copy(
                update={"payload": {"noise": "".join(uuid.uuid4().hex for _ in range(16))}}
            )
            for e in events(total)
        ]
        await handle.signal("deliver", backlog)
        status = await status_when(
            handle,
            lambda s: s.stats.firings == total and s.overflow_chunks == 0 and actions_done(s),
            timeout=240,
        )
        calls = await receiver.arrived(total, "/each", timeout=60)
        keys = [call.headers.get("Idempotency-Key") for call in calls]
        assert len(keys) == total and len(set(keys)) == total  # each once
        assert status.stats.errors == 0, status.stats.last_error
        problems, _ = workflow_task_report(await run_histories(client, handle.id, first_run))
        assert problems == []
        query = (
            f"WorkflowType = '{OVERFLOW_WORKFLOW_TYPE}' AND WorkflowId STARTS_WITH '{handle.id}'"
        )
        children = [child async for child in client.list_workflows(query)]
        assert children, "the backlog should not have fit: no overflow child was started"
        for child in children:
            result = await client.get_workflow_handle(child.id).result()
            assert result.endswith("items taken back"), result


async def test_a_queue_of_firings_is_acted_on_across_bounded_workflow_tasks(
    dev_client: Client, receiver: Receiver
) -> None:
    """Local activities hold their workflow task open: without a bound, a long queue of firings
    ran in one task, all of whose actions ran again if the worker crashed before it completed.
    Each task now starts at most FIRINGS_PER_TASK firings (and records those, and the ones
    still in flight from the task before); every event is still acted on once."""
    client, total = dev_client, 3 * FIRINGS_PER_TASK + 50
    automation = make_automation(EVERY_X, [webhook_action(receiver, "/bounded")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation, UNLIMITED) as handle,
    ):
        first_run = await current_run_id(client, handle)
        await handle.signal("deliver", events(total))
        await status_when(
            handle, lambda s: s.stats.firings == total and actions_done(s), timeout=120
        )
        calls = await receiver.arrived(total, "/bounded", timeout=60)
        assert len({call.headers.get("Idempotency-Key") for call in calls}) == total
        histories = await run_histories(client, handle.id, first_run)
        most = most_markers_per_task(histories)
        print(f"\n{total} firings: at most {most} local activities in one workflow task")
        assert 0 < most <= FIRINGS_PER_TASK + FIRINGS_IN_FLIGHT  # those in flight end later
        assert workflow_task_report(histories)[0] == []


async def test_pausing_an_automation_that_does_not_exist_fails_with_that_reason(
    dev_client: Client, receiver: Receiver
) -> None:
    """Our API answers 404 for an unknown automation: the action fails at once (no retry),
    saying which automation does not exist (told by the answer's status, not its text)."""
    client, gone = dev_client, uuid.uuid4()
    receiver.fail_next(404, times=1, path=f"/api/automations/{gone}")
    pause = {"type": "pause-automation", "source": "selected", "automation_id": str(gone)}
    automation = make_automation(EVERY_X, [pause])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await handle.signal("deliver", events(1))
        status = await status_when(handle, lambda s: s.stats.firings == 1 and actions_done(s))
        (action,) = status.stats.recent[0].actions
        assert action.status == "failed"
        assert action.detail == f"automation {gone} does not exist"
        assert len(receiver.requests_snapshot(f"/api/automations/{gone}")) == 1  # not retried
