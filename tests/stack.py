"""A real stack for end-to-end tests and the benchmark: a Temporal dev server, the worker and
the API, each its own process on loopback, always stopped by PID.

    with running_stack() as stack:
        async with stack.client() as client: ...
"""

from __future__ import annotations

import contextlib
import os
import shutil
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
from temporal_automations.domain.secrets import SecretBox

ROOT = Path(__file__).resolve().parent.parent
# Start-up deadlines. Measured here with the machine loaded (load 10 on 2 cores, bytecode
# not compiled yet): the API listened after up to 16 s and the worker polled up to 14 s
# later; a fresh CI machine can be slower still. Bounded, with the logs when it fails.
START_TIMEOUT = 120.0


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

    def _spawn(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, *args],
                cwd=ROOT,
                env=env or self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )

    @contextlib.contextmanager
    def another_api(self, name: str = "api-2") -> Iterator[str]:
        """One more API process on this stack's Temporal and task queue (its own port and data
        folder); yields its base URL (…/api) once it listens, stops it by PID afterwards."""
        port = free_port()
        data_dir = self.logs / name
        data_dir.mkdir(exist_ok=True)
        env = {**self.env, "API_PORT": str(port), "DATA_DIR": str(data_dir)}
        process = self._spawn(name, "-m", "temporal_automations.cli", "api", env=env)
        try:
            if not wait_for_port(port, START_TIMEOUT, process):
                raise RuntimeError(f"{name} did not start:\n{self.log_tail(name)}")
            yield f"http://127.0.0.1:{port}/api"
        finally:
            stop_process(process)

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", "-m", "temporal_automations.cli", "worker")

    def kill_worker(self) -> None:
        """SIGKILL: a crash, with no chance to finish anything."""
        if self.worker is not None:
            self.worker.kill()
            self.worker.wait()
            self.worker = None

    def stop_worker(self) -> None:
        stop_process(self.worker)
        self.worker = None

    def start_api(self, timeout: float = START_TIMEOUT) -> None:
        """Start the API; return once it listens (it has connected to Temporal by then; its
        catalog loads in the background, events get 503 until `wait_healthy` sees it loaded).
        If it exits first, fail at once with its log."""
        self.api = self._spawn("api", "-m", "temporal_automations.cli", "api")
        if not wait_for_port(self.api_port, timeout, self.api):
            code = self.api.poll()
            why = f"exited with code {code}" if code is not None else f"timed out ({timeout:g} s)"
            raise RuntimeError(f"the API did not start ({why}):\n{self.log_tails()}")

    def restart_api(self) -> None:
        stop_process(self.api)
        self.start_api()
        self.wait_healthy()

    def kill_api(self) -> None:
        """SIGKILL the API: requests in flight get no answer."""
        if self.api is not None:
            self.api.kill()
            self.api.wait()
            self.api = None

    def kill_server(self) -> None:
        """SIGKILL the Temporal dev server (by PID): a crash, its SQLite file left as it was."""
        process = self.server.process
        if process is not None:
            process.kill()
            process.wait()
            self.server.process = None

    def start_server(self, timeout: float = 30.0) -> None:
        """Start the dev server again on the same port and the same SQLite file (after
        `kill_server`); the worker and the API reconnect by themselves."""
        if self.server.db_file is None:
            raise RuntimeError("an in-memory dev server cannot be restarted with its state")
        self.server.start(timeout)

    def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Until /api/health answers 200: Temporal serves and a worker polls our task queue.
        If the API or the worker exits meanwhile, fail at once with the logs."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, process in (("API", self.api), ("worker", self.worker)):
                if process is not None and process.poll() is not None:
                    raise RuntimeError(
                        f"the {name} exited with code {process.returncode} before the stack "
                        f"was healthy:\n{self.log_tails()}"
                    )
            try:
                response = httpx.get(f"{self.api_url}/health", timeout=10)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text}"
            except httpx.HTTPError as error:
                last = repr(error)
            time.sleep(0.2)
        raise RuntimeError(
            f"the stack was not healthy within {timeout:g} s (last answer: {last}):\n"
            f"{self.log_tails()}"
        )

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {name} ---\n" + "\n".join(text.splitlines()[-lines:])

    def log_tails(self) -> str:
        """The end of the API's, the worker's and the dev server's logs (kept in `logs`)."""
        tails = [self.log_tail(name) for name in ("api", "worker", "temporal")]
        return "\n".join([*tails, f"(all logs: {self.logs})"])

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
    `persistent` keeps Temporal's state in a SQLite file (as `automations dev` does). Its
    folder (logs, databases: 330 MB after the bench's 10,000 automations) goes after a clean
    run; a failed one keeps it."""
    logs = Path(tempfile.mkdtemp(prefix="automations-stack-"))
    server = DevServer(
        db_file=logs / "temporal.db" if persistent else None,
        dynamic_config=dynamic_config,
        log_file=logs / "temporal.log",
    )
    # Not one of the server's (CI: the API got its frontend port and could not bind it).
    api_port = free_port(avoid=server.ports)
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": server.address,
        "TASK_QUEUE": "automations-test",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "API_URL": f"http://127.0.0.1:{api_port}/api",
        "ALLOW_PRIVATE_WEBHOOKS": "true",
        # Sealed secrets, as `automations dev` does: the API seals, the worker opens.
        "SECRETS_KEY": SecretBox.new_key(),
        "TEMPORAL_UI_URL": "",
        "DATA_DIR": str(logs),  # the events store (SQLite) beside the logs
        **(extra_env or {}),
    }
    if api_key:
        env["API_KEY"] = api_key
    else:
        env.pop("API_KEY", None)
    stack = Stack(server, env, logs)
    failed = True
    try:
        server.start(START_TIMEOUT)
        stack.start_worker()
        stack.start_api()
        stack.wait_healthy()
        yield stack
        failed = False
    finally:
        stack.stop()
        if not failed:  # a failed run keeps its logs (and databases) to look at
            shutil.rmtree(logs, ignore_errors=True)
