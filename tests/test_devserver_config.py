"""The queue tuning the dev server is started with, and the dynamic config shipped for other
Temporal servers (`deploy/`), are the same settings: a change to one is a change to both."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from temporal_automations.devserver import ON_TIME_QUEUES, DevServer

SHIPPED = Path(__file__).resolve().parent.parent / "deploy" / "temporal-dynamicconfig.yaml"


def test_the_shipped_dynamic_config_is_the_dev_server_s_queue_tuning() -> None:
    shipped = yaml.safe_load(SHIPPED.read_text())
    assert {key: entries[0]["value"] for key, entries in shipped.items()} == {
        key: json.loads(value) for key, value in ON_TIME_QUEUES.items()
    }


def test_the_dev_server_starts_with_the_timer_and_transfer_queues_read_on_time() -> None:
    command = DevServer().command()
    values = {command[i + 1] for i, part in enumerate(command) if part == "--dynamic-config-value"}
    assert {f"{key}={value}" for key, value in ON_TIME_QUEUES.items()} <= values
    assert "history.transferProcessorMaxPollRPS=1000" in values
