"""One logging setup for every process (`automations dev`, `worker`, `api`, the bridges):
`configure(level, json_lines)`, from the CLI's `--log-level` and `--log-json`.

Every record can carry the automation it concerns (`automation_id`) and the firing
(`firing_id`): the workflow passes them as `extra=` (through `workflow.logger`, which stays quiet
during replay), activities and API requests bind them for their whole task (`bind`, a context
variable), and a record of the Temporal SDK about an automation's workflow gets its id from the
workflow id. In JSON, each record is one object on one line: `time`, `level`, `logger`,
`message`, then the fields; as text, the fields follow the message as `key=value`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, TextIO

# What a record says about the automation, in this order, when it says it.
CONTEXT_FIELDS = ("automation_id", "firing_id", "action_index", "action_type", "error_type")
# temporal.workflow_id: automation-<uuid>, and its overflow children's automation-<uuid>-overflow-…
_AUTOMATION_WORKFLOW = re.compile(r"automation-([0-9a-f]{8}-(?:[0-9a-f]{4}-){3}[0-9a-f]{12})")
# The attributes every LogRecord has: whatever else a record holds came as `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

_bound: ContextVar[Mapping[str, Any]] = ContextVar(
    "automations_log_fields", default=MappingProxyType({})
)


def automation_of_workflow(workflow_id: object) -> str | None:
    """The automation id in one of our workflow ids (an automation's or its overflow's)."""
    found = _AUTOMATION_WORKFLOW.match(workflow_id) if isinstance(workflow_id, str) else None
    return found.group(1) if found else None


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Within the block (and the tasks it starts), every record carries these fields."""
    token = _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _bound.reset(token)


def bind_task(**fields: Any) -> None:
    """For the rest of the current task, every record carries these fields (an API request's
    dependency: each request runs in a task of its own, whose context ends with it)."""
    _bound.set({**_bound.get(), **{k: v for k, v in fields.items() if v is not None}})


class ContextFilter(logging.Filter):
    """Adds the bound fields to a record that does not have them already, and the automation
    id of a record the Temporal SDK made in one of our workflows or activities."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _bound.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        if not hasattr(record, "automation_id"):
            temporal = getattr(record, "temporal_workflow", None) or getattr(
                record, "temporal_activity", None
            )
            workflow_id = temporal.get("workflow_id") if isinstance(temporal, dict) else None
            automation_id = automation_of_workflow(workflow_id)
            if automation_id is not None:
                record.automation_id = automation_id
        return True


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's own fields (what came as `extra=` or from the filter), context first."""
    fields = {name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)}
    for name, value in vars(record).items():
        if name not in _STANDARD and name not in fields and not name.startswith("_"):
            fields[name] = value
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **extra_fields(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`time level logger: message key=value …` (the context fields only: the Temporal SDK's
    dictionaries would drown the message)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = [
            f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name)
        ]
        if not fields:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} {' '.join(fields)}{newline}{rest}"


def configure(
    level: str | int = "INFO", json_lines: bool = False, stream: TextIO | None = None
) -> logging.Handler:
    """The root logger writes to `stream` (stderr), as text or JSON lines, from `level` up.
    Called once per process, by the command that starts it (again: the last call wins)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # The SDK appends its workflow/activity details to each message as a dict; they are in
    # the record's fields already (`temporal_workflow`, `temporal_activity`). Imported here:
    # the CLI imports this module, and most of its commands never load the SDK.
    from temporalio import activity, workflow

    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    return handler


LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
