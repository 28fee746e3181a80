"""Structured logs from the real worker on the time-skipping server: the JSON line of a failed
action names its automation, its firing and the error's type; a transient attempt's record
from the activity side carries the same ids (bound by the worker's interceptor)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.testing import WorkflowEnvironment

from temporal_automations import logs
from temporal_automations.workflows.automation import AutomationWorkflow
from tests.support import Receiver, make_automation, make_event, webhook_action
from tests.workflow_support import automation_workflow, deliver, running_worker

REACTIVE_X: dict[str, Any] = {"posture": "Reactive", "expect": ["x"]}


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The process's logging set up as `--log-json` does, into a buffer; put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    on_message = (
        workflow.logger.workflow_info_on_message,
        activity.logger.activity_info_on_message,
    )
    buffer = io.StringIO()
    logs.configure("INFO", json_lines=True, stream=buffer)
    try:
        yield buffer
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        workflow.logger.workflow_info_on_message = on_message[0]
        activity.logger.activity_info_on_message = on_message[1]


async def line_where(
    buffer: io.StringIO, wanted: Callable[[dict[str, Any]], bool], timeout: float = 20.0
) -> dict[str, Any]:
    """The first JSON line of `buffer` that `wanted` accepts, waiting for it to be written."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        for text in buffer.getvalue().splitlines():
            line = json.loads(text)  # every line is one JSON object, or this fails
            if wanted(line):
                return line
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no such line in:\n{buffer.getvalue()}")
        await asyncio.sleep(0.05)


async def test_a_failed_action_logs_one_json_line_with_its_automation_and_firing(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver, json_log: io.StringIO
) -> None:
    client = time_skipping_env.client
    receiver.fail_next(403, times=1, path="/gone")  # permanent: no retry
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/gone")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x", "r"))
        line = await line_where(
            json_log,
            lambda line: line["logger"] == "temporalio.workflow" and "failed" in line["message"],
        )
        status = await handle.query(AutomationWorkflow.status)

    (firing,) = status.stats.recent
    assert line["level"] == "WARNING"
    assert line["logger"] == "temporalio.workflow"
    assert line["automation_id"] == str(automation.id)
    assert line["firing_id"] == str(firing.id)
    assert line["action_index"] == 0 and line["action_type"] == "call-webhook"
    assert line["error_type"] == "RefusedAnswer"
    assert "answered 403" in line["message"]
    assert set(line) >= {"time", "level", "logger", "message"}


async def test_a_retried_attempt_is_logged_by_the_activity_with_the_same_ids(
    time_skipping_env: WorkflowEnvironment, receiver: Receiver, json_log: io.StringIO
) -> None:
    client = time_skipping_env.client
    receiver.fail_next(503, times=1, path="/flaky")  # transient: retried, then delivered
    automation = make_automation(REACTIVE_X, [webhook_action(receiver, "/flaky")])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        await deliver(handle, make_event("x", "r"))
        line = await line_where(json_log, lambda line: "attempt 1 failed" in line["message"])
        assert len(await receiver.arrived(2, "/flaky", timeout=20)) == 2

    assert line["logger"] == "automations.activities"
    assert line["automation_id"] == str(automation.id)
    assert line["firing_id"]  # the firing's id, bound for the activity's task
    assert line["action_type"] == "call-webhook" and line["error_type"] == "RuntimeError"


@pytest.mark.parametrize(
    ("action", "fail_with", "error_type"),
    [
        ({"type": "call-webhook", "url": "{receiver}/gone"}, 404, "TargetNotFound"),
        ({"type": "call-webhook", "url": "{receiver}/t", "payload": "{{{{ 1 / 0 }}}}"}, None,
         "TemplateError"),
        ({"type": "cancel-flow-run"}, None, "NoTarget"),
    ],
)  # fmt: skip
async def test_the_workflow_sees_each_permanent_failure_by_its_type(
    time_skipping_env: WorkflowEnvironment,
    receiver: Receiver,
    json_log: io.StringIO,
    action: dict[str, Any],
    fail_with: int | None,
    error_type: str,
) -> None:
    # Each is permanent: one attempt, no retry (the failure arrives at once), typed.
    client = time_skipping_env.client
    if fail_with is not None:
        receiver.fail_next(fail_with, times=1, path="/gone")
    action = {k: v.format(receiver=receiver.url) if isinstance(v, str) else v
              for k, v in action.items()}  # fmt: skip
    automation = make_automation(REACTIVE_X, [action])
    async with (
        running_worker(client, receiver) as task_queue,
        automation_workflow(client, task_queue, automation) as handle,
    ):
        # The event's resource is no flow run: nothing for cancel-flow-run to infer.
        await deliver(handle, make_event("x", "some.thing.else"))
        line = await line_where(
            json_log,
            lambda line: line["logger"] == "temporalio.workflow" and "failed" in line["message"],
        )
    assert line["error_type"] == error_type, line
    assert line["automation_id"] == str(automation.id)
