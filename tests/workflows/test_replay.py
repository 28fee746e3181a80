"""Replay safety: today's AutomationWorkflow and EventInboxWorkflow must replay the histories of
runs recorded earlier.

Every JSON file under histories/ (subfolders included) is one run's history, captured from a real
dev server by `scripts/capture_histories.py`. Temporal replays a running workflow's history
whenever a worker picks it up again (after a restart, a deploy, a cache eviction): code that no
longer issues the same commands for that history fails the run's workflow tasks. This replays
each file with the Replayer, offline, and names every file that no longer replays.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from temporal_automations.workflows.automation import AutomationWorkflow
from temporal_automations.workflows.inbox import EventInboxWorkflow

HISTORIES = Path(__file__).parent / "histories"
CAPTURE = ".venv/bin/python scripts/capture_histories.py"


def history_files() -> list[Path]:
    return sorted(HISTORIES.rglob("*.json"))


def load(path: Path) -> WorkflowHistory:
    """A history file as the Replayer takes it. The file holds events only; the workflow id
    comes from its start event (the file's name if the server did not record it there)."""
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    started = history.events[0].workflow_execution_started_event_attributes
    return WorkflowHistory(started.workflow_id or path.stem, history.events)


async def replay(workflows: list[type], paths: Iterable[Path]) -> dict[str, BaseException]:
    """Replay every file; the failures by file name (relative to histories/)."""
    by_run: dict[str, str] = {}
    histories: list[WorkflowHistory] = []
    for path in paths:
        history = load(path)
        name = str(path.relative_to(HISTORIES))
        assert history.run_id not in by_run, f"{name} repeats the run of {by_run[history.run_id]}"
        by_run[history.run_id] = name
        histories.append(history)

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    replayer = Replayer(workflows=workflows, data_converter=pydantic_data_converter)
    results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
    return {by_run[run_id]: error for run_id, error in results.replay_failures.items()}


def test_there_are_histories_to_replay() -> None:
    assert history_files(), f"no history under {HISTORIES}: capture them with `{CAPTURE}`"


def captures() -> list[Path]:
    """The capture folders (one per patch, and the first captures at the top), so that the
    replay splits into tests that run in parallel (pytest -n)."""
    return sorted({path.parent for path in history_files()})


@pytest.mark.parametrize("capture", captures(), ids=lambda path: path.name)
async def test_every_recorded_history_replays_on_todays_workflow(capture: Path) -> None:
    files = [path for path in history_files() if path.parent == capture]
    failures = await replay([AutomationWorkflow, EventInboxWorkflow], files)
    assert not failures, (
        "these recorded runs no longer replay: a change altered the commands a running "
        "workflow issues; guard it with workflow.patched() and keep these histories\n"
        + "\n".join(f"{name}: {error!r}" for name, error in sorted(failures.items()))
    )


# --------------------------------------------------------------------------- the test can fail


@workflow.defn(name="AutomationWorkflow")
class ChangedAutomationWorkflow:
    """AutomationWorkflow as a careless change could leave it: its first command is a timer
    the recorded runs never started, and it then issues none of theirs."""

    @workflow.run
    async def run(self, *args: Any) -> None:
        await workflow.sleep(timedelta(days=365), summary="a command no recorded run issued")


@workflow.defn(name="EventInbox")
class ChangedEventInboxWorkflow:
    """The same careless change, to the inbox."""

    @workflow.run
    async def run(self, *args: Any) -> None:
        await workflow.sleep(timedelta(days=365), summary="a command no recorded run issued")


async def test_a_workflow_whose_commands_changed_fails_replay() -> None:
    """The harness catches incompatibility: replayed on a workflow of the same name whose
    commands differ, the recorded histories fail, each with a nondeterminism error. One history
    of each capture is enough to show it (all 114 took 29 s; the test above replays them all)."""
    firsts: dict[tuple[Path, str], Path] = {}  # per capture, per workflow type
    for path in history_files():
        started = load(path).events[0].workflow_execution_started_event_attributes
        firsts.setdefault((path.parent, started.workflow_type.name), path)
    files = list(firsts.values())
    assert {kind for _, kind in firsts} == {"AutomationWorkflow", "EventInbox"}
    failures = await replay([ChangedAutomationWorkflow, ChangedEventInboxWorkflow], files)
    assert len(failures) == len(files), "a history replayed on a workflow of other commands"
    for name, error in failures.items():
        assert isinstance(error, workflow.NondeterminismError), f"{name}: {error!r}"
