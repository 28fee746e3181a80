"""Nothing wedges, nothing is lost: /api/health tells the truth about workers and wedged
automations, the page says when an automation is not evaluating, a restarted worker picks up
missed deadlines at once, and the dev server's SQLite durability is a choice that reaches it.

All on real processes (tests/stack.py): a Temporal dev server, the worker and the API."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
from playwright.sync_api import Page, expect, sync_playwright
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingWorkflowTaskState
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.devserver import free_port
from temporal_automations.temporal import WORKFLOW_TYPE, workflow_id
from tests.page.support import CHROMIUM
from tests.stack import ROOT, Stack
from tests.support import Receiver, event_json, eventually

T = TypeVar("T")


def with_temporal(stack: Stack, use: Callable[[Client], Awaitable[T]]) -> T:
    """Run `use` with a Temporal client of its own (the tests here are synchronous)."""

    async def main() -> T:
        client = await Client.connect(
            stack.temporal_address, data_converter=pydantic_data_converter
        )
        return await use(client)

    return asyncio.run(main())


def health(stack: Stack) -> httpx.Response:
    # Health is open (no key), like a load balancer calls it; long enough for a probe to time out.
    return httpx.get(f"{stack.api_url}/health", timeout=10)


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"health {uuid.uuid4()}", "trigger": {"posture": "Reactive"}, **fields}
    response = api.post("/automations/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def evaluating(api: httpx.Client, automation_id: str) -> dict[str, Any]:
    response = api.get(f"/automations/{automation_id}/health")
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- workers


def test_health_is_503_within_5_s_of_the_worker_dying_and_200_once_one_is_back(
    stack: Stack, api: httpx.Client
) -> None:
    automation = create(api, actions=[{"type": "do-nothing"}])

    def asked_a_worker() -> dict[str, Any] | None:
        # Answers are cached for a second: one from before the automation existed (no workflow
        # to ask yet) says "pollers".
        response = health(stack)
        assert response.status_code == 200, response.text
        return response.json() if response.json()["worker_check"] == "query" else None

    report = eventually(asked_a_worker, 5, what="a health check that asked a worker")
    assert report.pop("catalog")["loaded"] is True  # tests/e2e/test_scale.py covers the catalog
    assert report.pop("inbox") == {  # nothing went through it here
        "parcels_sent": 0,
        "backlog_bytes": 0,
        "over_high_water": False,
        "requests_sent_directly_while_over": 0,
    }
    assert report | {"checked_at": None} == {
        "status": "ok",
        "temporal": True,
        "workers": True,
        "worker_check": "query",  # asked a worker, not the poller list the server remembers
        "wedged": [],
        "wedged_more": False,
        "checked_at": None,
    }
    assert evaluating(api, automation["id"]) == {"evaluating": True, "problem": None}

    def unavailable() -> dict[str, Any] | None:
        response = health(stack)
        return response.json() if response.status_code == 503 else None

    stack.kill_worker()
    killed = time.monotonic()
    dead = eventually(unavailable, 15, what="a 503")
    to_503 = time.monotonic() - killed
    # A figure, not an assertion (timing targets live in bench/): the 15 s above bounds it.
    print(f"worker SIGKILLed -> /api/health 503 in {to_503:.2f} s")
    assert dead["workers"] is False and dead["status"] == "unavailable"
    assert evaluating(api, automation["id"]) == {
        "evaluating": False,
        "problem": "no worker is running",
    }
    if Path(CHROMIUM).exists():
        with page_of(stack) as page:
            # The list waits up to 3 s for each automation's counters, then shows without them.
            page.goto("/automations#/")
            expect(page.locator("#no-worker")).to_contain_text(
                "No worker is running", timeout=10_000
            )
            page.goto(f"/automations#/a/{automation['id']}")
            expect(page.locator("#not-evaluating")).to_have_text(
                "This automation is not evaluating: no worker is running", timeout=10_000
            )

    stack.start_worker()
    started = time.monotonic()
    eventually(lambda: health(stack).status_code == 200, 30, what="a 200 after the restart")
    print(f"worker restarted -> /api/health 200 in {time.monotonic() - started:.2f} s")
    assert evaluating(api, automation["id"]) == {"evaluating": True, "problem": None}


# --------------------------------------------------------------------------- wedged automations


async def wedge(temporal: Client, automation_id: str, task_queue: str) -> None:
    """Replace an automation's workflow with a run whose workflow task always fails: its input
    is not an AutomationRun, so the worker cannot even decode it. A workflow bug looks the same
    to Temporal (a workflow task that fails on every attempt)."""
    handle = temporal.get_workflow_handle(workflow_id(automation_id))
    await handle.terminate(reason="test: replaced by a wedged run")
    await temporal.start_workflow(
        WORKFLOW_TYPE,
        {"automation": "not an automation"},
        id=workflow_id(automation_id),
        task_queue=task_queue,
    )


def test_a_wedged_automation_is_named_explained_and_shown_on_the_page(
    stack: Stack, api: httpx.Client
) -> None:
    healthy = create(api, actions=[{"type": "do-nothing"}])
    stuck = create(api, name=f"wedged {uuid.uuid4()}", actions=[{"type": "do-nothing"}])
    with_temporal(stack, lambda client: wedge(client, stuck["id"], stack.env["TASK_QUEUE"]))

    def not_evaluating() -> dict[str, Any] | None:
        state = evaluating(api, stuck["id"])
        return state if state["evaluating"] is False else None

    def named() -> dict[str, Any] | None:
        report = health(stack)
        assert report.status_code == 200, report.text
        return report.json() if stuck["id"] in report.json()["wedged"] else None

    # At once, from its pending workflow task (attempt 2 after the first failure).
    state = eventually(not_evaluating, 15, what="the automation to report it is not evaluating")
    assert state["problem"].startswith("its workflow task keeps failing"), state
    assert "decod" in state["problem"].lower() or "convert" in state["problem"].lower(), state
    assert evaluating(api, healthy["id"]) == {"evaluating": True, "problem": None}

    # Health names it once Temporal flags it (2 failed or timed-out tasks in a row, ~10 s):
    # still 200, since the service works and a restart would not unwedge it.
    report = eventually(named, 60, what="health to name the wedged automation")
    assert report["status"] == "degraded"
    assert report["workers"] is True
    assert healthy["id"] not in report["wedged"]

    if Path(CHROMIUM).exists():
        banners_on_the_page(stack, stuck, healthy)

    # Ended, it is no longer wedged (nor a running automation).
    with_temporal(
        stack, lambda client: client.get_workflow_handle(workflow_id(stuck["id"])).terminate()
    )
    eventually(lambda: health(stack).json()["status"] == "ok", 30, what="health to be ok again")


@contextlib.contextmanager
def page_of(stack: Stack) -> Iterator[Page]:
    """The Automations page in a real headless Chromium; no JavaScript error may occur."""
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page(base_url=stack.base_url)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
            assert errors == [], f"JavaScript errors on the page: {errors}"
        finally:
            browser.close()


def banners_on_the_page(stack: Stack, stuck: dict[str, Any], healthy: dict[str, Any]) -> None:
    """A banner on the wedged automation, none on the other, in the list and in the view."""
    with page_of(stack) as page:
        page.goto("/automations#/")
        stuck_card = page.get_by_role("article", name=stuck["name"])
        expect(stuck_card.get_by_role("alert")).to_contain_text(
            "This automation is not evaluating: its workflow task keeps failing"
        )
        healthy_card = page.get_by_role("article", name=healthy["name"])
        expect(healthy_card).to_be_visible()
        expect(healthy_card.get_by_role("alert")).to_have_count(0)

        page.goto(f"/automations#/a/{stuck['id']}")
        banner = page.locator("#not-evaluating")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text(
            "This automation is not evaluating: its workflow task keeps failing"
        )
        # The rest of the view still shows, though the workflow cannot answer its status.
        expect(page.get_by_role("heading", name=stuck["name"])).to_be_visible()
        expect(page.locator("#counters")).to_contain_text("Counters unavailable")

        page.goto(f"/automations#/a/{healthy['id']}")
        expect(page.locator("#counters")).to_contain_text("Fired 0 times")
        expect(page.locator("#not-evaluating")).to_be_hidden()


# --------------------------------------------------------------------------- fast recovery


async def timer_fired(temporal: Client, automation_id: str) -> bool:
    """The deadline's timer fired on the server: a workflow task waits for a worker."""
    described = await temporal.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=workflow_id(automation_id))
        )
    )
    pending = described.pending_workflow_task
    return pending.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED


