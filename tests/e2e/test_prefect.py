"""Prefect as the orchestrator: the actions on a real `prefect server start`, end to end."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from temporal_automations.devserver import die_with_parent
from temporal_automations.prefect_hooks import state_event
from tests.prefect_server import PREFECT_VENV, ROOT, PrefectServer
from tests.stack import Stack, running_stack
from tests.support import STUCK_TRIGGER, Receiver, eventually, send, settled


@pytest.fixture(scope="module")
def stack(prefect: PrefectServer) -> Iterator[Stack]:
    with running_stack(extra_env={"PREFECT_API_URL": prefect.api_url}) as running:
        yield running


@pytest.fixture
def orchestrator(prefect: PrefectServer) -> Iterator[httpx.Client]:
    with prefect.client() as client:
        yield client


def create(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = api.post("/automations/", json={"name": f"prefect {uuid.uuid4()}", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def prefect_post(orchestrator: httpx.Client, path: str, body: Any) -> Any:
    """Test setup on Prefect: its SQLite database answers 5xx now and then under load."""

    def answered() -> httpx.Response:
        response = orchestrator.post(path, json=body)
        assert response.status_code < 500, f"POST {path}: {response.status_code} {response.text}"
        return response

    response = eventually(answered, timeout=30, interval=0.5)
    assert response.status_code < 300, f"POST {path}: {response.status_code} {response.text}"
    return response.json()


def deployment(orchestrator: httpx.Client, name: str) -> tuple[str, str]:
    """A flow and a deployment of it (no worker needed: runs stay Scheduled)."""
    flow = prefect_post(orchestrator, "/flows/", {"name": f"{name}-flow"})
    made = prefect_post(orchestrator, "/deployments/", {"name": name, "flow_id": flow["id"]})
    return flow["id"], made["id"]


def flow_run(orchestrator: httpx.Client, deployment_id: str, state: str) -> dict[str, Any]:
    run = prefect_post(orchestrator, f"/deployments/{deployment_id}/create_flow_run", {})
    changed = prefect_post(
        orchestrator, f"/flow_runs/{run['id']}/set_state", {"state": {"type": state}, "force": True}
    )
    assert changed["status"] == "ACCEPT", changed
    return orchestrator.get(f"/flow_runs/{run['id']}").json()


class _Run:
    """What a Prefect state hook receives, built from the REST answer."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.__dict__.update(data)


class _State:
    def __init__(self, name: str) -> None:
        self.name, self.type, self.message = name, name.upper(), ""


def hook_event(run: dict[str, Any], state: str) -> dict[str, Any]:
    return state_event(_Run({"name": "flow"}), _Run(run), _State(state))


def state_of(orchestrator: httpx.Client, run_id: str) -> str:
    return orchestrator.get(f"/flow_runs/{run_id}").json()["state"]["type"]


# --------------------------------------------------------------------------- scenarios


