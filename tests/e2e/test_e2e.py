"""End to end through the HTTP API, on a real stack: dev server, worker and API processes."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from temporalio.client import Client, WorkflowExecutionStatus

from temporal_automations.domain.automations import SECRET_MASK
from temporal_automations.settings import Settings
from temporal_automations.temporal import workflow_id
from tests.stack import Stack, running_stack
from tests.support import (
    Receiver,
    automation_status,
    event_json,
    eventually,
    is_settled,
    send,
    settled,
)


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    body = {"name": f"e2e {uuid.uuid4()}", "trigger": {"posture": "Reactive"}, **fields}
    response = api.post("/automations/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def webhook(
    receiver: Receiver, path: str, payload: str = "{{ event.resource.id }}"
) -> dict[str, Any]:
    return {"type": "call-webhook", "url": f"{receiver.url}{path}", "payload": payload}


def bodies(receiver: Receiver, path: str) -> list[str]:
    return [request.body.decode() for request in receiver.requests_snapshot(path)]


def workflow_status(stack: Stack, automation_id: str) -> WorkflowExecutionStatus | None:
    """What Temporal itself says of the automation's workflow."""

    async def describe() -> WorkflowExecutionStatus | None:
        client = await Client.connect(stack.temporal_address)
        return (await client.get_workflow_handle(workflow_id(automation_id)).describe()).status

    return asyncio.run(describe())


def workflow_task_timeout(stack: Stack, automation_id: str) -> timedelta:
    """The workflow task timeout of the automation's current run."""

    async def describe() -> timedelta:
        client = await Client.connect(stack.temporal_address)
        handle = client.get_workflow_handle(workflow_id(automation_id))
        config = (await handle.describe()).raw_description.execution_config
        return config.default_workflow_task_timeout.ToTimedelta()

    return asyncio.run(describe())


# --------------------------------------------------------------------------- CRUD


def test_create_read_list_count_and_validation(api: httpx.Client) -> None:
    tag = f"t-{uuid.uuid4()}"
    # Never fired: two automations that take every event would set off a storm between them
    # (each reacting to the other's lifecycle events) in the tests that follow.
    never = {"posture": "Reactive", "expect": [f"never.{tag}"]}
    first = create(
        api, name=f"b {tag}", tags=[tag], trigger=never, actions=[{"type": "do-nothing"}]
    )
    create(
        api, name=f"a {tag}", tags=[tag, "other"], trigger=never, actions=[{"type": "do-nothing"}]
    )
    assert {"id", "created", "updated"} <= first.keys()
    assert api.get(f"/automations/{first['id']}").json()["name"] == f"b {tag}"

    def listed(**body: Any) -> list[str]:
        response = api.post("/automations/filter", json=body)
        assert response.status_code == 200, response.text
        return [a["name"] for a in response.json()]

    mine = {"automations": {"tags": {"all_": [tag]}}}
    assert listed(sort="NAME_ASC", **mine) == [f"a {tag}", f"b {tag}"]
    assert listed(sort="NAME_DESC", **mine) == [f"b {tag}", f"a {tag}"]
    assert listed(sort="CREATED_DESC", **mine) == [f"a {tag}", f"b {tag}"]
    assert listed(sort="NAME_ASC", limit=1, offset=1, **mine) == [f"b {tag}"]
    assert listed(automations={"name": {"any_": [f"a {tag}"]}}) == [f"a {tag}"]
    assert api.post("/automations/count", json=mine).json() == 2

    unknown = api.post("/automations/", json={**first, "bogus": True})
    assert unknown.status_code == 422 and "bogus" in unknown.text
    short = api.post(
        "/automations/",
        json={"name": "x", "trigger": {"posture": "Proactive", "within": 5}, "actions": []},
    )
    assert short.status_code == 422 and "within" in short.text
    missing = api.post("/automations/", json={"name": "x", "trigger": {}, "actions": []})
    assert missing.status_code == 422 and "posture" in missing.text
    assert api.get(f"/automations/{uuid.uuid4()}").status_code == 404


