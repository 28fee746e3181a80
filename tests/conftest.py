"""Fixtures shared by the suite: small and generic. Every server a fixture starts, it stops,
even on failure. Modules that need more (a dev server, the HTTP API) own their fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from temporal_automations.devserver import DevServer
from tests.support import Receiver, register_search_attributes, temporal_test_server_binary

# The dev server suggests continue-as-new once a run's history holds this many events (its
# default is 4 Ki events; `limit.historySize.suggestContinueAsNew` is its byte-size sibling).
SUGGEST_CONTINUE_AS_NEW_AT = {"limit.historyCount.suggestContinueAsNew": "30"}


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server: a 30-minute timer passes in milliseconds. Our
    search attributes are registered on it, so workflows start exactly as the API starts them.
    One per test (about a second to start): an activity that one test leaves retrying holds a
    shared server's clock, and a later test's skip then timed out or broke its connection."""
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_test_server_binary(),
    )
    try:
        await register_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A fresh HTTP receiver per test (webhook target and lifecycle-event sink); stopped after."""
    with Receiver() as running:
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
