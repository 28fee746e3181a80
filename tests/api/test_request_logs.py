"""A record logged while the API handles a request about one automation carries its id
(api/deps.py `automation_log_context`), in-process."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from temporal_automations import logs
from temporal_automations.api import errors
from temporal_automations.api.deps import automation_log_context
from temporal_automations.api.events_store import StoreUnavailable


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler = logs.configure("INFO", json_lines=True, stream=buffer)
    try:
        yield buffer
    finally:
        root.removeHandler(handler)
        for old in handlers:
            root.addHandler(old)
        root.setLevel(level)


def test_records_of_a_request_about_an_automation_carry_its_id(json_log: io.StringIO) -> None:
    app = FastAPI()
    errors.install(app)

    @app.get("/automations/{automation_id}", dependencies=[Depends(automation_log_context)])
    async def read(automation_id: uuid.UUID) -> None:
        logging.getLogger("automations.api").info("reading")
        raise StoreUnavailable("down")  # its handler logs too, after the route

    @app.get("/elsewhere")
    async def unrelated() -> None:
        logging.getLogger("automations.api").info("elsewhere")

    automation_id = uuid.uuid4()
    with TestClient(app) as client:
        assert client.get(f"/automations/{automation_id}").status_code == 503
        assert client.get("/elsewhere").status_code == 200
    lines = [json.loads(text) for text in json_log.getvalue().splitlines()]
    reading, handled, elsewhere = (
        next(line for line in lines if line["message"].startswith(start))
        for start in ("reading", "GET /automations", "elsewhere")
    )
    assert reading["automation_id"] == handled["automation_id"] == str(automation_id)
    assert handled["error_type"] == "StoreUnavailable"
    assert "automation_id" not in elsewhere
