"""The `automations` command: `dev` runs everything; `worker` and `api` run the parts."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn

from temporal_automations import event_loop, logs
from temporal_automations.devserver import (
    DEFAULT_SQLITE_SYNC,
    DevServer,
    DevServerError,
    SqliteSync,
    port_in_use,
)
from temporal_automations.domain.secrets import SecretBox
from temporal_automations.settings import Settings, TemporalConnection, get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
log = logging.getLogger("automations")

LOOPBACK = "127.0.0.1"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# `automations dev --api-key auto`: make one up and print it.
GENERATE_API_KEY = "auto"


class SqliteSyncChoice(enum.StrEnum):
    """`--sqlite-sync` (typer offers an Enum's values as choices): devserver.SqliteSync."""

    off = "off"
    normal = "normal"
    full = "full"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "temporal-automations"


class LogLevel(enum.StrEnum):
    """`--log-level` (typer offers an Enum's values as choices)."""

    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


# The logging options of every command that starts a process (one setup: logs.configure).
LogLevelOption = Annotated[
    LogLevel,
    typer.Option(
        "--log-level", envvar="LOG_LEVEL", case_sensitive=False, help="the least level logged"
    ),
]
LogJsonOption = Annotated[
    bool,
    typer.Option(
        "--log-json",
        envvar="LOG_JSON",
        help="one JSON object per line (time, level, logger, message, automation_id, "
        "firing_id, …) instead of text",
    ),
]


def _logging(level: LogLevel = LogLevel.INFO, json_lines: bool = False) -> None:
    logs.configure(level.value, json_lines)


def _exit_cleanly() -> None:
    """End the process after a clean stop without the interpreter's teardown.

    temporalio's Rust threads can still call into Python while the interpreter finalizes,
    which aborts the process ("Fatal Python error: PyGILState_Release", temporalio/sdk-python
    issue 300): measured here, 2 of 15 `automations worker` runs stopped by SIGTERM ended
    with SIGABRT. Everything we started is stopped by now; flush and leave.
    """
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the commands stop it (and the rest) themselves."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class StartupError(RuntimeError):
    """A part of `dev` could not start; its message says which and why."""


async def _serve_api(api_server: uvicorn.Server) -> None:
    # uvicorn ends a failed start-up (port taken, lifespan error) with sys.exit(), which would
    # escape the event loop past our clean-up.
    try:
        await api_server.serve()
    except SystemExit as exit_:
        raise StartupError(
            f"the API did not start (see its log above; code {exit_.code})"
        ) from None


def _api_server(settings: Settings, host: str, port: int) -> _QuietServer:
    from temporal_automations.api.app import create_app

    # log_config=None: uvicorn's records go through the process's one setup (logs.configure).
    config = uvicorn.Config(
        create_app(settings), host=host, port=port, log_level="warning", log_config=None
    )
    return _QuietServer(config)


async def _exited(server: DevServer) -> None:
    """Returns when the dev server's process ends on its own (a crash, a kill from outside)."""
    while server.running():
        await asyncio.sleep(0.5)


async def _serve_until_stopped(
    settings: Settings,
    port: int,
    banner: str,
    server: DevServer | None,
    watch_namespaces: list[str] | None = None,
    bridge_cursor: Path | None = None,
) -> None:
    """Worker and API in one event loop until SIGINT/SIGTERM, or until a part fails; and the
    Temporal bridge, when `watch_namespaces` are given."""
    from temporal_automations.worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)

    api_server = _api_server(settings, LOOPBACK, port)
    worker = asyncio.create_task(run_worker(settings), name="worker")
    api = asyncio.create_task(_serve_api(api_server), name="api")
    watchers: set[asyncio.Task[Any]] = {asyncio.create_task(stop.wait(), name="signal")}
    # Optional: a bridge that cannot reach its cluster logs why and retries; it never stops dev.
    bridge = (
        asyncio.create_task(
            _temporal_bridge(settings, watch_namespaces, bridge_cursor), name="bridge"
        )
        if watch_namespaces
        else None
    )
    if server is not None:
        watchers.add(asyncio.create_task(_exited(server), name="temporal"))

    while not api_server.started and not api.done() and not worker.done() and not stop.is_set():
        await asyncio.sleep(0.05)
    if api_server.started:
        typer.echo(banner)
    done, _ = await asyncio.wait({worker, api, *watchers}, return_when=asyncio.FIRST_COMPLETED)

    typer.echo("stopping…")
    api_server.should_exit = True
    worker.cancel()
    if bridge is not None:
        bridge.cancel()
    for watcher in watchers:
        watcher.cancel()
    results = await asyncio.gather(worker, api, return_exceptions=True)
    if stop.is_set():
        return  # asked to stop: errors while shutting down are not failures
    if server is not None and server.process is not None and not server.running():
        code = server.process.returncode
        raise StartupError(f"the Temporal dev server exited (code {code}):\n{server.log_tail()}")
    for task, result in zip((worker, api), results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
            raise result
        if task in done:
            raise StartupError(f"the {task.get_name()} stopped on its own")


async def _temporal_bridge(
    settings: Settings, namespaces: list[str], cursor: Path | None = None
) -> None:
    """`dev --watch-temporal`: the bridge on the target cluster (the dev server by default);
    its cursor in `cursor` (None: in memory, for an ephemeral dev server)."""
    from temporal_automations.temporal_bridge import TemporalBridge, run_bridge

    connection = settings.target_connection()
    namespaces = [name or connection.namespace for name in namespaces]
    client = await _connect_until_reachable(
        connection.model_copy(update={"namespace": namespaces[0]})
    )
    await run_bridge(
        TemporalBridge(
            client,
            namespaces,
            settings.api_url,
            automations_api_key=settings.api_key.get_secret_value() if settings.api_key else None,
            cursor_file=cursor,
            poll_interval=settings.temporal_bridge_poll_interval,
            exclude_types=_engine_types(settings, connection),
        )
    )


async def _connect_until_reachable(connection: TemporalConnection) -> Any:
    """The bridge's client; a cluster that does not answer yet is tried again every 5 s."""
    from temporal_automations.temporal import connect_to

    while True:
        try:
            return await connect_to(connection)
        except Exception as error:  # unreachable, or settings that cannot work: say so
            log.error("the Temporal bridge cannot connect to %s: %s", connection.address, error)
            await asyncio.sleep(5)


def _engine_types(settings: Settings, watched: TemporalConnection) -> list[str]:
    """The engine's own workflow types, when the bridge watches the engine's cluster: its
    automations, their overflow children and the inbox are not the user's workflows."""
    from temporal_automations.temporal import WORKFLOW_TYPE
    from temporal_automations.workflows.inbox import INBOX_WORKFLOW_TYPE
    from temporal_automations.workflows.overflow import OVERFLOW_WORKFLOW_TYPE

    engine = [WORKFLOW_TYPE, OVERFLOW_WORKFLOW_TYPE, INBOX_WORKFLOW_TYPE]
    return engine if watched.address == settings.temporal_address else []


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM acts like Ctrl-C (KeyboardInterrupt) outside the event loop, e.g. while the dev
    server starts, so a stop at any moment still runs the clean-up."""
    previous = {signum: signal.signal(signum, _interrupt) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not cut the clean-up short and leave the dev server behind."""
    previous = {signum: signal.signal(signum, signal.SIG_IGN) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _check_free(port: int, what: str, flag: str) -> None:
    if port_in_use(port):
        raise _fail(f"port {port} ({what}) is already in use; choose another with {flag}")


def _check_reachable(address: str) -> None:
    host, _, port = address.rpartition(":")
    if not (host and port.isdigit() and port_in_use(int(port), host.strip("[]"))):
        raise _fail(f"no Temporal server answers at {address}")


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 4200,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="no Temporal Web UI")] = False,
    ephemeral: Annotated[
        bool, typer.Option("--ephemeral", help="keep Temporal's state in memory only")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="where Temporal's SQLite file lives "
            "(default: $XDG_DATA_HOME/temporal-automations, else ~/.local/share/…)"
        ),
    ] = None,
    sqlite_sync: Annotated[
        SqliteSyncChoice | None,
        typer.Option(
            case_sensitive=False,
            help="SQLite's synchronous pragma for the data file: off (the default: fastest; "
            "survives a crash of the process, not a power loss), normal, or full (fsync on "
            "every commit: what Temporal accepted survives a power loss)",
        ),
    ] = None,
    temporal_address: Annotated[
        str | None,
        typer.Option(help="HOST:PORT of a running Temporal server to use instead of starting one"),
    ] = None,
    temporal_port: Annotated[
        int, typer.Option(help="gRPC port of the dev server it starts")
    ] = 7233,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="API_KEY",
            help="require an API key on /api: `--api-key auto` makes one up and prints it, "
            "`--api-key KEY` (or API_KEY) uses yours; the page asks for it once",
        ),
    ] = None,
    watch_temporal: Annotated[
        list[str] | None,
        typer.Option(
            help="also run the Temporal bridge on this namespace of TARGET_TEMPORAL_ADDRESS "
            "(default: this dev server); repeat for more",
        ),
    ] = None,
    secrets_key: Annotated[
        str | None,
        typer.Option(
            envvar="SECRETS_KEY",
            help="Fernet key that seals secrets before they reach Temporal (default: "
            "secrets.key in the data folder, made on first use; with --ephemeral, a new one)",
        ),
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_json: LogJsonOption = False,
) -> None:
    """Run the Temporal dev server, the worker and the API together, until Ctrl-C."""
    _logging(log_level, log_json)
    _check_free(port, "API", "--port")
    server: DevServer | None = None
    if sqlite_sync is not None and (ephemeral or temporal_address is not None):
        raise _fail(
            "--sqlite-sync applies to the dev server's data file, not with "
            "--ephemeral or --temporal-address"
        )
    if temporal_address is not None:
        _check_reachable(temporal_address)
    else:
        _check_free(temporal_port, "Temporal", "--temporal-port, or use it: --temporal-address")
        if not no_ui:
            _check_free(ui_port, "Temporal Web UI", "--ui-port or --no-ui")
        db_file = None if ephemeral else (data_dir or default_data_dir()) / "temporal.db"
        sync: SqliteSync = sqlite_sync.value if sqlite_sync else DEFAULT_SQLITE_SYNC
        server = DevServer(
            port=temporal_port, ui=not no_ui, ui_port=ui_port, db_file=db_file, sqlite_sync=sync
        )
        temporal_address = server.address
    if api_key == GENERATE_API_KEY:
        api_key = secrets.token_urlsafe(24)
        typer.echo(f"API key (made up for this run): {api_key}")
    settings = Settings(
        temporal_address=temporal_address,
        api_host=LOOPBACK,
        api_port=port,
        api_url=f"http://{LOOPBACK}:{port}/api",
        allow_private_webhooks=True,  # dev: webhooks to a local receiver are the common case
        temporal_ui_url=server.ui_url if server else None,
        api_key=api_key,
        secrets_key=secrets_key or _dev_secrets_key(data_dir, ephemeral),
        # The events store beside Temporal's file; with --ephemeral, a file that goes away.
        data_dir=Path(tempfile.mkdtemp(prefix="automations-")) if ephemeral else data_dir,
    )
    try:
        with _signals_interrupt():
            if server is not None:
                where = (
                    f"{server.db_file}, synchronous={server.sqlite_sync}"
                    if server.db_file
                    else "in memory"
                )
                typer.echo(f"starting Temporal dev server ({where})…")
                server.start()
            banner = _banner(settings, port)
            # The bridge's cursor lives beside the data it follows; with --ephemeral, nowhere.
            cursor = (
                None if ephemeral else (data_dir or default_data_dir()) / "temporal-bridge.json"
            )
            event_loop.run(
                _serve_until_stopped(settings, port, banner, server, watch_temporal, cursor)
            )
    except KeyboardInterrupt:
        pass  # stopped before the event loop took over the signals
    except (DevServerError, StartupError) as error:
        raise _fail(str(error)) from None
    except Exception:
        log.exception("automations dev stopped on an error")
        raise typer.Exit(1) from None
    finally:
        with _signals_ignored():
            if server is not None:
                server.stop()
    typer.echo("stopped.")
    _exit_cleanly()


