"""The log output a process writes (temporal_automations/logs.py): `--log-json` gives one JSON
object per line with time, level, logger, message and the record's fields; `--log-level` sets
the least level. The formatter in-process, then a real `automations bridge prefect` process."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from temporal_automations import logs
from temporal_automations.devserver import free_port

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "temporal_automations.cli"]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of its own writing through the process setup's handler into a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    handler = logs.configure("DEBUG", json_lines=True, stream=buffer)
    try:
        yield logging.getLogger("automations.test"), buffer
    finally:
        root.removeHandler(handler)
        for old in handlers:
            root.addHandler(old)
        root.setLevel(level)


def test_a_json_line_has_the_standard_keys_then_the_fields(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = logger
    log.warning("action %d failed", 2, extra={"automation_id": "a-1", "firing_id": "f-1"})
    (text,) = buffer.getvalue().splitlines()
    line = json.loads(text)
    assert list(line)[:4] == ["time", "level", "logger", "message"]
    assert line["level"] == "WARNING" and line["logger"] == "automations.test"
    assert line["message"] == "action 2 failed"
    assert line["automation_id"] == "a-1" and line["firing_id"] == "f-1"
    assert datetime.fromisoformat(line["time"]).utcoffset() is not None  # aware, UTC


def test_bound_fields_reach_every_record_of_the_block_and_an_exception_stays_on_one_line(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = logger
    with logs.bind(automation_id="a-2", firing_id=None):
        try:
            raise ValueError("bad\nnews")
        except ValueError:
            log.exception("it broke")
    log.info("outside")
    inside, outside = (json.loads(text) for text in buffer.getvalue().splitlines())
    assert inside["automation_id"] == "a-2" and "firing_id" not in inside
    assert "ValueError: bad\nnews" in inside["exception"]
    assert "automation_id" not in outside


def test_a_sdk_record_of_an_overflow_child_names_its_automation(
    logger: tuple[logging.Logger, io.StringIO],
) -> None:
    log, buffer = logger
    automation = "0b7f6a7e-7a4c-4d1e-9a34-2f1c1a3e5b6d"
    workflow_id = f"automation-{automation}-overflow-run-0"
    log.info("from the SDK", extra={"temporal_workflow": {"workflow_id": workflow_id}})
    assert json.loads(buffer.getvalue())["automation_id"] == automation


def wait_for_text(
    path: Path, text: str, process: subprocess.Popen[bytes], timeout: float
) -> list[str]:
    """The whole lines of `path` once one holds `text` (or the process ended, or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        written = path.read_text()
        whole = written[: written.rfind("\n") + 1]
        if text in whole:
            return whole.splitlines()
        time.sleep(0.1)
    return path.read_text().splitlines()


@pytest.mark.e2e
def test_log_json_and_log_level_on_a_real_process() -> None:
    # A bridge whose Prefect server is not there: it logs why, as a warning, and retries.
    closed = free_port()
    env = {**os.environ, "API_URL": "http://127.0.0.1:1/api"}
    args = ["bridge", "prefect", "--prefect-api-url", f"http://127.0.0.1:{closed}/api"]
    with tempfile.TemporaryDirectory() as folder:
        stderr = Path(folder) / "stderr"
        with stderr.open("wb") as sink:
            process = subprocess.Popen(
                [*CLI, *args, "--log-json", "--log-level", "warning"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        try:
            lines = wait_for_text(stderr, "event stream lost", process, timeout=30)
        finally:
            process.kill()
            process.wait()
    assert lines, "the bridge logged nothing"
    for text in lines:
        line = json.loads(text)  # every line one JSON object
        assert line["level"] in ("WARNING", "ERROR", "CRITICAL")  # nothing under the level
        assert {"time", "level", "logger", "message"} <= set(line)
    assert any(
        json.loads(text)["logger"] == "automations.bridge"
        and "event stream lost" in json.loads(text)["message"]
        for text in lines
    )
