"""The `automations` command: `dev` runs everything; `worker` and `api` run the parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from automations.devserver import DevServer
from automations.settings import Settings, get_settings

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False)
log = logging.getLogger("automations")


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "temporal-automations"


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: `dev` stops everything in order itself."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _api_server(settings: Settings, host: str, port: int) -> _QuietServer:
    from api.app import create_app

    config = uvicorn.Config(create_app(settings), host=host, port=port, log_level="warning")
    return _QuietServer(config)


async def _serve_until_stopped(settings: Settings, host: str, port: int, banner: str) -> None:
    """Worker and API in one event loop; SIGINT/SIGTERM stop both cleanly."""
    from worker import run_worker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    server = _api_server(settings, host, port)
    worker = asyncio.create_task(run_worker(settings), name="worker")
    api = asyncio.create_task(server.serve(), name="api")
    while not server.started and not api.done() and not worker.done():
        await asyncio.sleep(0.05)
    if server.started:
        typer.echo(banner)
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({worker, api, stopper}, return_when=asyncio.FIRST_COMPLETED)
    typer.echo("stopping…")
    server.should_exit = True
    worker.cancel()
    stopper.cancel()
    results = await asyncio.gather(worker, api, return_exceptions=True)
    failures = [r for r in results if isinstance(r, Exception)]
    if stopper not in done and failures:
        raise failures[0]


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="API port")] = 4200,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="no Temporal Web UI")] = False,
    ephemeral: Annotated[bool, typer.Option(help="keep Temporal's state in memory only")] = False,
    data_dir: Annotated[Path | None, typer.Option(help="where the SQLite file lives")] = None,
    temporal_address: Annotated[
        str | None, typer.Option(help="use this Temporal server instead of starting one")
    ] = None,
    temporal_port: Annotated[int, typer.Option(help="port of the dev server it starts")] = 7233,
    api_key: Annotated[str | None, typer.Option(help="require this API key")] = None,
) -> None:
    """Run the Temporal dev server, the worker and the API together, until Ctrl-C."""
    _logging()
    server: DevServer | None = None
    if temporal_address is None:
        db_file = None if ephemeral else (data_dir or default_data_dir()) / "temporal.db"
        server = DevServer(port=temporal_port, ui=not no_ui, ui_port=ui_port, db_file=db_file)
        typer.echo(f"starting Temporal dev server ({db_file or 'in memory'})…")
        server.start()
        temporal_address = server.address
    ui_url = server.ui_url if server else None
    settings = Settings(
        temporal_address=temporal_address,
        api_port=port,
        api_url=f"http://127.0.0.1:{port}/api",
        allow_private_webhooks=True,
        temporal_ui_url=ui_url,
        api_key=api_key,
    )
    banner = "\n".join(
        [
            "temporal-automations is running:",
            f"  API          http://127.0.0.1:{port}/api",
            f"  API docs     http://127.0.0.1:{port}/docs",
            f"  Temporal     {temporal_address}",
            f"  Temporal UI  {ui_url or '(off)'}",
            "Ctrl-C stops everything.",
        ]
    )
    try:
        asyncio.run(_serve_until_stopped(settings, "127.0.0.1", port, banner))
    finally:
        if server is not None:
            server.stop()
    typer.echo("stopped.")


@app.command()
def worker() -> None:
    """Run the worker alone (configured by environment: TEMPORAL_ADDRESS, TASK_QUEUE, …)."""
    from worker import run_worker

    _logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(get_settings()))


@app.command()
def api(
    host: Annotated[str | None, typer.Option(help="default: API_HOST")] = None,
    port: Annotated[int | None, typer.Option(help="default: API_PORT")] = None,
) -> None:
    """Run the HTTP API alone (configured by environment)."""
    from api.app import create_app

    _logging()
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level="warning",
    )


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
) -> None:
    """Subscribe to a Prefect server's event stream and forward it to this API (API_URL)."""
    from automations.bridge import PrefectBridge

    _logging()
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
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(bridge.run())


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
    app()
