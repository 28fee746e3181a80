"""The SDK's graceful shutdown, alone: how many workflow tasks a stopping worker drops.

Twenty bare workflows (no code of ours) loop a 20 ms timer and a 5 ms activity on the dev
server; a worker runs 1.5 s, is stopped as `automations worker` stops on SIGTERM (its `run()`
cancelled: temporalio's graceful shutdown), and the next one starts at once. A workflow task the
server handed to the stopping worker that the worker then never completed times out after 10 s
(start-to-close). The figures printed are those timeouts, with and without the server's
`frontend.enableCancelWorkerPollsOnShutdown` (which advertises `worker_poll_complete_on_shutdown`).

    python bench/shutdown_race.py --restarts 15
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from temporal_automations.devserver import DevServer

WORKFLOWS = 20
RUN_SECONDS = 1.5
TASK_QUEUE = "shutdown-race"
CANCEL_POLLS_ON_SHUTDOWN = {"frontend.enableCancelWorkerPollsOnShutdown": "true"}


@activity.defn
async def short_activity() -> None:
    await asyncio.sleep(0.005)


@workflow.defn
class TimerActivityLoop:
    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.sleep(0.02)
            await workflow.execute_activity(
                short_activity, start_to_close_timeout=timedelta(seconds=5)
            )


def new_worker(client: Client) -> Worker:
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[TimerActivityLoop],
        activities=[short_activity],
        workflow_runner=UnsandboxedWorkflowRunner(),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=1),  # as ours
        graceful_shutdown_timeout=timedelta(seconds=5),  # as ours
    )


async def run_then_stop(worker: Worker, seconds: float) -> None:
    running = asyncio.create_task(worker.run())
    await asyncio.sleep(seconds)
    running.cancel()  # what SIGTERM does to `automations worker`
    with contextlib.suppress(asyncio.CancelledError):
        await running


async def start_to_close_timeouts(handles: list[WorkflowHandle]) -> int:
    count = 0
    for handle in handles:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                kind = event.workflow_task_timed_out_event_attributes.timeout_type
                count += kind == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
    return count


async def measure(address: str, restarts: int) -> int:
    client = await Client.connect(address)
    handles = [
        await client.start_workflow(
            TimerActivityLoop.run, id=f"loop-{uuid.uuid4()}", task_queue=TASK_QUEUE
        )
        for _ in range(WORKFLOWS)
    ]
    try:
        for _ in range(restarts):
            await run_then_stop(new_worker(client), RUN_SECONDS)
        await run_then_stop(new_worker(client), 12)  # past the 10 s task timeout
        return await start_to_close_timeouts(handles)
    finally:
        for handle in handles:
            await handle.terminate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=15)
    args = parser.parse_args()
    for label, config in (("default", {}), ("cancel polls on shutdown", CANCEL_POLLS_ON_SHUTDOWN)):
        server = DevServer(dynamic_config=config)
        server.start(30)
        try:
            timeouts = asyncio.run(measure(server.address, args.restarts))
        finally:
            server.stop()
        print(
            f"{label}: {timeouts} workflow task start-to-close timeouts in {args.restarts} "
            f"graceful restarts ({WORKFLOWS} workflows)",
            flush=True,
        )


if __name__ == "__main__":
    main()
