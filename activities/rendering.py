"""Action templates rendered off the worker's event loop, bounded in time and memory.

A template is user code. On the event loop, nested loops stalled every other automation for
seconds, and `'a' * 10**9` took the worker to gigabytes. The sandbox (domain/templates.py) now
refuses the cheap ways to build a huge value, but it cannot bound time, nor every way to use
memory (`'x'.center(10**9)`). So templates render in a small pool of child processes:

- each child runs under RLIMIT_AS (default 512 MB): a hungry template meets a MemoryError in the
  child, not the worker's memory;
- the worker waits at most `time_limit` (default 1 s) for one action's templates, then kills
  that child (SIGKILL by pid) and starts a fresh one;
- a string without template syntax never leaves the worker, nor does a template that only
  prints values it looks up (`{{ event.resource.id }}`: its cost is that of the values, which
  are bounded); an action's other templates go in one round trip over a socket pair, with only
  the context names they use.

A violation raises TemplateRenderError with the reason, which fails that action only.

The children are plain `python -P -m temporal_automations.activities.rendering` processes
rather than multiprocessing's "spawn"/"forkserver" ones: those re-import the worker's main
module in every child (a script without a main guard then spawns children recursively, and the
worker's imports cost each child startup time and address space) and start a resource-tracker
process that outlives close(). asyncio starts, waits for and reaps a subprocess natively.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import pickle
import resource
import signal
import socket
import struct
import sys
import weakref
from collections.abc import Coroutine, Mapping
from typing import Any, BinaryIO

from temporal_automations.domain.templates import (
    TemplateRenderError,
    has_template_syntax,
    is_plain_lookup,
    render,
    template_variables,
)

log = logging.getLogger("automations.rendering")

DEFAULT_TIME_LIMIT = 1.0
DEFAULT_MEMORY_LIMIT = 512 * 2**20
DEFAULT_PROCESSES = 2
# A fresh child imports Jinja and pydantic (about 0.3 s here); generous for a busy machine.
STARTUP_TIMEOUT = 60.0

_CHILD_MODULE = "temporal_automations.activities.rendering"
_CLOSED = "closed"
_NO_START = "no start"

# Frames on the socket: an 8-byte length, then the body. Requests (worker -> child) are pickles,
# since the context holds ResourceLabels; answers (child -> worker) are JSON, so the worker never
# unpickles anything a template could have influenced.
_LENGTH = struct.Struct("!Q")


# --------------------------------------------------------------------------- the child


class _Overtime(BaseException):
    """A child's own alarm: a BaseException, so no handler inside a template catches it."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Overtime


def _child_main(fd: int, memory_limit: int, backstop: float) -> None:
    """A rendering process: answers requests until the worker closes its end."""
    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    # The worker kills a child at its time limit. This alarm only ends a runaway render in a
    # child whose worker died mid-render, which would otherwise spin on with no one to kill it.
    signal.signal(signal.SIGALRM, _on_alarm)
    sock = socket.socket(fileno=fd)
    incoming = sock.makefile("rb")
    _answer(sock, ["ready"])
    while (request := _read_request(incoming)) is not None:
        templates, context = request
        answer: list[Any] = []
        out_of_memory = overtime = False
        signal.setitimer(signal.ITIMER_REAL, backstop)
        try:
            answer = ["ok", [render(template, context) for template in templates]]
        except TemplateRenderError as error:
            answer = ["error", str(error)]
        except MemoryError:
            # Flagged, not answered here: the traceback holds the frames that hold the memory.
            out_of_memory = True
        except _Overtime:
            overtime = True
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        if out_of_memory or overtime:
            # A render cut off mid-way may leave Jinja's state half-built: answer and exit; the
            # worker starts a fresh child.
            _answer(sock, ["memory" if out_of_memory else "overtime"])
            return
        _answer(sock, answer)


def _read_request(incoming: BinaryIO) -> tuple[list[str], dict[str, Any]] | None:
    header = incoming.read(_LENGTH.size)
    if len(header) < _LENGTH.size:
        return None  # the worker closed its end, or died
    (size,) = _LENGTH.unpack(header)
    return pickle.loads(incoming.read(size))


def _answer(sock: socket.socket, answer: list[Any]) -> None:
    body = json.dumps(answer).encode()
    sock.sendall(_LENGTH.pack(len(body)) + body)


# --------------------------------------------------------------------------- the worker's side


