"""Fixtures shared by the suite. Every server a fixture starts, it stops, even on failure."""

from __future__ import annotations

import sysconfig
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from automations.devserver import DevServer
from tests.support import Receiver


def test_server_binary() -> str:
    return str(Path(sysconfig.get_path("scripts")) / "temporal-test-server")


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: a 30-minute timer passes in milliseconds."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter, test_server_existing_path=test_server_binary()
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_client() -> AsyncIterator[Client]:
    """A client of a real dev server (in memory), for what the time-skipping server lacks:
    workflow updates, visibility and search attributes."""
    with DevServer() as server:
        yield await Client.connect(server.address, data_converter=pydantic_data_converter)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running
