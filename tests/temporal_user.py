"""A Temporal user's own workflows and worker, on a cluster of their own: what the Temporal
bridge watches and the Temporal actions act on in the tests and the benchmark.

    python -m tests.temporal_user ADDRESS TASK_QUEUE [--plugin API_URL]

runs a worker of these workflows until SIGTERM (as a separate process, as a user's worker is).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

ONCE = RetryPolicy(maximum_attempts=1)


@activity.defn
async def fails_first_time(marker: str) -> str:
    """Fails unless `marker` exists, and creates it: a fault that a reset repairs."""
    path = Path(marker)
    if not path.exists():
        path.touch()
        raise ApplicationError("the disk was full", type="DiskFull")
    return "done"


@activity.defn
async def always_fails(attempts: int) -> str:
    raise ApplicationError(f"attempt {activity.info().attempt} of {attempts} failed", type="Flaky")


@workflow.defn
class FailsOnce:
    @workflow.run
    async def run(self, marker: str) -> str:
        return await workflow.execute_activity(
            fails_first_time,
            marker,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=ONCE,
        )


@workflow.defn
class Fails:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("nothing works today", type="Broken", non_retryable=True)


@workflow.defn
class RetriesAnActivity:
    @workflow.run
    async def run(self, attempts: int) -> str:
        return await workflow.execute_activity(
            always_fails,
            attempts,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(
                maximum_attempts=attempts, initial_interval=timedelta(milliseconds=50)
            ),
        )


@workflow.defn
class WaitsForSignal:
    def __init__(self) -> None:
        self.value: str | None = None

    @workflow.signal
    def finish(self, value: str) -> None:
        self.value = value

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.value is not None)
        assert self.value is not None
        return self.value


@workflow.defn
class Echo:
    @workflow.run
    async def run(self, value: str) -> str:
        return value


@workflow.defn
class Quick:
    @workflow.run
    async def run(self) -> None:
        return None


WORKFLOWS = [FailsOnce, Fails, RetriesAnActivity, WaitsForSignal, Echo, Quick]
ACTIVITIES = [fails_first_time, always_fails]


async def run_worker(address: str, task_queue: str, plugin_api_url: str | None) -> None:
    plugins = []
    if plugin_api_url:
        from temporal_automations.plugin import AutomationsPlugin

        plugins.append(AutomationsPlugin(plugin_api_url))
    client = await Client.connect(address, plugins=plugins)
    worker = Worker(client, task_queue=task_queue, workflows=WORKFLOWS, activities=ACTIVITIES)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        await stop.wait()


if __name__ == "__main__":
    address, task_queue = sys.argv[1], sys.argv[2]
    plugin = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--plugin" else None
    asyncio.run(run_worker(address, task_queue, plugin))
