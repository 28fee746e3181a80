"""Helpers for tests that run AutomationWorkflow on real Temporal servers with the production
worker: start it, signal it, query it until a condition holds, read its histories."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowHandle

from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import Event
from temporal_automations.settings import Settings
from temporal_automations.temporal import workflow_id
from temporal_automations.worker import build_worker
from temporal_automations.workflows.automation import (
    AutomationRun,
    AutomationStats,
    AutomationStatus,
    AutomationWorkflow,
    RunLimits,
    memo_for,
    search_attributes_for,
)
from tests.support import Receiver


@asynccontextmanager
async def running_worker(
    client: Client,
    receiver: Receiver,
    *,
    allow_private_webhooks: bool = True,
    task_queue: str | None = None,
) -> AsyncIterator[str]:
    """The production worker on a task queue of its own (or `task_queue`); yields it."""
    task_queue = task_queue or f"test-{uuid.uuid4()}"
    settings = Settings(
        task_queue=task_queue,
        api_url=f"{receiver.url}/api",  # lifecycle events go to the receiver's /api/events
        allow_private_webhooks=allow_private_webhooks,
        # Sandboxed here (production runs without it): a non-deterministic call in workflow
        # or domain code fails these tests.
        workflow_sandbox=True,
    )
    async with (
        aiohttp.ClientSession() as http,
        TemplateRenderer() as renderer,
        build_worker(client, settings, http, renderer),
    ):
        yield task_queue


@asynccontextmanager
async def automation_workflow(
    client: Client, task_queue: str, automation: Automation, limits: RunLimits | None = None
) -> AsyncIterator[WorkflowHandle[Any, Any]]:
    """Started as the API starts it (memo and search attributes), terminated afterwards."""
    handle = await client.start_workflow(
        AutomationWorkflow.run,
        AutomationRun(automation=automation, limits=limits or RunLimits()),
        id=workflow_id(automation.id),
        task_queue=task_queue,
        memo=memo_for(automation, AutomationStats()),
        search_attributes=search_attributes_for(automation),
    )
    try:
        yield handle
    finally:
        with contextlib.suppress(Exception):  # already ended, or the server going away
            await handle.terminate("test over")


async def deliver(handle: WorkflowHandle[Any, Any], *events: Event) -> None:
    await handle.signal(AutomationWorkflow.deliver, list(events))


async def status_when(
    handle: WorkflowHandle[Any, Any],
    condition: Callable[[AutomationStatus], bool],
    timeout: float = 10.0,
) -> AutomationStatus:
    """Query `status` until `condition` holds. A query that counts every delivered event also
    shows their evaluation: the signal handler and the loop run in the same workflow task."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status: AutomationStatus = await handle.query(AutomationWorkflow.status)
        if condition(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition never held; last status: {status!r}")
        await asyncio.sleep(0.05)


def received(count: int) -> Callable[[AutomationStatus], bool]:
    return lambda status: status.stats.events_received == count


def actions_done(status: AutomationStatus) -> bool:
    return all(a.status in ("executed", "failed") for f in status.stats.recent for a in f.actions)


async def lifecycle_names(receiver: Receiver, count: int, timeout: float = 10.0) -> list[str]:
    """The names of the lifecycle events at the sink, once `count` of them arrived."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        names = [e["event"] for e in receiver.lifecycle_events()]
        if len(names) >= count or asyncio.get_running_loop().time() > deadline:
            return names
        await asyncio.sleep(0.05)


async def current_run_id(client: Client, handle: WorkflowHandle[Any, Any]) -> str:
    return (await client.get_workflow_handle(handle.id).describe()).run_id


async def run_histories(client: Client, workflow_id_: str, first_run_id: str) -> list[Any]:
    """The histories of every run of one workflow, from `first_run_id` along its
    continue-as-new chain."""
    histories = []
    run_id: str | None = first_run_id
    while run_id:
        history = await client.get_workflow_handle(workflow_id_, run_id=run_id).fetch_history()
        histories.append(history)
        run_id = None
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
                attributes = event.workflow_execution_continued_as_new_event_attributes
                run_id = attributes.new_execution_run_id
    return histories


def workflow_task_report(histories: list[Any]) -> tuple[list[str], float]:
    """The workflow tasks that failed or timed out, each in words (its cause and message, or
    its timeout's kind), and the longest one that completed (seconds from started to
    completed), over all `histories`."""
    problems: list[str] = []
    longest = 0.0
    started = None
    for history in histories:
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                failed = event.workflow_task_failed_event_attributes
                cause = WorkflowTaskFailedCause.Name(failed.cause)
                problems.append(
                    f"event {event.event_id}: failed, {cause}: {failed.failure.message}"
                )
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                kind = TimeoutType.Name(event.workflow_task_timed_out_event_attributes.timeout_type)
                problems.append(f"event {event.event_id}: timed out, {kind}")
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started = event.event_time.ToDatetime()
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and started:
                longest = max(longest, (event.event_time.ToDatetime() - started).total_seconds())
    return problems, longest


def most_markers_per_task(histories: list[Any]) -> int:
    """The most markers (each a local activity's outcome) that one workflow task recorded: a
    task's markers come right after its WORKFLOW_TASK_COMPLETED event."""
    most, current = 0, 0
    for history in histories:
        for event in history.events:
            if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
                current += 1
                most = max(most, current)
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                current = 0
    return most