def test_fire_pause_resume_replace_delete(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    run = f"prefect.flow-run.{uuid.uuid4()}"
    automation = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["prefect.flow-run.Failed"],
            "match": {"prefect.resource.id": run},
        },
        actions=[webhook(receiver, "/crud", "{{ automation.name }}|{{ event.resource.id }}")],
    )
    send(api, event_json("prefect.flow-run.Failed", run))
    (call,) = receiver.wait_for(1, "/crud")
    assert call.body.decode() == f"{automation['name']}|{run}"
    assert call.headers["Idempotency-Key"].startswith(automation["id"])

    send(api, event_json("prefect.flow-run.Completed", run))  # does not match
    assert (
        api.patch(f"/automations/{automation['id']}", json={"enabled": False}).json()["enabled"]
        is False
    )
    assert api.get(f"/automations/{automation['id']}").json()["enabled"] is False
    send(api, event_json("prefect.flow-run.Failed", run))  # while paused: not acted on

    api.patch(f"/automations/{automation['id']}", json={"enabled": True})
    send(api, event_json("prefect.flow-run.Failed", run))
    assert len(receiver.wait_for(2, "/crud")) == 2
    # The automation takes events, pause and resume in order: once the event sent after the
    # resume is worked off, whatever the paused one could have set off has happened too.
    assert settled(api, automation["id"], received=2)["stats"]["firings"] == 2
    assert len(receiver.requests_snapshot("/crud")) == 2

    replaced = api.put(
        f"/automations/{automation['id']}",
        json={
            "name": "replaced",
            "trigger": {
                "posture": "Reactive",
                "expect": ["prefect.flow-run.Crashed"],
                "match": {"prefect.resource.id": run},
            },
            "actions": [webhook(receiver, "/crud", "replaced")],
        },
    )
    assert replaced.status_code == 200 and replaced.json()["created"] == automation["created"]
    send(
        api, event_json("prefect.flow-run.Failed", run), event_json("prefect.flow-run.Crashed", run)
    )
    calls = receiver.wait_for(3, "/crud")
    assert [c.body.decode() for c in calls][2:] == ["replaced"]
    assert settled(api, automation["id"], received=3)["stats"]["firings"] == 3

    assert api.delete(f"/automations/{automation['id']}").status_code == 204
    assert api.get(f"/automations/{automation['id']}").status_code == 404
    # Deleted means ended: a terminated workflow starts no action, and none was still running.
    assert workflow_status(stack, automation["id"]) == WorkflowExecutionStatus.TERMINATED
    send(api, event_json("prefect.flow-run.Crashed", run))
    assert len(receiver.requests_snapshot("/crud")) == 3


# --------------------------------------------------------------------------- events


def test_duplicates_invalid_and_oversized_events(api: httpx.Client, receiver: Receiver) -> None:
    name = f"e2e.dedupe.{uuid.uuid4()}"
    automation = create(
        api,
        trigger={"posture": "Reactive", "expect": [name]},
        actions=[webhook(receiver, "/dedupe")],
    )
    event = event_json(name, "prefect.flow-run.1")
    send(api, event)
    send(api, event, event)
    assert len(receiver.wait_for(1, "/dedupe")) == 1

    good = event_json(name, "prefect.flow-run.2")
    bad = {"event": name, "resource": {"no-id": "x"}}
    refused = api.post("/events", json=[good, bad])
    assert refused.status_code == 422 and "prefect.resource.id" in refused.text
    assert api.post("/events", json={"not": "a list"}).status_code == 422
    huge = event_json(name, "prefect.flow-run.3", payload={"blob": "x" * 1_600_000})
    assert api.post("/events", json=[huge]).status_code == 413

    # A sentinel after all of it: the automation takes its events in order, so once the
    # sentinel has fired and every action has finished, the duplicates and the refused
    # events have had all the effect they will ever have.
    send(api, event_json(name, "prefect.flow-run.sentinel"))
    eventually(lambda: "prefect.flow-run.sentinel" in bodies(receiver, "/dedupe"))
    assert settled(api, automation["id"], received=2)["stats"]["firings"] == 2
    assert bodies(receiver, "/dedupe") == ["prefect.flow-run.1", "prefect.flow-run.sentinel"]


