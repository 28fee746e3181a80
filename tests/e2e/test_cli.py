"""The `automations` command and the dev server launcher, as a user runs them."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.metadata
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client

from temporal_automations.devserver import (
    HOT_STATE_CACHE,
    SERVER_GOGC,
    DevServer,
    DevServerError,
    free_port,
    port_in_use,
)
from temporal_automations.settings import Settings
from temporal_automations.worker import run_worker
from tests.support import eventually

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "temporal_automations.cli"]


def alive(pid: int) -> bool:
    # A zombie is gone for our purposes: it runs nothing and holds no port.
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (psutil is not a dependency)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:
            continue  # the thread ended while we looked
        for child in children:
            found += [child, *descendants(child)]
    return found


def kill_leftovers(pids: list[int]) -> None:
    for pid in pids:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


@contextmanager
def listening_socket() -> Iterator[int]:
    """A port something else already listens on."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]


# --------------------------------------------------------------------------- DevServer


async def test_dev_server_starts_serves_and_stops_by_pid() -> None:
    server = DevServer().start()  # in memory, headless
    try:
        pid = server.pid
        assert pid is not None and alive(pid)
        client = await Client.connect(server.address)
        assert await client.service_client.check_health()
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace="default")
        )
        assert {"AutomationName", "AutomationEnabled", "AutomationTags"} <= set(
            listed.custom_attributes
        )
    finally:
        server.stop()
    assert not alive(pid)
    assert server.process is None
    assert not server.log_file.exists()  # its own temporary log goes with it


def test_dev_server_keeps_state_in_a_sqlite_file(tmp_path: Path) -> None:
    db_file = tmp_path / "state" / "temporal.db"
    with DevServer(db_file=db_file) as server:
        assert "--db-filename" in server.command()
        assert "journal_mode=wal" in server.command()
    assert db_file.exists()


def server_environment(server: DevServer) -> dict[str, str]:
    assert server.pid is not None
    pairs = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def test_dev_server_collects_garbage_at_its_own_gogc_unless_the_caller_sets_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOGC", raising=False)
    with DevServer() as server:
        assert server_environment(server)["GOGC"] == SERVER_GOGC == "400"
    monkeypatch.setenv("GOGC", "150")
    with DevServer() as server:
        assert server_environment(server)["GOGC"] == "150"


def mutable_state_cache_size(server: DevServer) -> int:
    """What the running server reports on /metrics as the most workflow states it keeps in
    memory; 0 until its history service has set the gauge (~2 s after the start)."""
    metrics = httpx.get(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).text
    for line in metrics.splitlines():
        if line.startswith('cache_size{cache_type="mutablestate"'):
            return int(float(line.rsplit(" ", 1)[1]))
    return 0


def test_dev_server_keeps_a_bounded_number_of_workflow_states_in_memory() -> None:
    # Every state it keeps is marked by each garbage collection: the server's own 8,096 made
    # its collections ~4 times longer at 10,000 automations. A caller's value wins.
    key = "history.hostLevelCacheMaxSize"
    with DevServer() as server:
        size = eventually(lambda: mutable_state_cache_size(server), what="the cache gauge")
        assert size == int(HOT_STATE_CACHE[key]) == 2048
    with DevServer(dynamic_config={key: "64"}) as server:
        assert eventually(lambda: mutable_state_cache_size(server), what="the cache gauge") == 64


def test_dev_server_refuses_a_port_already_taken() -> None:
    # Otherwise its readiness check could be answered by whoever holds the port.
    with listening_socket() as port:
        server = DevServer(port=port)
        with pytest.raises(DevServerError, match=f"port {port} is already in use"):
            server.start()
        assert server.process is None
        assert not server.log_file.exists()


@pytest.mark.parametrize("callers_port", [False, True], ids=["own-ports", "callers-port"])
def test_dev_server_retries_a_port_another_process_took_while_it_started(
    callers_port: bool,
) -> None:
    # The CLI picks the ports we leave to it by binding port 0 and letting go; another process
    # can bind one before the server does. Here the HTTP API's port is taken that way. A port
    # the caller fixed (a restart on the same port, `automations dev --port`) stays where it is.
    fixed = free_port() if callers_port else None
    with listening_socket() as taken:
        server = DevServer(port=fixed)
        server.http_port = taken
        try:
            server.start()
            assert server.running()
            assert server.http_port != taken
            assert port_in_use(server.http_port)
            if fixed is not None:
                assert server.port == fixed
        finally:
            server.stop()


def test_dev_server_picks_its_own_ports_apart_from_the_callers() -> None:
    # The caller's port is not bound until the server starts, so the kernel may hand it out
    # again as one of ours: once the HTTP API's came back as the gRPC one, and the server, bound
    # to it twice, could not start.
    fixed = free_port()
    server = DevServer(port=fixed)
    server.http_port = fixed  # as the kernel once handed it out
    try:
        server.start()
        assert server.port == fixed
        assert server.http_port != fixed
        assert port_in_use(server.http_port)
    finally:
        server.stop()