def _dev_secrets_key(data_dir: Path | None, ephemeral: bool) -> str:
    """The key kept beside the data (it must outlive restarts, as the automations do)."""
    if ephemeral:
        return SecretBox.new_key()
    path = (data_dir or default_data_dir()) / "secrets.key"
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SecretBox.new_key()
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def _banner(settings: Settings, port: int) -> str:
    return "\n".join(
        [
            "temporal-automations is running:",
            f"  API          http://{LOOPBACK}:{port}/api",
            f"  API docs     http://{LOOPBACK}:{port}/docs",
            f"  Temporal     {settings.temporal_address}",
            f"  Temporal UI  {settings.temporal_ui_url or '(off)'}",
            "  API key      "
            + ("required: Authorization: Bearer <key>" if settings.api_key else "off"),
            "Ctrl-C stops everything.",
        ]
    )


def _run_until_signal(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` until it ends or SIGINT/SIGTERM cancels it (a graceful stop, exit code 0).
    As PID 1 in a container a process without a SIGTERM handler would ignore `docker stop`."""

    async def runner() -> None:
        task = asyncio.ensure_future(main)
        loop = asyncio.get_running_loop()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    event_loop.run(runner())


@app.command("secrets-key")
def secrets_key() -> None:
    """Print a new SECRETS_KEY: give the same one to the API and the worker."""
    typer.echo(SecretBox.new_key())


@app.command()
def worker(log_level: LogLevelOption = LogLevel.INFO, log_json: LogJsonOption = False) -> None:
    """Run the worker alone (configured by environment: TEMPORAL_ADDRESS, TASK_QUEUE, …)."""
    from temporal_automations.worker import run_worker

    _logging(log_level, log_json)
    _run_until_signal(run_worker(get_settings()))
    _exit_cleanly()


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="default: API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: API_PORT")] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_json: LogJsonOption = False,
) -> None:
    """Run the HTTP API alone (configured by environment)."""
    _logging(log_level, log_json)
    settings = get_settings()
    server = _api_server(settings, host or settings.api_host, port or settings.api_port)
    event_loop.run(_serve_until_signal(server))
    _exit_cleanly()


async def _serve_until_signal(server: uvicorn.Server) -> None:
    """uvicorn's own handling re-raises SIGTERM after the drain (exit code -15); a stop on
    request is a clean exit here. A second signal skips the drain."""

    def stop() -> None:
        server.force_exit = server.should_exit
        server.should_exit = True

    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop)
    await server.serve()


@app.command("test")
def test_automation(
    file: Annotated[Path, typer.Argument(help="an automation definition (JSON, as POSTed)")],
    events: Annotated[
        Path | None, typer.Option("--events", help="a JSON list of events to test it on")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--from", help="backtest on the API's stored events since: 2h, 1d or ISO"),
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="backtest until (default: now)")] = None,
    until: Annotated[
        str | None, typer.Option(help="--events: act on deadlines up to this instant")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the raw result")] = False,
) -> None:
    """Show when an automation would fire and what it would send, without sending anything:
    on events from a file (no server needed), or on the events a running API stored."""
    import json as json_module

    from temporal_automations.testfire_cli import TestInputError, run, table

    try:
        result = run(file, events, since, to, until, get_settings())
    except TestInputError as error:
        raise _fail(str(error)) from None
    typer.echo(json_module.dumps(result, indent=2) if as_json else table(result))


bridge_app = typer.Typer(help="Forward an orchestrator's events into the automations.")
app.add_typer(bridge_app, name="bridge")


@bridge_app.command("prefect")
def bridge_prefect(
    prefect_api_url: Annotated[
        str, typer.Option(envvar="PREFECT_API_URL", help="the Prefect server's API")
    ],
    prefix: Annotated[
        list[str] | None, typer.Option(help="event name prefixes to forward (default: prefect.)")
    ] = None,
    log_level: LogLevelOption = LogLevel.INFO,
    log_json: LogJsonOption = False,
) -> None:
    """Subscribe to a Prefect server's event stream and forward it to this API (API_URL)."""
    from temporal_automations.bridge import PrefectBridge

    _logging(log_level, log_json)
    settings = get_settings()
    token = settings.prefect_api_key or settings.prefect_api_auth_string
    bridge = PrefectBridge(
        prefect_api_url,
        settings.api_url,
        prefect_token=token.get_secret_value() if token else None,
        automations_api_key=settings.api_key.get_secret_value() if settings.api_key else None,
        event_prefixes=prefix,
    )
    typer.echo(f"forwarding {bridge.socket_url} -> {bridge.events_url}")
    _run_until_signal(bridge.run())


@bridge_app.command("temporal")
def bridge_temporal(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            help="a namespace to watch (repeat for more; default: TARGET_TEMPORAL_NAMESPACE, "
            "else TEMPORAL_NAMESPACE)"
        ),
    ] = None,
    address: Annotated[
        str | None,
        typer.Option(
            "--temporal-address",
            help="HOST:PORT of the cluster to watch (default: TARGET_TEMPORAL_ADDRESS, else "
            "TEMPORAL_ADDRESS)",
        ),
    ] = None,
    temporal_api_key: Annotated[
        str | None, typer.Option(help="API key of that cluster (Temporal Cloud; implies TLS)")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="TLS client certificate (PEM)")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="TLS client private key (PEM)")] = None,
    tls_ca: Annotated[Path | None, typer.Option(help="the server's CA (PEM)")] = None,
    poll_interval: Annotated[
        float | None,
        typer.Option(min=0.05, help="seconds between polls (TEMPORAL_BRIDGE_POLL_INTERVAL, 1)"),
    ] = None,
    overlap: Annotated[
        float,
        typer.Option(min=0, help="seconds each poll re-reads, for visibility's own delay"),
    ] = 10.0,
    cursor_file: Annotated[
        Path | None,
        typer.Option(help="where the cursor is kept (default: in the data folder)"),
    ] = None,
    task_queue: Annotated[
        list[str] | None,
        typer.Option(
            help="a task queue to watch for pollers (repeat; those of the workflows seen are "
            "watched anyway)"
        ),
    ] = None,
    not_ready_after: Annotated[
        float,
        typer.Option(min=1, help="seconds without a poller before a task queue is not-ready"),
    ] = 60.0,
    backfill: Annotated[
        float,
        typer.Option(
            min=0,
            help="on a first start (no cursor yet), also send what started or closed in the "
            "last this many seconds",
        ),
    ] = 0.0,
    log_level: LogLevelOption = LogLevel.INFO,
    log_json: LogJsonOption = False,
) -> None:
    """Watch workflows of a Temporal cluster and send temporal.workflow.* events to this API."""
    from temporal_automations.temporal import TemporalConnectionError, tls_config
    from temporal_automations.temporal_bridge import (
        CursorError,
        CursorFile,
        TemporalBridge,
        run_bridge,
    )

    _logging(log_level, log_json)
    settings = get_settings()
    connection = settings.target_connection()
    changes: dict[str, Any] = {
        "address": address,
        "api_key": temporal_api_key,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "tls_ca": tls_ca,
    }
    connection = connection.model_copy(
        update={name: value for name, value in changes.items() if value is not None}
    )
    namespaces = namespace or [connection.namespace]
    cursor = cursor_file or default_data_dir() / "temporal-bridge" / (
        f"{connection.address.replace(':', '_')}.json"
    )

    try:
        CursorFile(cursor).load()
        tls_config(connection)
    except (CursorError, TemporalConnectionError) as error:
        raise _fail(str(error)) from None

    async def main() -> None:
        client = await _connect_until_reachable(
            connection.model_copy(update={"namespace": namespaces[0]})
        )
        try:
            bridge = TemporalBridge(
                client,
                namespaces,
                settings.api_url,
                automations_api_key=settings.api_key.get_secret_value()
                if settings.api_key
                else None,
                cursor_file=cursor,
                poll_interval=poll_interval or settings.temporal_bridge_poll_interval,
                overlap=overlap,
                exclude_types=_engine_types(settings, connection),
                task_queues=task_queue or [],
                queue_not_ready_after=not_ready_after,
                start_from=datetime.now(UTC) - timedelta(seconds=backfill),
            )
        except CursorError as error:
            raise _fail(str(error)) from None
        typer.echo(
            f"watching {connection.address} namespaces {', '.join(namespaces)} -> "
            f"{bridge.events_url} (cursor {cursor})"
        )
        await run_bridge(bridge)

    _run_until_signal(main())
    _exit_cleanly()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(version("temporal-automations"))
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version")
    ] = False,
) -> None:
    """Prefect-compatible automations, made durable by Temporal."""


if __name__ == "__main__":
    app(prog_name="automations")