def test_a_deadline_missed_while_the_worker_was_down_fires_right_after_it_restarts(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    run = f"prefect.flow-run.{uuid.uuid4()}"
    automation = create(
        api,
        trigger={
            "posture": "Proactive",
            "after": ["prefect.flow-run.Running"],
            "expect": ["prefect.flow-run.Completed"],
            "for_each": ["prefect.resource.id"],
            "match": {"prefect.resource.id": run},
            "within": 10,
        },
        actions=[{"type": "call-webhook", "url": f"{receiver.url}/late", "payload": "late"}],
    )
    assert (
        api.post("/events", json=[event_json("prefect.flow-run.Running", run)]).status_code == 204
    )

    def deadline() -> datetime | None:
        status = api.get(f"/automations/{automation['id']}/status").json()
        return status["next_deadline"] and datetime.fromisoformat(status["next_deadline"])

    due = eventually(deadline, 10, what="the automation to arm its deadline")
    # The crash comes shortly before the deadline, right after the worker answered a query
    # (as while the page shows the automation). The server then counts the dead worker's sticky
    # queue as polled (it does for 10 s after a poll), so the timer's workflow task goes there
    # and waits out the sticky queue timeout before another worker may take it: the case that
    # fired up to 10 s late.
    eventually(
        lambda: datetime.now(UTC) >= due - timedelta(seconds=1.5), 15, what="the crash moment"
    )
    assert deadline() == due
    stack.kill_worker()
    eventually(
        lambda: (
            datetime.now(UTC) >= due
            and with_temporal(stack, lambda client: timer_fired(client, automation["id"]))
        ),
        30,
        what="the timer to fire",
    )
    assert receiver.requests_snapshot("/late") == []

    polling_lines = stack.log_tail("worker", 10_000).count("worker polling task queue")
    stack.start_worker()
    restarted = time.time()
    eventually(
        lambda: stack.log_tail("worker", 10_000).count("worker polling task queue") > polling_lines,
        30,
        what="the new worker to poll",
    )
    polling = time.time()
    (call,) = receiver.wait_for(1, "/late", timeout=30)
    delay = call.received_at - restarted
    # The worker process needs ~1-2 s to start and poll; the task then may wait out the rest of
    # the sticky queue timeout (1 s; the SDK's default of 10 s made this ~10 s).
    print(
        f"worker restarted -> missed deadline fired in {delay:.2f} s "
        f"(the worker polled after {polling - restarted:.2f} s, fired "
        f"{call.received_at - polling:.2f} s later; {call.received_at - due.timestamp():.2f} s "
        "after the deadline)"
    )
    assert delay < 5
    assert evaluating(api, automation["id"]) == {"evaluating": True, "problem": None}


# --------------------------------------------------------------------------- durability


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # the thread ended while we looked
    return found


def test_automations_dev_sqlite_sync_full_reaches_the_dev_server(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "temporal_automations.cli", "dev", "--no-ui"]
    command += ["--port", str(port), "--temporal-port", str(free_port())]
    command += ["--data-dir", str(tmp_path), "--sqlite-sync", "full"]
    log_path = tmp_path / "dev.log"
    env = {k: v for k, v in os.environ.items() if k != "API_KEY"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:

        def server_pid() -> int | None:
            for child in children(process.pid):
                if "start-dev" in cmdline(child):
                    return child
            return None

        pid = eventually(server_pid, 30, what=f"the dev server process:\n{log_path.read_text()}")
        args = cmdline(pid)
        pragmas = [args[i + 1] for i, arg in enumerate(args) if arg == "--sqlite-pragma"]
        assert pragmas == ["journal_mode=wal", "synchronous=full"]
        assert args[args.index("--db-filename") + 1] == str(tmp_path / "temporal.db")
        eventually(
            lambda: "synchronous=full" in log_path.read_text(),
            10,
            what="the start-up line to say so",
        )
    finally:
        process.send_signal(signal.SIGTERM)  # it stops the dev server itself, by PID
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_sqlite_sync_is_refused_where_there_is_no_data_file() -> None:
    command = [sys.executable, "-m", "temporal_automations.cli", "dev", "--ephemeral"]
    command += ["--port", str(free_port()), "--sqlite-sync", "full"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "--sqlite-sync applies to the dev server's data file" in done.stderr