def test_lifecycle_events_feed_other_automations_but_never_their_own(
    api: httpx.Client, receiver: Receiver
) -> None:
    name = f"e2e.chain.{uuid.uuid4()}"
    first = create(
        api, trigger={"posture": "Reactive", "expect": [name]}, actions=[{"type": "do-nothing"}]
    )
    second = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["prefect.automation.action.executed"],
            "match": {"prefect.resource.id": f"prefect.automation.{first['id']}"},
        },
        actions=[webhook(receiver, "/chained", "{{ event.event }}")],
    )
    # Listens to everything, its own lifecycle events included: it must not loop on them.
    greedy = create(api, trigger={"posture": "Reactive"}, actions=[{"type": "do-nothing"}])
    greedy_resource = f"prefect.automation.{greedy['id']}"
    # Fires on greedy's `action.executed` for the marker event, and on nothing else (its own
    # lifecycle events name other triggering events): when it acts, every lifecycle event
    # greedy emitted before that one has been through the API, which sends an automation its
    # own lifecycle events never (and had it sent them, they were delivered by then).
    marker = event_json(f"e2e.chain.marker.{uuid.uuid4()}", "prefect.flow-run.marker")
    watcher = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["prefect.automation.action.executed"],
            "match": {"prefect.resource.id": greedy_resource},
            "match_related": {"prefect.resource.id": f"prefect.event.{marker['id']}"},
        },
        actions=[webhook(receiver, "/greedy-out", "{{ event.event }}")],
    )
    try:
        send(api, event_json(name, "prefect.flow-run.chain"))
        (call,) = receiver.wait_for(1, "/chained", timeout=30)
        assert call.body == b"prefect.automation.action.executed"

        def greedy_settled_after(**cause: str) -> dict[str, Any] | None:
            """Greedy's status once it has fired on an event like `cause` and settled."""
            current = automation_status(api, greedy["id"])
            fired = any(
                all(firing[f"event_{key}"] == value for key, value in cause.items())
                for firing in current["stats"]["recent"]
            )
            return current if fired and is_settled(current) else None

        # The chain's last link reached greedy: second's `action.executed`, emitted after all
        # of second's and first's other lifecycle events. Then greedy's outbox holds the
        # lifecycle events of every firing so far, and emits them, in order, before the
        # marker's.
        last_link = {
            "name": "prefect.automation.action.executed",
            "resource_id": f"prefect.automation.{second['id']}",
        }
        eventually(lambda: greedy_settled_after(**last_link), timeout=30)
        send(api, marker)
        assert receiver.wait_for(1, "/greedy-out", timeout=30)
        # A closing event: once greedy has fired on it and settled, it has worked off every
        # event delivered to it before, its own included had there been any.
        closing = event_json(f"e2e.chain.closing.{uuid.uuid4()}", "prefect.flow-run.closing")
        send(api, closing)
        final = eventually(lambda: greedy_settled_after(id=closing["id"]), timeout=30)

        causes = [firing["event_resource_id"] for firing in final["stats"]["recent"]]
        assert greedy_resource not in causes  # never fired on its own lifecycle events
        assert final["stats"]["chain_cut"] == 0  # so no chain of them was ever cut either
        assert automation_status(api, second["id"])["stats"]["firings"] == 1
        assert automation_status(api, watcher["id"])["stats"]["firings"] == 1
        assert len(receiver.requests_snapshot("/chained")) == 1
        assert bodies(receiver, "/greedy-out") == ["prefect.automation.action.executed"]
    finally:
        api.delete(f"/automations/{greedy['id']}")
        api.delete(f"/automations/{watcher['id']}")


def test_pause_and_resume_automation_actions(api: httpx.Client) -> None:
    target = create(
        api, trigger={"posture": "Reactive", "expect": ["never"]}, actions=[{"type": "do-nothing"}]
    )
    pause_name, resume_name = f"e2e.pause.{uuid.uuid4()}", f"e2e.resume.{uuid.uuid4()}"
    create(
        api,
        trigger={"posture": "Reactive", "expect": [pause_name]},
        actions=[{"type": "pause-automation", "source": "selected", "automation_id": target["id"]}],
    )
    create(
        api,
        trigger={"posture": "Reactive", "expect": [resume_name]},
        actions=[{"type": "resume-automation", "source": "inferred"}],
    )
    send(api, event_json(pause_name, "prefect.flow-run.p"))
    assert eventually(lambda: api.get(f"/automations/{target['id']}").json()["enabled"] is False)
    send(api, event_json(resume_name, f"prefect.automation.{target['id']}"))
    assert eventually(lambda: api.get(f"/automations/{target['id']}").json()["enabled"] is True)


def test_a_lagging_source_holds_a_proactive_deadline_until_it_catches_up(
    api: httpx.Client, receiver: Receiver
) -> None:
    """A bridge behind by two minutes says so (even on an empty POST): the 10 s deadline waits
    for the events that may still come; once it reports no lag, the deadline fires."""
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
        actions=[webhook(receiver, "/lagged")],
    )
    running = datetime.now(UTC)
    send(api, event_json("prefect.flow-run.Running", run))
    bridge = {"X-Events-Source": "test-bridge"}
    assert (
        api.post("/events", json=[], headers={**bridge, "X-Events-Lag": "120"}).status_code == 204
    )

    def held() -> dict[str, Any] | None:
        status = automation_status(api, automation["id"])
        deadline = status["next_deadline"]
        moved = deadline and datetime.fromisoformat(deadline) >= running + timedelta(seconds=120)
        return status if moved else None

    assert eventually(held)["stats"]["firings"] == 0
    assert api.post("/events", json=[], headers={**bridge, "X-Events-Lag": "0"}).status_code == 204
    (call,) = receiver.wait_for(1, "/lagged", timeout=30)
    assert call.body.decode() == run
    for bad in ("soon", "-1", "nan", "1e12"):
        refused = api.post("/events", json=[], headers={**bridge, "X-Events-Lag": bad})
        assert refused.status_code == 422 and "X-Events-Lag" in refused.json()["detail"]


