"""Workflows and activities in process: the worker's workflow on Temporal's time-skipping test
server, activities on loopback servers and child processes. No dev server, no API process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.support import register_search_attributes, temporal_test_server_binary


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
