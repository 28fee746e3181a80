"""A real stack for end-to-end tests and the benchmark: a Temporal dev server, the worker and
the API, each its own process on loopback, always stopped by PID.

    with running_stack() as stack:
        async with stack.client() as client: ...
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from temporal_automations.devserver import (
    DevServer,
    die_with_parent,
    free_port,
    stop_process,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parent.parent


class Stack:
    def __init__(self, server: DevServer, env: dict[str, str], logs: Path) -> None:
        self.server = server
        self.env = env
        self.logs = logs
        self.api_port = int(env["API_PORT"])
        self.api_key = env.get("API_KEY")
        self.base_url = f"http://127.0.0.1:{self.api_port}"
        self.api_url = f"{self.base_url}/api"
        self.temporal_address = server.address
        self.worker: subprocess.Popen[bytes] | None = None
        self.api: subprocess.Popen[bytes] | None = None

    # ------------------------------------------------------------------ processes

    def _spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", "-m", "temporal_automations.worker")

    def kill_worker(self) -> None:
        """SIGKILL: a crash, with no chance to finish anything."""
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()
            self.worker = None

    def stop_worker(self) -> None:
        stop_process(self.worker)
        self.worker = None

    def start_api(self) -> None:
        self.api = self._spawn("api", "-m", "temporal_automations.cli", "api")
        if not wait_for_port(self.api_port, 30, self.api):
            raise RuntimeError(f"the API did not start:\n{self.log_tail('api')}")

    def restart_api(self) -> None:
        stop_process(self.api)
        self.start_api()
        self.wait_healthy()

    def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                response = httpx.get(f"{self.api_url}/health", timeout=2)
                if response.status_code == 200:
                    return
                last = response.text
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        raise RuntimeError(
            f"the stack is not healthy ({last}):\n{self.log_tail('api')}\n{self.log_tail('worker')}"
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    # ------------------------------------------------------------------ clients

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def client(self, timeout: float = 30.0) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.api_url, headers=self.headers, timeout=timeout)

    def sync_client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, headers=self.headers, timeout=timeout)

    def stop(self) -> None:
        for process in (self.api, self.worker):
            stop_process(process)
        self.api = self.worker = None
        self.server.stop()


@contextlib.contextmanager
def running_stack(
    *,
    api_key: str | None = None,
    extra_env: dict[str, str] | None = None,
    dynamic_config: dict[str, str] | None = None,
    persistent: bool = False,
) -> Iterator[Stack]:
    """Start dev server, worker and API; yield the Stack; stop all of it whatever happens.
    `persistent` keeps Temporal's state in a SQLite file (as `automations dev` does)."""
    logs = Path(tempfile.mkdtemp(prefix="automations-stack-"))
    server = DevServer(
        db_file=logs / "temporal.db" if persistent else None,
        dynamic_config=dynamic_config,
        log_file=logs / "temporal.log",
    )
    api_port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": server.address,
        "TASK_QUEUE": "automations-test",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "API_URL": f"http://127.0.0.1:{api_port}/api",
        "ALLOW_PRIVATE_WEBHOOKS": "true",
        "TEMPORAL_UI_URL": "",
        **(extra_env or {}),
    }
    if api_key:
        env["API_KEY"] = api_key
    else:
        env.pop("API_KEY", None)
    stack = Stack(server, env, logs)
    try:
        server.start()
        stack.start_worker()
        stack.start_api()
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()
