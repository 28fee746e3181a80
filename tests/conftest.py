"""Fixtures every level may use: small and generic. Each level's own conftest holds the rest
(tests/workflows: the time-skipping server; tests/e2e: dev servers and the stack; tests/page:
Chromium). Every server a fixture starts, it stops, even on failure."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.postgres_server import PostgresServer, running_postgres
from tests.stack import Stack
from tests.support import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh HTTP receiver per test (webhook target and lifecycle-event sink); stopped after."""
    with Receiver() as running:
        yield running


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    """An HTTP client on the API of the `stack` fixture of the test's level or module (tests/e2e
    and tests/page define one; a module that needs a differently configured stack overrides it)."""
    with stack.sync_client() as client:
        yield client


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL cluster (Debian's binaries, a temporary folder, a free port), one per
    module (a module may stop it to see what happens), stopped by PID afterwards."""
    with running_postgres() as server:
        yield server
