"""End to end on real processes: Temporal dev servers, the worker, the API, Prefect's server,
PostgreSQL. Every test here is marked `e2e` (the slow suite: `pytest -m e2e`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.devserver import DevServer
from tests.prefect_server import PrefectServer, running_prefect_server
from tests.stack import Stack, running_stack

HERE = Path(__file__).parent
# The dev server suggests continue-as-new once a run's history holds this many events (its
# default is 4 Ki events; `limit.historySize.suggestContinueAsNew` is its byte-size sibling).
SUGGEST_CONTINUE_AS_NEW_AT = {"limit.historyCount.suggestContinueAsNew": "30"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A real stack (dev server, worker, API processes; tests/stack.py), one per module. A
    module that needs another configuration (an API key, Prefect, PostgreSQL) overrides it."""
    with running_stack() as running:
        yield running


@pytest.fixture(scope="module")
async def dev_client() -> AsyncIterator[Client]:
    """A real dev server (in memory, with our search attributes), one per test module; stopped
    by PID afterwards."""
    with DevServer() as server:
        yield await Client.connect(server.address, data_converter=pydantic_data_converter)


@pytest.fixture
async def eager_continue_as_new_client() -> AsyncIterator[Client]:
    """A dev server that suggests continue-as-new after a few history events."""
    with DevServer(dynamic_config=SUGGEST_CONTINUE_AS_NEW_AT) as server:
        yield await Client.connect(server.address, data_converter=pydantic_data_converter)


@pytest.fixture(scope="module")
def prefect() -> Iterator[PrefectServer]:
    """A real `prefect server start` (its own venv, tests/prefect_server.py), one per module."""
    with running_prefect_server() as server:
        yield server