def test_dev_server_failure_says_why_from_its_log() -> None:
    server = DevServer(dynamic_config={"some.key": "not json"})
    started = time.monotonic()
    with pytest.raises(DevServerError, match="invalid dynamic config") as failure:
        server.start()
    assert "exited with code" in str(failure.value)
    assert time.monotonic() - started < 10  # noticed the exit, did not wait for the timeout
    assert server.process is None
    assert not server.log_file.exists()


# --------------------------------------------------------------------------- the worker


async def test_the_worker_freezes_what_its_start_made() -> None:
    """Out of the collector's sight, a full collection walks only what came after the start: one
    had paused the worker 69 ms in a 300-event reactive run, holding the events meanwhile."""
    gc.unfreeze()  # whatever an earlier test's in-process app froze
    with DevServer() as server:
        settings = Settings(
            _env_file=None, temporal_address=server.address, task_queue="freeze-check"
        )
        worker = asyncio.create_task(run_worker(settings))
        try:
            deadline = time.monotonic() + 30
            while not gc.get_freeze_count() and not worker.done():
                assert time.monotonic() < deadline, "the worker froze nothing within 30 s"
                await asyncio.sleep(0.05)
            assert gc.get_freeze_count() > 10_000  # temporalio, pydantic, our modules
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            gc.unfreeze()


# --------------------------------------------------------------------------- automations dev


@pytest.mark.parametrize("storage", ["ephemeral", "sqlite"])
def test_automations_dev_runs_everything_and_stops_cleanly_on_sigterm(
    tmp_path: Path, storage: str
) -> None:
    port = free_port()
    command = [*CLI, "dev", "--port", str(port), "--no-ui"]
    # A port of its own: 7233 may hold another engineer's or test's server.
    command += ["--temporal-port", str(free_port())]
    command += ["--ephemeral"] if storage == "ephemeral" else ["--data-dir", str(tmp_path)]
    log_path = tmp_path / "dev.log"
    spawned: list[int] = []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        assert wait_healthy(port, process, timeout=60), log_path.read_text()
        output = wait_for_text(log_path, "Ctrl-C stops everything.", timeout=10)
        assert f"http://127.0.0.1:{port}/api" in output
        assert f"http://127.0.0.1:{port}/docs" in output
        assert "Temporal UI  (off)" in output
        assert (tmp_path / "temporal.db").exists() == (storage == "sqlite")
        spawned = descendants(process.pid)
        assert spawned, "the dev server should be a child process"

        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log_path.read_text()
        assert "stopped." in log_path.read_text()
        assert [pid for pid in spawned if alive(pid)] == []
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/health")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        kill_leftovers(spawned)


def wait_healthy(port: int, process: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    return False


def wait_for_text(path: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (output := path.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return output


def test_automations_dev_refuses_a_taken_api_port_before_starting_anything() -> None:
    with listening_socket() as port:
        result = subprocess.run(
            [*CLI, "dev", "--ephemeral", "--no-ui", "--port", str(port)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port} (API) is already in use" in result.stderr
    assert "starting Temporal" not in result.stdout


def test_automations_dev_names_an_unreachable_temporal_address() -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{unused.getsockname()[1]}"
    result = subprocess.run(
        [*CLI, "dev", "--port", str(free_port()), "--temporal-address", address],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"no Temporal server answers at {address}" in result.stderr


def test_cli_help_and_version() -> None:
    helped = subprocess.run([*CLI, "--help"], cwd=ROOT, capture_output=True, text=True)
    assert helped.returncode == 0
    for command in ("dev", "worker", "api"):
        assert command in helped.stdout
    version = subprocess.run([*CLI, "--version"], cwd=ROOT, capture_output=True, text=True)
    assert version.returncode == 0
    assert version.stdout.strip() == importlib.metadata.version("temporal-automations")


def test_worker_and_api_run_alone_by_environment_and_stop_on_sigterm(tmp_path: Path) -> None:
    # As in docker-compose: each part its own process, configured by environment, and
    # `docker stop` (SIGTERM, also to PID 1) ends it gracefully with exit code 0.
    port = free_port()
    with DevServer() as server:
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": server.address,
            "TASK_QUEUE": "automations-cli-test",
            "API_URL": f"http://127.0.0.1:{port}/api",
        }
        env.pop("API_KEY", None)
        log_path = tmp_path / "parts.log"
        with log_path.open("wb") as log:
            parts = [
                subprocess.Popen(
                    [*CLI, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
                )
                for args in (["worker"], ["api", "--host", "127.0.0.1", "--port", str(port)])
            ]
        try:
            assert wait_healthy(port, parts[1], timeout=30), log_path.read_text()
            output = wait_for_text(log_path, "worker polling", timeout=30)
            assert "automations-cli-test" in output
            for part in parts:
                part.send_signal(signal.SIGTERM)
            assert [part.wait(20) for part in parts] == [0, 0], log_path.read_text()
        finally:
            for part in parts:
                if part.poll() is None:
                    part.kill()
                    part.wait()
