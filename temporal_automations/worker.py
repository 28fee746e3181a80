"""The Temporal worker: runs AutomationWorkflow (and its OverflowWorkflow children), the
EventInboxWorkflow that fans requests out to automations, and the action activities.

`python worker.py` (or `automations worker`), configured by environment: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TASK_QUEUE, API_URL, API_KEY, ALLOW_PRIVATE_WEBHOOKS.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import py_compile
import sys
from datetime import timedelta

import aiohttp
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from temporal_automations.activities.actions import ActionActivities
from temporal_automations.activities.inbox import InboxActivities
from temporal_automations.activities.log_context import ActionLogContext
from temporal_automations.activities.prefect import PrefectActivities, PrefectClient
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.temporal_actions import TemporalActivities
from temporal_automations.settings import Settings
from temporal_automations.temporal import connect, ensure_search_attributes
from temporal_automations.workflows import automation as automation_module
from temporal_automations.workflows import carried as carried_module
from temporal_automations.workflows import inbox as inbox_module
from temporal_automations.workflows import overflow as overflow_module
from temporal_automations.workflows.automation import AutomationWorkflow
from temporal_automations.workflows.inbox import EventInboxWorkflow
from temporal_automations.workflows.overflow import OverflowWorkflow

log = logging.getLogger("automations.worker")
# Under `docker stop`'s 10 s before its SIGKILL.
SHUTDOWN_GRACE = timedelta(seconds=5)


def cache_workflow_bytecode() -> None:
    """Write the bytecode of the workflow modules if it is missing or stale, even where
    PYTHONDONTWRITEBYTECODE is set: the sandbox imports a workflow's module afresh for every
    workflow it runs, and without a .pyc each import compiles the source again. Measured with
    300 automations on an in-process worker: 7.0 s to start them without, 2.9 s with.
    (An installed package has its .pyc from pip; a read-only tree is left as it is.)"""
    for module in (automation_module, carried_module, overflow_module, inbox_module):
        source = getattr(module, "__file__", None)
        if not source or not source.endswith(".py"):
            continue
        try:
            cached = importlib.util.cache_from_source(source)
            if not os.path.exists(cached) or os.path.getmtime(cached) < os.path.getmtime(source):
                py_compile.compile(source, cfile=cached, doraise=True)
        except (OSError, py_compile.PyCompileError, NotImplementedError) as error:
            log.info("could not cache the bytecode of %s: %s", source, error)


def build_worker(
    client: Client,
    settings: Settings,
    http: aiohttp.ClientSession,
    renderer: TemplateRenderer,
) -> Worker:
    """The worker; `renderer` is the caller's, who closes it (its processes) afterwards."""
    cache_workflow_bytecode()
    prefect = PrefectClient(settings, http)
    activities = [
        *ActionActivities(settings, http, prefect, renderer).all(),
        *PrefectActivities(prefect, renderer).all(),
        *TemporalActivities(settings.target_connection(), renderer).all(),
        *InboxActivities(client).all(),
    ]
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[AutomationWorkflow, OverflowWorkflow, EventInboxWorkflow],
        activities=activities,
        interceptors=[ActionLogContext()],  # automation and firing ids on activities' records
        max_concurrent_activities=200,
        # Every activation and every payload in it went through an `exec` inside the sandbox
        # (temporalio 1.35): ~40% of a workflow task's CPU. The workflow code is deterministic
        # by construction (workflow.now/uuid4, the layer rules), replay-tested, and the
        # workflow tests run it sandboxed; production may opt back in (WORKFLOW_SANDBOX).
        workflow_runner=(
            SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()
        ),
        # The workflow cache is what the worker's memory grows with (measured by
        # bench/scale.py, ~115 KB per cached automation, ~300 KB sandboxed); an automation
        # out of it replays its (short) history when it is needed again.
        max_cached_workflows=settings.max_cached_workflows,
        # For 10 s after a worker's last poll the server still routes its workflows' tasks to
        # its sticky queue; after a crash they wait there this long before any worker may take
        # them. At the SDK's default (10 s) a deadline due just after a crash fired ~10 s late
        # (measured); a live worker takes a sticky task within milliseconds, so 1 s costs nothing.
        sticky_queue_schedule_to_start_timeout=settings.sticky_queue_timeout,
        # On a stop (SIGTERM: a deploy, `docker stop`) webhooks in flight get this long to
        # finish before they are cancelled (and retried by the next worker).
        graceful_shutdown_timeout=SHUTDOWN_GRACE,
    )


async def run_worker(settings: Settings) -> None:
    """Run until cancelled."""
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout, raise_for_status=False) as http,
        TemplateRenderer() as renderer,  # its rendering processes stop with the worker
    ):
        renderer.warm()  # ready before the first action, not started by it
        worker = build_worker(client, settings, http, renderer)
        # What start-up made (temporalio, pydantic's validators, the workflow's modules) lives as
        # long as the process: out of the collector's sight, a full collection walks only what
        # came after it. A full collection had paused the worker 69 ms in a 300-event reactive
        # run, which held the events that came meanwhile.
        gc.freeze()
        log.info(
            "worker polling task queue %r on %s", settings.task_queue, settings.temporal_address
        )
        await worker.run()


if __name__ == "__main__":
    # A bare asyncio.run() would die on SIGTERM without stopping the worker, so the workflow
    # tasks it held waited out their timeout (10 s) before another worker got them; the CLI
    # command stops it gracefully (measured: a SIGTERM restart mid-stream recovered in 2.6 s
    # instead of 11.6 s, with no action re-sent).
    # Through the CLI so that LOG_LEVEL/LOG_JSON and its options apply too.
    from temporal_automations.cli import app

    app(["worker", *sys.argv[1:]])
