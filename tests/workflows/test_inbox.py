"""The inbox workflow and its parcels: what a round takes and merges, what it drops and records,
and that it carries what it holds across continue-as-new. The workflow tests run the production
worker (sandboxed) on Temporal's time-skipping test server, with real automations."""

from __future__ import annotations

import json
import zlib
from contextlib import AsyncExitStack
from datetime import timedelta

import pytest
from pydantic_core import to_json
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_automations.activities.requests import DELIVER_PARCEL
from temporal_automations.api.inbox import InboxSender
from temporal_automations.domain.events import Event
from temporal_automations.parcels import (
    MAX_SIGNAL_BYTES,
    DeliveryReport,
    ParcelError,
    events_list,
    pack,
    unpack,
)
from temporal_automations.temporal import workflow_id
from temporal_automations.workflows.inbox import (
    ACCEPT_SIGNAL,
    CARRY_BYTES,
    EventInboxWorkflow,
    InboxRun,
    InboxStatus,
    inbox_workflow_id,
)
from tests.support import Receiver, eventually_async, make_automation, make_event
from tests.workflow_support import automation_workflow, received, running_worker, status_when

AUTOMATION = "automation-00000000-0000-0000-0000-000000000001"


def events_json(*events: Event) -> bytes:
    return b"[" + b",".join(to_json(event) for event in events) + b"]"


def parcel(deliveries: list[tuple[str, bytes]]) -> RawValue:
    return RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=pack(deliveries)))


# --------------------------------------------------------------------------- parcels


@pytest.mark.parametrize("compress", [False, True])
def test_a_parcel_reads_back_as_it_was_packed(compress: bool) -> None:
    other = "automation-00000000-0000-0000-0000-000000000002"
    deliveries = [(AUTOMATION, b'[{"a":1}]'), (other, b"[]"), (AUTOMATION, b'[{"b":"\\n"}]')]
    assert unpack(pack(deliveries, compress=compress)) == deliveries


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b'[["automation-x", 2]]\n[]',  # no first line
        b"inbox-parcel/1\n",  # no header line
        b"inbox-parcel/1\nnot json\n",
        b'inbox-parcel/1\n{"a": 1}\n',
        b'inbox-parcel/1\n[["workflow-of-someone-else", 2]]\n[]',  # not an automation's
        b'inbox-parcel/1\n[["' + AUTOMATION.encode() + b'", 5]]\n[]',  # shorter than said
        b'inbox-parcel/1\n[["' + AUTOMATION.encode() + b'", 2]]\n[]extra',
        b'inbox-parcel/1\n[["' + AUTOMATION.encode() + b'", -1]]\n',
        b'inbox-parcel/1\n[["' + AUTOMATION.encode() + b'", true]]\n[]',
        b"inbox-parcel/1\n" + b"[" * 100_000 + b"\n",  # nested past the recursion limit
        b"inbox-parcel/1+zlib\nnot zlib",
        b"inbox-parcel/1+zlib\n" + zlib.compress(b"[]\n")[:-3],  # cut short
        b"inbox-parcel/1+zlib\n" + zlib.compress(b"[]\n" + b" " * 40_000_000),  # a bomb
    ],
    ids=lambda data: repr(data[:24]),
)
def test_what_is_not_a_parcel_is_refused_with_a_parcel_error(data: bytes) -> None:
    with pytest.raises(ParcelError):
        unpack(data)


def test_lists_of_events_merge_into_one_in_order() -> None:
    assert json.loads(events_list([b"[1, 2]", b" [ ] ", b"[3]"])) == [1, 2, 3]
    assert events_list([b"[1]"]) == b"[1]"


def test_a_round_takes_each_automations_oldest_events_within_a_signals_bytes() -> None:
    other = "automation-00000000-0000-0000-0000-000000000002"
    big = '["' + "x" * (MAX_SIGNAL_BYTES - 9) + '"]'  # with [1]: 2 bytes under; with [4]: over
    pending = [(AUTOMATION, "[1]"), (other, "[2]"), (AUTOMATION, big), (AUTOMATION, "[4]")]
    inbox = EventInboxWorkflow(InboxRun(pending=pending))
    first = inbox._take_round()
    assert [target for target, _ in first] == [AUTOMATION, other]
    assert json.loads(first[0][1]) == [1, json.loads(big)[0]]
    assert json.loads(first[1][1]) == [2]
    assert inbox._take_round() == [(AUTOMATION, b"[4]")]
    assert inbox._take_round() == [] and inbox.pending_bytes == 0