class _Child:
    """One rendering process and the worker's end of its socket."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.process = process
        self.reader = reader
        self.writer = writer
        self.retired = False  # killed or found dead: never handed out again

    async def receive(self) -> list[Any]:
        (size,) = _LENGTH.unpack(await self.reader.readexactly(_LENGTH.size))
        return json.loads(await self.reader.readexactly(size))

    def kill(self) -> None:
        """SIGKILL by pid: a runaway render gets no chance to finish. asyncio reaps it."""
        _kill(self.process)
        with contextlib.suppress(RuntimeError):  # the event loop is already closed
            self.writer.close()


def _kill(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError, RuntimeError):
            process.kill()


def _kill_all(processes: set[asyncio.subprocess.Process]) -> None:
    for process in list(processes):
        _kill(process)
    processes.clear()


class TemplateRenderer:
    """Renders templates in `processes` child processes, each limited to `memory_limit` bytes
    of address space, waiting at most `time_limit` seconds for one action's templates. Safe to
    share between concurrent activities: each takes a free child from a queue, and a child that
    misbehaves is killed and replaced. Children start on first use; close() (or leaving
    `async with`) kills them."""

    def __init__(
        self,
        time_limit: float = DEFAULT_TIME_LIMIT,
        memory_limit: int = DEFAULT_MEMORY_LIMIT,
        processes: int = DEFAULT_PROCESSES,
    ) -> None:
        self.time_limit = time_limit
        self.memory_limit = memory_limit
        self.processes = processes
        # Free children, and the markers that wake every waiting render: _CLOSED, _NO_START.
        self._free: asyncio.Queue[_Child | str] = asyncio.Queue()
        self._children: set[_Child] = set()  # ready to serve; counted against `processes`
        self._starting = 0  # also counted against `processes`
        self._failures = 0
        self._start_error: str | None = None  # set while children fail to start
        self._no_start_queued = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._stopping: list[asyncio.subprocess.Process] = []  # killed by close()
        # Every process started and not yet known to have exited: killed by close() or, if the
        # renderer is dropped without close(), when it is collected or the worker exits.
        self._processes: set[asyncio.subprocess.Process] = set()
        self._finalizer = weakref.finalize(self, _kill_all, self._processes)

    @property
    def idle(self) -> int:
        """How many children are ready and waiting for a template."""
        return self._free.qsize()

    @property
    def pids(self) -> list[int]:
        """The children's process ids (alive or starting), for logs and tests."""
        return sorted(process.pid for process in self._processes)

    # ------------------------------------------------------------------ rendering

    async def render(self, templates: list[str], context: Mapping[str, Any]) -> list[str]:
        """`templates` rendered with `context`, in order; TemplateRenderError with the reason if
        one does not parse, fails, or breaks a bound."""
        rendered = list(templates)
        todo = []
        for index, template in enumerate(templates):
            if not has_template_syntax(template):
                continue
            if is_plain_lookup(template):
                # Bounded by what it prints: here, without a child's round trip (most
                # templates; measured in the burst benchmark: ~0.3 ms of an action's CPU).
                rendered[index] = render(template, context)
            else:
                todo.append(index)
        if not todo:
            return rendered
        # Only the names the templates use: most payloads name `event` or `labels`, and the
        # automation's JSON would otherwise be most of what is pickled.
        used: set[str] = set()
        for index in todo:
            used |= template_variables(templates[index])
        request = pickle.dumps(
            ([templates[index] for index in todo], {k: v for k, v in context.items() if k in used}),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        child = await self._take()
        answer = await self._ask(child, _LENGTH.pack(len(request)) + request)
        if answer[0] != "ok":
            raise TemplateRenderError(answer[1])
        for index, text in zip(todo, answer[1], strict=True):
            rendered[index] = text
        return rendered

    async def _ask(self, child: _Child, frame: bytes) -> list[Any]:
        try:
            async with asyncio.timeout(self.time_limit):
                child.writer.write(frame)
                await child.writer.drain()
                answer = await child.receive()
        except TimeoutError:
            self._retire(child)
            return ["error", self._too_slow]
        except (asyncio.IncompleteReadError, ConnectionError):
            self._retire(child)
            return ["error", await self._death_reason(child)]
        except BaseException:
            # Cancelled mid-render: the child may still be busy, and its late answer would be
            # read as the next request's. Replace it.
            self._retire(child)
            raise
        if answer[0] == "memory":
            self._retire(child)
            return ["error", f"template rendering ran out of memory (limit {self._limit_mb} MB)"]
        if answer[0] == "overtime":
            self._retire(child)
            return ["error", self._too_slow]
        self._free.put_nowait(child)
        return answer

    @property
    def _too_slow(self) -> str:
        return f"template rendering took longer than {self.time_limit:g} s"

    @property
    def _limit_mb(self) -> int:
        return self.memory_limit // 2**20

    async def _death_reason(self, child: _Child) -> str:
        try:
            async with asyncio.timeout(1.0):
                code: int | None = await child.process.wait()
        except TimeoutError:
            code = None
        if code is None:
            how = "stopped answering"
        elif code >= 0:
            how = f"exited with code {code}"
        else:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        return (
            f"template rendering crashed its process (it {how}); "
            f"memory is limited to {self._limit_mb} MB"
        )

    # ------------------------------------------------------------------ the pool

    async def _take(self) -> _Child:
        if self._closed:
            raise RuntimeError("the template renderer is closed")
        self._fill()
        while True:
            if self._start_error is not None and not self._children:
                raise RuntimeError(self._start_error)
            child = await self._free.get()
            if child == _CLOSED:
                self._free.put_nowait(_CLOSED)  # wake the next waiter too
                raise RuntimeError("the template renderer is closed")
            if child == _NO_START:
                if self._start_error is None or self._children:
                    self._no_start_queued = False
                    continue  # a child is (again) there to wait for
                self._free.put_nowait(_NO_START)  # wake the next waiter too
                raise RuntimeError(self._start_error)
            assert isinstance(child, _Child)
            if not child.retired:
                return child

    def warm(self) -> None:
        """Start the children now, in the background, rather than on the first render: a
        fresh child takes about 0.3 s (seconds on a loaded machine), which the first actions
        after a worker start would otherwise wait for (measured in bench/side_by_side.py's
        reactive p99). Needs a running event loop."""
        self._fill()

    def _fill(self) -> None:
        """Start children until `processes` are ready or starting."""
        while not self._closed and len(self._children) + self._starting < self.processes:
            self._starting += 1
            self._background(self._start_child())

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_child(self) -> None:
        try:
            child = await self._spawn()
        except Exception as error:
            self._failures += 1
            delay = min(30, 2**self._failures)
            log.exception("a template-rendering process did not start; retrying in %s s", delay)
            self._start_error = f"no template-rendering process could start: {error or repr(error)}"
            # With no child left at all, renders fail (their activities retry) rather than wait
            # without end; the marker wakes those already waiting.
            if not self._children and not self._no_start_queued:
                self._no_start_queued = True
                self._free.put_nowait(_NO_START)
            try:
                # The slot stays "starting" meanwhile, so renders wait instead of each starting
                # another process that fails the same way.
                await asyncio.sleep(delay)
            finally:
                self._starting -= 1
            self._fill()
            return
        except BaseException:
            self._starting -= 1
            raise
        self._starting -= 1
        self._failures = 0
        self._start_error = None
        self._children.add(child)
        self._background(self._watch(child))
        self._free.put_nowait(child)

    async def _spawn(self) -> _Child:
        ours, theirs = socket.socketpair()
        # Far past any render that is allowed to finish; see _child_main.
        backstop = 5 * self.time_limit + 5
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                # -P: the working directory does not go on the child's sys.path. The image runs
                # from /app, whose source folders would shadow the installed package.
                "-P",
                "-m",
                _CHILD_MODULE,
                str(theirs.fileno()),
                str(self.memory_limit),
                str(backstop),
                pass_fds=(theirs.fileno(),),
                stdin=asyncio.subprocess.DEVNULL,
                # Its own session: Ctrl-C at the worker's terminal is for the worker, which
                # stops its children itself.
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._processes.add(process)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=ours)
        except BaseException:
            ours.close()
            _kill(process)
            self._background(self._reap(process))
            raise
        child = _Child(process, reader, writer)
        try:
            async with asyncio.timeout(STARTUP_TIMEOUT):
                ready = await child.receive()
            if ready != ["ready"]:
                raise RuntimeError(f"the process answered {ready!r} on start")
        except asyncio.IncompleteReadError as error:
            self._discard_unready(child)
            async with asyncio.timeout(5):
                code = await process.wait()
            raise RuntimeError(
                f"the process exited with code {code} before it was ready (its stderr says why)"
            ) from error
        except BaseException:
            self._discard_unready(child)
            raise
        return child

    def _discard_unready(self, child: _Child) -> None:
        child.retired = True
        child.kill()
        self._background(self._reap(child.process))

    async def _watch(self, child: _Child) -> None:
        """A child that dies on its own (idle, or killed from outside) is replaced."""
        await self._reap(child.process)
        self._retire(child)

    async def _reap(self, process: asyncio.subprocess.Process) -> None:
        await process.wait()
        self._processes.discard(process)

    def _retire(self, child: _Child) -> None:
        """Kill a child that misbehaved or died, and start its replacement."""
        if child.retired:
            return
        child.retired = True
        self._children.discard(child)
        child.kill()
        self._fill()

    # ------------------------------------------------------------------ shutdown

    def close(self) -> None:
        """Kill every child, now (asyncio reaps them). Renders waiting for a child raise
        RuntimeError; renders in flight fail as their child dies."""
        if self._closed:
            return
        self._closed = True
        for task in list(self._tasks):
            with contextlib.suppress(RuntimeError):  # the event loop is already closed
                task.cancel()
        for child in list(self._children):
            child.retired = True
            child.kill()
        self._children.clear()
        self._stopping = list(self._processes)
        _kill_all(self._processes)
        self._free.put_nowait(_CLOSED)

    async def wait_closed(self) -> None:
        """After close(): wait until the killed children have been reaped."""
        async with asyncio.timeout(10):
            await asyncio.gather(*(process.wait() for process in self._stopping))

    async def __aenter__(self) -> TemplateRenderer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
