"""A real Prefect server for tests, from its own venv (Prefect pins fastapi<0.150, which ours
does not): created once under .prefect-venv/, started on a free loopback port with its own
PREFECT_HOME and SQLite file, always stopped by PID."""

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

from temporal_automations.devserver import die_with_parent, free_port, stop_process

ROOT = Path(__file__).resolve().parent.parent
PREFECT_VENV = ROOT / ".prefect-venv"
# Prefect 3.8's server breaks on FastAPI 0.150+ (Body(min_items=...)).
PREFECT_REQUIREMENTS = ["prefect>=3.8,<4", "fastapi<0.150"]


def prefect_python() -> Path:
    """The Prefect venv's python, creating the venv on first use (a few minutes)."""
    python = PREFECT_VENV / "bin" / "python"
    if not (PREFECT_VENV / ".installed").exists():
        subprocess.run([sys.executable, "-m", "venv", str(PREFECT_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *PREFECT_REQUIREMENTS], check=True
        )
        (PREFECT_VENV / ".installed").write_text("\n".join(PREFECT_REQUIREMENTS))
    return python


class PrefectServer:
    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.port = port
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
            # Persist events quickly, so a bridge that reconnects can backfill them at once.
            "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
            "PYTHONPATH": str(ROOT),  # flows run in the Prefect venv can import our hook helper
        }
        self.process: subprocess.Popen[bytes] | None = None

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.api_url, timeout=30)

    def run_python(self, code: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run code (a flow, Prefect's CLI...) in the Prefect venv, against this server."""
        return subprocess.run(
            [str(prefect_python()), "-c", code],
            env=self.env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip

    def start(self, timeout: float = 120) -> None:
        command = [
            str(PREFECT_VENV / "bin" / "prefect"), "server", "start",
            "--host", "127.0.0.1", "--port", str(self.port), "--no-scheduler", "--analytics-off",
        ]  # fmt: skip
        log = (self.home / "server.log").open("ab")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        tail = (self.home / "server.log").read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"the Prefect server did not start:\n{tail}")

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout=20)


@contextlib.contextmanager
def running_prefect_server() -> Iterator[PrefectServer]:
    prefect_python()
    server = PrefectServer(Path(tempfile.mkdtemp(prefix="prefect-home-")), free_port())
    try:
        server.start()
        yield server
    finally:
        server.stop()