# --------------------------------------------------------------------------- the workflow


async def inbox_status(env: WorkflowEnvironment, task_queue: str) -> InboxStatus:
    handle = env.client.get_workflow_handle(inbox_workflow_id(task_queue))
    return await handle.query(EventInboxWorkflow.status)


async def continued_as_new(env: WorkflowEnvironment, task_queue: str) -> InboxStatus:
    """The inbox's status once a run of it has continued as new."""

    async def continued() -> InboxStatus | None:
        status = await inbox_status(env, task_queue)
        return status if status.stats.runs > 1 else None

    return await eventually_async(continued, timeout=20, what="continued as new")


def more_than_a_run_carries(name: str) -> list[list[Event]]:
    """Batches of events whose JSON lists come to more than a continue-as-new carries."""
    batches = [[make_event(name, f"r.{n}.{i}") for i in range(2_000)] for n in range(4)]
    assert sum(len(events_json(*events)) for events in batches) > CARRY_BYTES
    return batches


# Counts and never fires: these tests are about what reaches it.
COUNTING = {"posture": "Reactive", "expect": ["inbox.*"], "threshold": 100_000, "within": 3600}


async def test_parcels_that_wait_together_reach_each_automation_in_one_signal_in_order(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Three parcels accepted before any worker runs are one round: each automation gets one
    signal with its events of all three, in the order the parcels came. A parcel that is not
    one, or a delivery that is not a JSON list, is skipped and recorded; a delivery to an
    automation that does not exist is dropped."""
    env = time_skipping_env
    trigger = {"posture": "Reactive", "expect": ["inbox.*"], "threshold": 1000, "within": 3600}
    first, second = make_automation(trigger), make_automation(trigger)
    missing = make_automation(trigger)
    task_queue = "inbox-test"
    sent: dict[str, list[Event]] = {workflow_id(first.id): [], workflow_id(second.id): []}
    with Receiver() as receiver:
        async with AsyncExitStack() as stack:
            handles = [
                await stack.enter_async_context(
                    automation_workflow(env.client, task_queue, automation)
                )
                for automation in (first, second)
            ]
            for n in range(3):
                deliveries = []
                for target in sent:
                    events = [make_event(f"inbox.{n}", f"r.{n}.{i}") for i in range(2)]
                    sent[target] += events
                    deliveries.append((target, events_json(*events)))
                deliveries.append((workflow_id(missing.id), events_json(make_event("inbox.x"))))
                await env.client.start_workflow(
                    EventInboxWorkflow.run,
                    # Rounds an hour apart (skipped by the test server's clock): a parcel after
                    # the first round waits for the next one's timer.
                    InboxRun(spacing=timedelta(hours=1), max_round_interval=timedelta(hours=1)),
                    id=inbox_workflow_id(task_queue),
                    task_queue=task_queue,
                    start_signal=ACCEPT_SIGNAL,
                    start_signal_args=[parcel(deliveries)],
                )
            not_a_parcel = RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=b"?"))
            inbox = env.client.get_workflow_handle(inbox_workflow_id(task_queue))
            await inbox.signal(ACCEPT_SIGNAL, not_a_parcel)
            await inbox.signal(ACCEPT_SIGNAL, parcel([(workflow_id(first.id), b"[oops")]))
            async with running_worker(env.client, receiver, task_queue=task_queue):
                for handle in handles:
                    await status_when(handle, received(6))
                status = await inbox_status(env, task_queue)
                assert status.stats.parcels == 5
                assert status.stats.skipped == 2  # the parcel, and the delivery "[oops"
                assert "not JSON lists" in (status.stats.last_error or "")
                assert status.stats.gone == 1 and status.stats.refused == 0
                assert status.stats.delivered == 2 and status.pending_bytes == 0
                for handle in handles:
                    history = await handle.fetch_history()
                    signals = [
                        e.workflow_execution_signaled_event_attributes
                        for e in history.events
                        if e.HasField("workflow_execution_signaled_event_attributes")
                    ]
                    assert len(signals) == 1
                    ids = [item["id"] for item in json.loads(signals[0].input.payloads[0].data)]
                    assert ids == [str(event.id) for event in sent[handle.id]]

                # A parcel after a round waits for the next (its timer), then goes too.
                later = make_event("inbox.later")
                await inbox.signal(
                    ACCEPT_SIGNAL, parcel([(workflow_id(first.id), events_json(later))])
                )
                await env.sleep(timedelta(hours=1, seconds=1))  # the test server's clock
                await status_when(handles[0], received(7))
                status = await inbox_status(env, task_queue)
                assert status.stats.rounds == 2 and status.stats.delivered == 3


async def test_the_inbox_continues_as_new_with_what_it_holds(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    trigger = {"posture": "Reactive", "expect": ["inbox.*"], "threshold": 1000, "within": 3600}
    automation = make_automation(trigger)
    task_queue = "inbox-continue"
    target = workflow_id(automation.id)
    with Receiver() as receiver:
        async with automation_workflow(env.client, task_queue, automation) as handle:
            inbox = await env.client.start_workflow(
                EventInboxWorkflow.run,
                InboxRun(continue_at_signals=2),
                id=inbox_workflow_id(task_queue),
                task_queue=task_queue,
            )
            for _ in range(5):  # all in the first run's first task: 3 beyond its limit
                await inbox.signal(
                    ACCEPT_SIGNAL, parcel([(target, events_json(make_event("inbox.n")))])
                )
            first_run = (await inbox.describe()).run_id
            async with running_worker(env.client, receiver, task_queue=task_queue):
                await status_when(handle, received(5))
                status = await continued_as_new(env, task_queue)
                assert (
                    await env.client.get_workflow_handle(inbox.id).describe()
                ).run_id != first_run
                assert status.stats.parcels == 5 and status.pending_bytes == 0


async def test_a_quiet_inbox_delivers_each_parcel_at_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Rounds are paced only while busy: after a round that carried one parcel, the next
    parcel goes at once, even with rounds paced an hour apart (the test server's clock never
    moves here: a wait for the pace's timer would not end)."""
    env = time_skipping_env
    trigger = {"posture": "Reactive", "expect": ["inbox.*"], "threshold": 1000, "within": 3600}
    automation = make_automation(trigger)
    task_queue = "inbox-quiet"
    target = workflow_id(automation.id)
    hour = timedelta(hours=1)
    with Receiver() as receiver:
        async with (
            automation_workflow(env.client, task_queue, automation) as handle,
            running_worker(env.client, receiver, task_queue=task_queue),
        ):
            for count in (1, 2, 3):
                await env.client.start_workflow(
                    EventInboxWorkflow.run,
                    InboxRun(spacing=hour, max_round_interval=hour),
                    id=inbox_workflow_id(task_queue),
                    task_queue=task_queue,
                    start_signal=ACCEPT_SIGNAL,
                    start_signal_args=[parcel([(target, events_json(make_event("inbox.q")))])],
                )
                await status_when(handle, received(count))
            status = await inbox_status(env, task_queue)
            assert status.stats.rounds == 3 and status.pending_bytes == 0


async def test_an_inbox_due_to_continue_with_more_than_it_can_carry_drains_first(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Due to continue as new (here after one signal) while it holds more than a run can carry,
    the inbox says it is draining, so that the API sends requests to their automations
    directly meanwhile (its sender finds no room, however far under its high-water mark the
    backlog is): it goes on with rounds and drops nothing. Here its rounds fail at
    first (the server takes no signal for now), so it holds everything; once a worker
    can deliver, every event arrives and the inbox continues as new with nothing dropped.
    Before `draining`, a steady load through the API kept the backlog over what a run carries
    until the history's headroom ran out, and the run that continued then dropped the rest."""
    env = time_skipping_env
    automation = make_automation(COUNTING)
    task_queue = "inbox-draining"
    target = workflow_id(automation.id)
    batches = more_than_a_run_carries("inbox.d")
    bodies = [events_json(*events) for events in batches]
    inbox = await env.client.start_workflow(
        EventInboxWorkflow.run,
        InboxRun(continue_at_signals=1),
        id=inbox_workflow_id(task_queue),
        task_queue=task_queue,
    )
    for body in bodies:
        await inbox.signal(ACCEPT_SIGNAL, parcel([(target, body)]))
    first_run = (await inbox.describe()).run_id
    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[EventInboxWorkflow],
        activities=[deliveries_for_later],
        max_cached_workflows=0,  # no sticky queue: the next worker gets the inbox at once
    ):
        status = await eventually_async(
            lambda: _failed_a_round(env, task_queue), timeout=20, what="a round that failed"
        )
        assert status.draining
        assert status.pending_bytes > CARRY_BYTES and status.stats.delivered == 0
        assert (await inbox.describe()).run_id == first_run
        # The API's sender, under its high-water mark by far, finds no room in it.
        sender = InboxSender(env.client, task_queue, high_water_bytes=4_000_000)
        await sender.send([(target, events_json(make_event("inbox.d", "one more")))])
        await eventually_async(lambda: not sender.has_room(), timeout=10, what="no room")
    with Receiver() as receiver:
        async with (
            automation_workflow(env.client, task_queue, automation) as handle,
            running_worker(env.client, receiver, task_queue=task_queue),
        ):
            await status_when(handle, received(sum(len(events) for events in batches) + 1), 60)
            status = await continued_as_new(env, task_queue)
            assert status.stats.refused == 0 and status.stats.gone == 0
            assert not status.draining and status.pending_bytes == 0


@activity.defn(name=DELIVER_PARCEL)
async def deliveries_for_later(parcel: RawValue) -> DeliveryReport:
    """A round's activity as it goes when the server takes no signal for now: every delivery
    is to be sent again."""
    return DeliveryReport(retry=list(range(len(unpack(parcel.payload.data)))))


async def _failed_a_round(env: WorkflowEnvironment, task_queue: str) -> InboxStatus | None:
    status = await inbox_status(env, task_queue)
    return status if status.stats.retried else None


async def test_parcels_that_come_while_the_inbox_is_about_to_continue_are_not_dropped(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Due to continue as new, the inbox first waits RECORD_FIRST (the task that ran its last
    round completes), then continues with what it holds. Parcels that come during that wait
    and take it over what a run carries go out in one more round first (patch
    `inbox-continue-only-when-it-fits`): they used to be dropped and recorded as refused. The
    test server's clock stands still here until the test moves it, so the parcels all come
    during the wait."""
    env = time_skipping_env
    automation = make_automation(COUNTING)
    task_queue = "inbox-about-to-continue"
    target = workflow_id(automation.id)
    batches = more_than_a_run_carries("inbox.w")
    with Receiver() as receiver:
        async with (
            automation_workflow(env.client, task_queue, automation) as handle,
            running_worker(env.client, receiver, task_queue=task_queue),
        ):
            inbox = await env.client.start_workflow(
                EventInboxWorkflow.run,
                InboxRun(continue_at_signals=1),
                id=inbox_workflow_id(task_queue),
                task_queue=task_queue,
                start_signal=ACCEPT_SIGNAL,
                start_signal_args=[parcel([(target, events_json(make_event("inbox.first")))])],
            )
            await status_when(handle, received(1))
            first_run = (await inbox.describe()).run_id
            for events in batches:  # the inbox now waits on its RECORD_FIRST timer
                await inbox.signal(ACCEPT_SIGNAL, parcel([(target, events_json(*events))]))
            assert (await inbox.describe()).run_id == first_run
            await env.sleep(timedelta(milliseconds=10))  # the test server's clock
            await status_when(handle, received(1 + sum(len(events) for events in batches)), 60)
            status = await continued_as_new(env, task_queue)
            assert status.stats.refused == 0 and status.pending_bytes == 0
