"""A real PostgreSQL for tests: Debian's `postgresql` package (scripts/test.sh installs it),
a fresh cluster in a temp folder (initdb), started on a free loopback port, stopped by PID.

As root (CI, containers) the server runs as the `postgres` user, which PostgreSQL requires."""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg

from temporal_automations.devserver import die_with_parent, free_port, stop_process, wait_for_port

POSTGRES_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def postgres_bin() -> Path | None:
    for folder in POSTGRES_BIN_DIRS:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


class PostgresServer:
    def __init__(self, folder: Path, port: int, binaries: Path) -> None:
        self.folder = folder
        self.port = port
        self.binaries = binaries
        self.process: subprocess.Popen[bytes] | None = None
        self.user = "postgres" if os.geteuid() == 0 else None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run_as(self) -> dict[str, object]:
        if self.user is None:
            return {}
        entry = pwd.getpwnam(self.user)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}

    def start(self, timeout: float = 60.0) -> None:
        data = self.folder / "data"
        if self.user is not None:
            shutil.chown(self.folder, self.user)
        subprocess.run(
            [str(self.binaries / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, **self._run_as(),  # type: ignore[arg-type]
        )  # fmt: skip
        log = (self.folder / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.binaries / "postgres"), "-D", str(data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self.folder), "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, **self._run_as(),  # type: ignore[arg-type]
        )  # fmt: skip
        if not wait_for_port(self.port, timeout, self.process):
            tail = (self.folder / "postgres.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start:\n{tail}")

    async def connect(self, timeout: float = 60.0) -> asyncpg.Connection:
        """An asyncpg connection, once the server accepts them: its port opens while it is
        still starting up ("the database system is starting up")."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return await asyncpg.connect(host="127.0.0.1", port=self.port, user="postgres")
            except (asyncpg.CannotConnectNowError, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)

    def stop(self) -> None:
        process, self.process = self.process, None
        stop_process(process, timeout=20)


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = postgres_bin()
    if binaries is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/test.sh installs postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="automations-pg-"))
    server = PostgresServer(folder, free_port(), binaries)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