def test_proactive_trigger_fires_on_time(api: httpx.Client, receiver: Receiver) -> None:
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
        actions=[webhook(receiver, "/proactive")],
    )
    sent = time.time()
    send(api, event_json("prefect.flow-run.Running", run))
    (call,) = receiver.wait_for(1, "/proactive", timeout=30)
    lateness = call.received_at - (sent + 10)
    print(f"proactive lateness through the stack: {lateness * 1000:.0f} ms")
    assert -0.5 < lateness < 3  # not before the deadline, and not long after it
    assert settled(api, automation["id"], received=1)["stats"]["firings"] == 1
    assert len(receiver.requests_snapshot("/proactive")) == 1


# --------------------------------------------------------------------------- durability


def test_a_worker_killed_mid_stream_loses_nothing_and_acts_once(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    name = f"e2e.crash.{uuid.uuid4()}"
    automation = create(
        api,
        trigger={"posture": "Reactive", "expect": [name], "for_each": ["prefect.resource.id"]},
        actions=[webhook(receiver, "/crash")],
    )
    runs = [f"prefect.flow-run.{uuid.uuid4()}" for _ in range(200)]
    # What the crashed worker's workflow task holds up the automation for, at most.
    assert workflow_task_timeout(stack, automation["id"]) == Settings().workflow_task_timeout

    def stream(part: list[str]) -> None:
        for run in part:
            send(api, event_json(name, run))  # 204: durable, worker or no worker

    stream(runs[:50])
    stack.kill_worker()  # SIGKILL, right after a burst: firings are being acted on
    print(f"acted on when the worker was killed: {len(bodies(receiver, '/crash'))} of 50")
    stream(runs[50:100])  # accepted while no worker runs
    stack.start_worker()
    stream(runs[100:])  # while the new worker starts and picks up where the old one died

    eventually(lambda: set(bodies(receiver, "/crash")) == set(runs), timeout=120)
    final = settled(api, automation["id"], received=200, timeout=60)
    assert final["stats"]["firings"] == 200  # one firing per run
    calls = receiver.requests_snapshot("/crash")
    assert {c.body.decode() for c in calls} == set(runs)  # every firing acted
    sent = {(c.headers["Idempotency-Key"], c.body.decode()) for c in calls}
    assert len(sent) == 200  # a retried action re-sends its own firing's key, never a new one
    assert len({key for key, _ in sent}) == 200


def test_automations_survive_an_api_restart(
    stack: Stack, api: httpx.Client, receiver: Receiver
) -> None:
    name = f"e2e.restart.{uuid.uuid4()}"
    automation = create(
        api,
        trigger={"posture": "Reactive", "expect": [name]},
        actions=[webhook(receiver, "/restart")],
        actions_on_trigger=[
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/restart-secret",
                "headers": {"X-Token": "s3cret"},
            }
        ],
    )
    stack.restart_api()
    with stack.sync_client() as fresh:
        read = fresh.get(f"/automations/{automation['id']}").json()
        assert read["name"] == automation["name"]
        # Shown masked (as every answer shows secrets); the webhook below gets the real one.
        assert read["actions_on_trigger"][0]["headers"] == {"X-Token": SECRET_MASK}
        send(fresh, event_json(name, "prefect.flow-run.r"))
    assert len(receiver.wait_for(1, "/restart")) == 1
    assert receiver.wait_for(1, "/restart-secret")[0].headers["X-Token"] == "s3cret"


# --------------------------------------------------------------------------- access


def test_api_key_guards_everything_but_health() -> None:
    with running_stack(api_key="k3y") as secured:
        body = {"name": "guarded", "trigger": {"posture": "Reactive"}, "actions": []}
        with httpx.Client(base_url=secured.api_url) as anonymous:
            assert anonymous.get("/health").status_code == 200
            assert anonymous.post("/automations/", json=body).status_code == 401
            wrong = {"Authorization": "Bearer nope"}
            assert anonymous.post("/automations/", json=body, headers=wrong).status_code == 401
            assert anonymous.post("/events", json=[], headers=wrong).status_code == 401
        with secured.sync_client() as client:
            assert client.post("/automations/count", json={}).json() == 0
            assert client.post("/automations/", json=body).status_code == 201
            assert client.post("/automations/count", json={}).json() == 1
