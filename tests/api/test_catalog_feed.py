"""The catalog's change feed: several visibility queries, one row per run from their answers."""

from __future__ import annotations

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo

from temporal_automations.api.store import _changes_since, read_feed

RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
TERMINATED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
CANCELED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
CONTINUED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW


def row(
    workflow_id: str, run_id: str, status: WorkflowExecutionStatus.ValueType
) -> WorkflowExecutionInfo:
    return WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id), status=status
    )


def runs(rows: list[WorkflowExecutionInfo]) -> list[tuple[str, str]]:
    return [(r.execution.workflow_id, r.execution.run_id) for r in rows]


def test_an_ended_run_stays_ended_whichever_answer_saw_it_first() -> None:
    # Changed (the first query sees it running), then deleted before the close query ran.
    for answers in (
        [[row("automation-a", "r1", RUNNING)], [row("automation-a", "r1", TERMINATED)]],
        [[row("automation-a", "r1", TERMINATED)], [row("automation-a", "r1", RUNNING)]],
    ):
        assert read_feed(answers) == (["automation-a"], [])


def test_a_run_that_continued_as_new_is_not_a_deletion() -> None:
    # The attribute's query returns the closed run; its next run may not be visible yet.
    assert read_feed([[row("automation-a", "r1", CONTINUED)], []]) == ([], [])
    gone, running = read_feed(
        [[row("automation-a", "r1", CONTINUED), row("automation-a", "r2", RUNNING)]]
    )
    assert gone == [] and runs(running) == [("automation-a", "r2")]


def test_an_id_started_again_is_not_gone_and_each_run_counts_once() -> None:
    answers = [
        [row("automation-a", "r1", TERMINATED), row("automation-b", "r9", RUNNING)],
        [row("automation-a", "r2", RUNNING), row("automation-b", "r9", RUNNING)],
        [row("automation-c", "r5", CANCELED)],
    ]
    gone, running = read_feed(answers)
    assert gone == ["automation-c"]
    assert sorted(runs(running)) == [("automation-a", "r2"), ("automation-b", "r9")]


def test_each_feed_query_is_one_an_index_can_serve() -> None:
    # SQLite (the dev server's visibility store) reads every row for an OR across columns:
    # one such query cost 55 ms a poll at 10,000 automations, these ~1 ms each.
    every_poll = _changes_since("2026-12-05T00:00:01.000000Z", None)
    rarely = _changes_since("2026-12-05T00:00:01.000000Z", "2026-12-05T00:00:00.000000Z")
    assert len(every_poll) == 2 and rarely[:2] == every_poll
    for query in rarely:
        assert " OR " not in query.upper()
        assert query.startswith("WorkflowType = 'AutomationWorkflow' AND ")
    assert all("00:00:01" in query for query in every_poll)
    assert all("00:00:00" in query for query in rarely[2:])

    def ended(queries: list[str]) -> list[str]:
        closed = [q for q in queries if "CloseTime" in q]
        return [q.split("ExecutionStatus = '")[1].split("'")[0] for q in closed]

    assert ended(every_poll) == ["Terminated"]
    assert ended(rarely) == ["Terminated", "Completed", "Failed", "Canceled", "TimedOut"]
