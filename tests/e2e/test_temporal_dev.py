"""`automations dev --watch-temporal`: the dev server's own workflows become events that fire
automations, with nothing else to run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import uuid
from pathlib import Path

import httpx
from temporalio.client import Client

from temporal_automations.devserver import free_port
from tests.e2e.test_cli import CLI, ROOT, descendants, kill_leftovers, wait_healthy
from tests.support import Receiver, eventually


async def test_dev_with_watch_temporal_fires_on_a_terminated_workflow(
    tmp_path: Path, receiver: Receiver
) -> None:
    port, temporal_port = free_port(), free_port()
    command = [*CLI, "dev", "--port", str(port), "--no-ui", "--ephemeral"]
    command += ["--temporal-port", str(temporal_port), "--watch-temporal", "default"]
    log_path = tmp_path / "dev.log"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path), "TEMPORAL_BRIDGE_POLL_INTERVAL": "0.2"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    spawned: list[int] = []
    try:
        assert await asyncio.to_thread(wait_healthy, port, process, 60), log_path.read_text()
        spawned = descendants(process.pid)
        api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api", timeout=30)
        workflow_id = f"nobody-runs-this-{uuid.uuid4().hex[:6]}"
        created = api.post(
            "/automations/",
            json={
                "name": "terminated workflows",
                "trigger": {
                    "posture": "Reactive",
                    "expect": ["temporal.workflow.terminated"],
                    "match": {"prefect.resource.id": f"temporal.workflow.{workflow_id}"},
                },
                "actions": [
                    {
                        "type": "call-webhook",
                        "url": f"{receiver.url}/terminated",
                        "payload": "{{ event.payload.reason }}",
                    }
                ],
            },
        )
        assert created.status_code == 201, created.text
        client = await Client.connect(f"127.0.0.1:{temporal_port}")
        handle = await client.start_workflow("Nobody", id=workflow_id, task_queue="nowhere")
        await handle.terminate(reason="not needed after all")
        (hook,) = await asyncio.to_thread(
            eventually, lambda: receiver.requests_snapshot("/terminated"), 60
        )
        assert hook.body == b"not needed after all"
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_leftovers(spawned)


def test_the_bridge_command_has_its_connection_flags() -> None:
    shown = subprocess.run(
        [*CLI, "bridge", "temporal", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    ).stdout
    for flag in (
        "--namespace",
        "--temporal-address",
        "--temporal-api-key",
        "--tls-cert",
        "--tls-key",
        "--tls-ca",
        "--poll-interval",
        "--cursor-file",
    ):
        assert flag in shown