def test_a_stuck_run_is_cancelled_and_one_that_completes_is_not(
    api: httpx.Client, orchestrator: httpx.Client
) -> None:
    _, deployment_id = deployment(orchestrator, f"stuck-{uuid.uuid4().hex[:6]}")
    stuck = flow_run(orchestrator, deployment_id, "RUNNING")
    healthy = flow_run(orchestrator, deployment_id, "RUNNING")
    automation = create(
        api,
        trigger={
            **STUCK_TRIGGER,
            "match_related": {"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
            "within": 10,
        },
        actions=[{"type": "cancel-flow-run"}],
    )
    send(api, hook_event(stuck, "Running"), hook_event(healthy, "Running"))
    # Both runs are being watched, each with its own deadline; then one of them completes.
    watching = settled(api, automation["id"], received=2)
    assert watching["open_windows"] == 2 and watching["stats"]["firings"] == 0
    completed = prefect_post(
        orchestrator,
        f"/flow_runs/{healthy['id']}/set_state",
        {"state": {"type": "COMPLETED"}, "force": True},
    )
    assert completed["status"] == "ACCEPT", completed
    send(api, hook_event(healthy, "Completed"))

    assert eventually(lambda: state_of(orchestrator, stuck["id"]) in {"CANCELLING", "CANCELLED"})
    # Both deadlines were the same: once the stuck run's firing has been acted on, the healthy
    # run's would have been too. One firing, for the stuck run alone.
    final = settled(api, automation["id"], received=3)
    assert final["stats"]["firings"] == 1
    (firing,) = final["stats"]["recent"]
    assert firing["labels"] == {"prefect.resource.id": f"prefect.flow-run.{stuck['id']}"}
    assert [action["status"] for action in firing["actions"]] == ["executed"]
    assert state_of(orchestrator, healthy["id"]) == "COMPLETED"


def test_a_failed_flow_run_runs_the_clean_up_deployment_once_with_templated_parameters(
    prefect: PrefectServer, stack: Stack, api: httpx.Client, orchestrator: httpx.Client
) -> None:
    flow_name = f"nightly-etl-{uuid.uuid4().hex[:6]}"
    _, cleanup = deployment(orchestrator, f"cleanup-{uuid.uuid4().hex[:6]}")
    automation = create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["prefect.flow-run.Failed"],
            "match_related": {"prefect.resource.role": "flow", "prefect.resource.name": flow_name},
        },
        actions=[
            {
                "type": "run-deployment",
                "source": "selected",
                "deployment_id": cleanup,
                "parameters": {"failed_run": "{{ event.resource.id }}", "flow": "{{ flow.name }}"},
            }
        ],
    )
    # A real flow, run in Prefect's venv, fails; its on_failure hook (our helper) sends the event.
    result = prefect.run_python(
        "import os\n"
        f"os.environ['AUTOMATIONS_API_URL'] = {stack.api_url!r}\n"
        "from prefect import flow\n"
        "from temporal_automations.prefect_hooks import send_state_event\n"
        f"@flow(name={flow_name!r}, on_failure=[send_state_event])\n"
        "def etl():\n"
        "    raise ValueError('boom')\n"
        "state = etl(return_state=True)\n"
        "print(state.state_details.flow_run_id)\n"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    failed_run = result.stdout.strip().splitlines()[-1]

    def cleanup_runs() -> list[dict[str, Any]]:
        body = {"flow_runs": {"deployment_id": {"any_": [cleanup]}}}
        response = orchestrator.post("/flow_runs/filter", json=body)
        return response.json() if response.status_code == 200 else []  # Prefect's 5xx: again

    eventually(cleanup_runs)
    # Once the automation has settled, its action has finished for good (no retry to come).
    final = settled(api, automation["id"], received=1)
    assert final["stats"]["firings"] == 1
    assert final["stats"]["recent"][0]["actions"][0]["status"] == "executed"
    assert [r["parameters"] for r in cleanup_runs()] == [  # once
        {"failed_run": f"prefect.flow-run.{failed_run}", "flow": flow_name}
    ]


def test_an_unhealthy_work_queue_is_paused_then_resumed_on_resolve(
    api: httpx.Client, orchestrator: httpx.Client
) -> None:
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    prefect_post(orchestrator, "/work_pools/", {"name": pool, "type": "process"})
    queue = prefect_post(orchestrator, f"/work_pools/{pool}/queues", {"name": "critical"})
    queue_resource = {
        "prefect.resource.id": f"prefect.work-queue.{queue['id']}",
        "prefect.resource.name": "critical",
    }
    create(
        api,
        trigger={
            "posture": "Proactive",
            "after": ["prefect.work-queue.not-ready"],
            "expect": ["prefect.work-queue.ready"],
            "for_each": ["prefect.resource.id"],
            "match": {"prefect.resource.id": queue_resource["prefect.resource.id"]},
            "within": 10,
        },
        actions=[{"type": "pause-work-queue", "source": "inferred"}],
        actions_on_resolve=[{"type": "resume-work-queue", "source": "inferred"}],
    )

    def paused() -> bool:
        return orchestrator.get(f"/work_queues/{queue['id']}").json()["is_paused"]

    not_ready = {
        "id": str(uuid.uuid4()),
        "event": "prefect.work-queue.not-ready",
        "resource": queue_resource,
    }
    send(api, not_ready)
    assert eventually(paused)
    ready = {
        "id": str(uuid.uuid4()),
        "event": "prefect.work-queue.ready",
        "resource": queue_resource,
    }
    send(api, ready)
    assert eventually(lambda: not paused())


def test_pause_and_resume_a_selected_deployment_schedule(
    api: httpx.Client, orchestrator: httpx.Client
) -> None:
    _, deployment_id = deployment(orchestrator, f"scheduled-{uuid.uuid4().hex[:6]}")
    pause, resume = f"ops.pause.{uuid.uuid4()}", f"ops.resume.{uuid.uuid4()}"
    target = {"source": "selected", "deployment_id": deployment_id}
    create(
        api,
        trigger={"posture": "Reactive", "expect": [pause]},
        actions=[{"type": "pause-deployment", **target}],
    )
    create(
        api,
        trigger={"posture": "Reactive", "expect": [resume]},
        actions=[{"type": "resume-deployment", **target}],
    )

    def paused() -> bool:
        return orchestrator.get(f"/deployments/{deployment_id}").json()["paused"]

    send(api, {"event": pause, "resource": {"prefect.resource.id": "ops.console"}})
    assert eventually(paused)
    send(api, {"event": resume, "resource": {"prefect.resource.id": "ops.console"}})
    assert eventually(lambda: not paused())


def test_an_action_without_a_target_fails_with_a_reason(api: httpx.Client) -> None:
    name = f"prefect.flow-run.Orphan{uuid.uuid4().hex[:6]}"
    automation = create(
        api,
        trigger={"posture": "Reactive", "expect": [name]},
        actions=[{"type": "cancel-flow-run"}],
    )
    send(api, {"event": name, "resource": {"prefect.resource.id": "not.a.flow.run"}})

    def failed() -> dict[str, Any] | None:
        recent = api.get(f"/automations/{automation['id']}/status").json()["stats"]["recent"]
        actions = recent[0]["actions"] if recent else []
        return actions[0] if actions and actions[0]["status"] == "failed" else None

    action = eventually(failed)
    assert action and "no flow-run could be inferred" in action["detail"]


def test_a_self_triggering_run_deployment_automation_is_refused(api: httpx.Client) -> None:
    refused = api.post(
        "/automations/",
        json={
            "name": "endless",
            "trigger": {"posture": "Reactive", "expect": ["prefect.flow-run.*"]},
            "actions": [{"type": "run-deployment", "source": "inferred"}],
        },
    )
    assert refused.status_code == 422 and "trigger itself forever" in refused.text


# --------------------------------------------------------------------------- the bridge


def start_bridge(prefect: PrefectServer, stack: Stack, log: Any) -> subprocess.Popen[bytes]:
    env = {**stack.env, "PREFECT_API_URL": prefect.api_url}
    return subprocess.Popen(
        [sys.executable, "-m", "temporal_automations.cli", "bridge", "prefect"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent,
    )  # fmt: skip


def await_subscriptions(bridge: subprocess.Popen[bytes], log_path: Path, count: int) -> None:
    """Until the bridge log says it subscribed `count` times in all (it sent its filter)."""

    def subscribed() -> bool:
        text = log_path.read_text(errors="replace")
        assert bridge.poll() is None, f"the bridge exited ({bridge.returncode}):\n{text[-2000:]}"
        assert text.count("subscribed to ") >= count, text[-2000:]
        return True

    eventually(subscribed, timeout=60, what="the bridge subscribed to Prefect's events")


def persisted_in_prefect(orchestrator: httpx.Client, event: str, resource_id: str) -> bool:
    """Prefect has stored the event: a bridge that connects now gets it in its backfill."""
    body = {"filter": {"event": {"name": [event]}, "resource": {"id": [resource_id]}}}
    response = orchestrator.post("/events/filter", json=body)
    return response.status_code == 200 and bool(response.json()["events"])


def test_the_bridge_carries_prefects_own_events_and_resumes_without_loss_or_duplicates(
    prefect: PrefectServer,
    stack: Stack,
    api: httpx.Client,
    orchestrator: httpx.Client,
    tmp_path: Path,
) -> None:
    _, deployment_id = deployment(orchestrator, f"bridged-{uuid.uuid4().hex[:6]}")
    with Receiver() as receiver:
        automation = create(
            api,
            trigger={
                "posture": "Reactive",
                "expect": ["prefect.flow-run.Completed"],
                "for_each": ["prefect.resource.id"],
                "match_related": {"prefect.resource.id": f"prefect.deployment.{deployment_id}"},
            },
            actions=[
                {
                    "type": "call-webhook",
                    "url": f"{receiver.url}/bridged",
                    "payload": "{{ event.resource.id }}",
                }
            ],
        )

        def bridged() -> list[str]:
            return [c.body.decode() for c in receiver.requests_snapshot("/bridged")]

        log_path = tmp_path / "bridge.log"
        log = log_path.open("ab")
        bridge = start_bridge(prefect, stack, log)
        try:
            await_subscriptions(bridge, log_path, 1)
            first = flow_run(orchestrator, deployment_id, "COMPLETED")  # Prefect emits the event
            assert [c.body.decode() for c in receiver.wait_for(1, "/bridged", timeout=30)] == [
                f"prefect.flow-run.{first['id']}"
            ]

            bridge.kill()  # a crash: the next event happens while nobody listens
            bridge.wait()
            second = flow_run(orchestrator, deployment_id, "COMPLETED")
            second_id = f"prefect.flow-run.{second['id']}"
            eventually(
                lambda: persisted_in_prefect(orchestrator, "prefect.flow-run.Completed", second_id)
            )
            bridge = start_bridge(prefect, stack, log)
            await_subscriptions(bridge, log_path, 2)
            # The new bridge backfills the last minute (`first` again, and `second`), then goes
            # live: `third` reaches the automation after both, which takes events in order.
            assert len(receiver.wait_for(2, "/bridged", timeout=40)) >= 2, log_path.read_text()
            third = flow_run(orchestrator, deployment_id, "COMPLETED")
            third_id = f"prefect.flow-run.{third['id']}"
            eventually(lambda: third_id in bridged())
            final = settled(api, automation["id"], received=3)
            assert final["stats"]["firings"] == 3
            assert sorted(bridged()) == sorted(
                [f"prefect.flow-run.{first['id']}", second_id, third_id]
            ), log_path.read_text()[-2000:]
        finally:
            bridge.kill()
            bridge.wait()
            log.close()


# --------------------------------------------------------------------------- Prefect's clients


def test_prefects_own_cli_and_automation_class_work_against_our_api(
    prefect: PrefectServer, tmp_path: Path
) -> None:
    """Prefect's CLI and Python client, unchanged, with PREFECT_API_URL pointed at us.

    A stack of its own: Prefect's client parses every listed automation with Prefect's schema,
    which has no `url` form of call-webhook / send-notification (README, "Known limits")."""
    with running_stack() as stack, stack.sync_client() as api:
        check_prefect_clients(prefect, stack, api, tmp_path)


def check_prefect_clients(
    prefect: PrefectServer, stack: Stack, api: httpx.Client, tmp_path: Path
) -> None:
    name = f"from-prefect-{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "automation.json"
    spec.write_text(
        json.dumps(
            {
                "name": name,
                "trigger": {"type": "event", "posture": "Reactive", "expect": ["ops.ping"]},
                "actions": [{"type": "do-nothing"}],
            }
        )
    )
    env = {**prefect.env, "PREFECT_API_URL": stack.api_url}

    def cli(*args: str) -> str:
        result = subprocess.run(
            [str(PREFECT_VENV / "bin" / "prefect"), *args],
            env=env, capture_output=True, text=True, input="y\n", timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr[-2000:]
        return result.stdout

    assert "Created automation" in cli("automation", "create", "-f", str(spec))
    assert name in cli("automation", "ls")
    assert "ops.ping" in cli("automation", "inspect", name)
    (created,) = api.post(
        "/automations/filter", json={"automations": {"name": {"any_": [name]}}}
    ).json()
    cli("automation", "pause", name)
    assert api.get(f"/automations/{created['id']}").json()["enabled"] is False
    cli("automation", "resume", name)
    assert api.get(f"/automations/{created['id']}").json()["enabled"] is True
    cli("automation", "delete", name)
    assert api.get(f"/automations/{created['id']}").status_code == 404

    script = (
        "from prefect.automations import Automation\n"
        "from prefect.events.actions import DoNothing\n"
        "from prefect.events.schemas.automations import EventTrigger, Posture\n"
        f"made = Automation(name={name + '-py'!r}, trigger=EventTrigger(expect={{'ops.x'}},"
        " posture=Posture.Reactive), actions=[DoNothing()]).create()\n"
        "read = Automation.read(id=made.id)\n"
        "read.disable()\n"
        "assert Automation.read(id=made.id).enabled is False\n"
        "read.enable()\n"
        "print(made.id)\n"
    )
    result = subprocess.run(
        [str(PREFECT_VENV / "bin" / "python"), "-c", script],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    made_id = result.stdout.strip().splitlines()[-1]
    assert api.get(f"/automations/{made_id}").json()["enabled"] is True

    # Composite triggers through Prefect's own CLI and client (its JSON, its schema).
    compound = tmp_path / "compound.json"
    compound.write_text(
        json.dumps(
            {
                "name": f"{name}-compound",
                "trigger": {
                    "type": "compound",
                    "require": "all",
                    "within": 300,
                    "triggers": [
                        {"type": "event", "posture": "Reactive", "expect": ["ops.a"]},
                        {"type": "event", "posture": "Proactive", "expect": ["ops.b"]},
                    ],
                },
                "actions": [{"type": "do-nothing"}],
            }
        )
    )
    assert "Created automation" in cli("automation", "create", "-f", str(compound))
    assert "ops.b" in cli("automation", "inspect", f"{name}-compound")
    script = (
        "from prefect.automations import Automation\n"
        "from prefect.events.actions import DoNothing\n"
        "from prefect.events.schemas.automations import EventTrigger, Posture, SequenceTrigger\n"
        f"made = Automation(name={name + '-seq'!r}, trigger=SequenceTrigger(within=60, triggers=["
        "EventTrigger(expect={'ops.a'}, posture=Posture.Reactive),"
        "EventTrigger(expect={'ops.b'}, posture=Posture.Reactive)]), actions=[DoNothing()]"
        ").create()\n"
        "assert isinstance(Automation.read(id=made.id).trigger, SequenceTrigger)\n"
        "print(made.id)\n"
    )
    result = subprocess.run(
        [str(PREFECT_VENV / "bin" / "python"), "-c", script],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    made_id = result.stdout.strip().splitlines()[-1]
    stored = api.get(f"/automations/{made_id}").json()["trigger"]
    assert stored["type"] == "sequence" and stored["within"] == 60


def test_flow_run_and_work_pool_actions(
    api: httpx.Client, orchestrator: httpx.Client, receiver: Receiver
) -> None:
    _, deployment_id = deployment(orchestrator, f"states-{uuid.uuid4().hex[:6]}")
    run = flow_run(orchestrator, deployment_id, "RUNNING")
    marks = {verb: f"ops.{verb}.{uuid.uuid4().hex[:6]}" for verb in ("fail", "suspend", "resume")}
    create(
        api,
        trigger={"posture": "Reactive", "expect": [marks["fail"]]},
        actions=[
            {
                "type": "change-flow-run-state",
                "state": "FAILED",
                "message": "by hand",
                "force": True,
            }
        ],
    )
    create(
        api,
        trigger={"posture": "Reactive", "expect": [marks["suspend"]]},
        actions=[{"type": "suspend-flow-run"}],
    )
    create(
        api,
        trigger={"posture": "Reactive", "expect": [marks["resume"]]},
        actions=[{"type": "resume-flow-run"}],
    )
    run_resource = {"prefect.resource.id": f"prefect.flow-run.{run['id']}"}

    send(api, {"event": marks["suspend"], "resource": run_resource})
    assert eventually(lambda: state_of(orchestrator, run["id"]) == "PAUSED")
    assert orchestrator.get(f"/flow_runs/{run['id']}").json()["state"]["name"] == "Suspended"
    send(api, {"event": marks["resume"], "resource": run_resource})
    assert eventually(lambda: state_of(orchestrator, run["id"]) != "PAUSED")
    send(api, {"event": marks["fail"], "resource": run_resource})
    assert eventually(lambda: state_of(orchestrator, run["id"]) == "FAILED")

    pool = prefect_post(
        orchestrator, "/work_pools/", {"name": f"pool-{uuid.uuid4().hex[:6]}", "type": "process"}
    )
    pool_resource = {"prefect.resource.id": f"prefect.work-pool.{pool['id']}"}
    create(
        api,
        trigger={
            "posture": "Reactive",
            "expect": ["prefect.work-pool.not-ready"],
            "match": pool_resource,
        },
        actions=[
            {"type": "pause-work-pool", "source": "inferred"},
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/pool",
                "payload": "{{ work_pool.name }}",
            },
        ],
        actions_on_resolve=[{"type": "resume-work-pool", "source": "inferred"}],
    )
    send(api, {"event": "prefect.work-pool.not-ready", "resource": pool_resource})
    assert eventually(lambda: orchestrator.get(f"/work_pools/{pool['name']}").json()["is_paused"])
    # Templates may name the pool: fetched from Prefect because the template uses it.
    assert [c.body.decode() for c in receiver.wait_for(1, "/pool")] == [pool["name"]]


def test_webhook_and_notification_through_prefect_blocks(
    prefect: PrefectServer, api: httpx.Client
) -> None:
    with Receiver() as receiver:
        script = (
            "from prefect.blocks.webhook import Webhook\n"
            "for path in ('hook', 'notify'):\n"
            f"    block = Webhook(url={receiver.url!r} + '/block-' + path, method='POST',"
            " headers={'X-From': 'block'})\n"
            f"    print(block.save('b-' + path + '-{uuid.uuid4().hex[:6]}'))\n"
        )
        result = prefect.run_python(script)
        assert result.returncode == 0, result.stderr[-2000:]
        hook_block, notify_block = result.stdout.split()[-2:]
        name = f"ops.blocks.{uuid.uuid4().hex[:6]}"
        create(
            api,
            trigger={"posture": "Reactive", "expect": [name]},
            actions=[
                {
                    "type": "call-webhook",
                    "block_document_id": hook_block,
                    "payload": "{{ event.event }}",
                },
                {
                    "type": "send-notification",
                    "block_document_id": notify_block,
                    "subject": "s",
                    "body": "{{ event.event }}",
                },
            ],
        )
        send(api, {"event": name, "resource": {"prefect.resource.id": "ops"}})
        (hook,) = receiver.wait_for(1, "/block-hook", timeout=20)
        assert hook.body.decode() == name and hook.headers["X-From"] == "block"
        (note,) = receiver.wait_for(1, "/block-notify", timeout=20)
        assert note.json == {"subject": "s", "body": name}
