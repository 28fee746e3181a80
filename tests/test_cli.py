"""The `automations` command and the dev server launcher, as a user runs them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from temporalio.client import Client

from automations.devserver import DevServer, free_port

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it runs nothing and holds no port.
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found


async def test_dev_server_starts_serves_and_stops_by_pid() -> None:
    server = DevServer().start()
    try:
        pid = server.process.pid if server.process else 0
        client = await Client.connect(server.address)
        assert await client.service_client.check_health()
    finally:
        server.stop()
    assert not alive(pid)


def test_automations_dev_runs_everything_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    port, temporal_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "automations.cli", "dev",
        "--port", str(port), "--temporal-port", str(temporal_port), "--no-ui",
        "--data-dir", str(tmp_path),
    ]  # fmt: skip
    log = (tmp_path / "dev.log").open("wb")
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    spawned: list[int] = []
    try:
        deadline = time.monotonic() + 60
        healthy, output = False, ""
        while time.monotonic() < deadline and not (healthy and "Ctrl-C" in output):
            time.sleep(0.2)
            output = (tmp_path / "dev.log").read_text()
            try:
                healthy = httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200
            except httpx.HTTPError:
                continue
        assert healthy, output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert (tmp_path / "temporal.db").exists()  # kept in a SQLite file by default
        spawned = children(process.pid)
        assert spawned, "the dev server should be a child process"

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert "stopped." in (tmp_path / "dev.log").read_text()
        time.sleep(0.5)
        assert [pid for pid in spawned if alive(pid)] == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in spawned:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()


def test_cli_help_names_the_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "automations.cli", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0
    for command in ("dev", "worker", "api"):
        assert command in result.stdout
