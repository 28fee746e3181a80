"""The catalog's change feed: several visibility queries, one row per run from their answers;
and the resync's listing, newest start first, each page bounded by the last one."""

from __future__ import annotations

import asyncio
import re

from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import given
from hypothesis import strategies as st
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo

from temporal_automations.api.store import _changes_since, newest_first, read_feed

RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
TERMINATED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
CANCELED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
CONTINUED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW


def row(
    workflow_id: str,
    run_id: str,
    status: WorkflowExecutionStatus.ValueType,
    started: Timestamp | None = None,
) -> WorkflowExecutionInfo:
    return WorkflowExecutionInfo(
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        status=status,
        start_time=started,
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


# ------------------------------------------------------------------ the resync's listing


def at(seconds: int, nanos: int = 0) -> Timestamp:
    return Timestamp(seconds=1_796_500_000 + seconds, nanos=nanos)


def answer(
    rows: list[WorkflowExecutionInfo], query: str, page_size: int
) -> tuple[list[WorkflowExecutionInfo], bool]:
    """What SQL visibility returns for a NewestFirst query: running rows, newest start first
    (then by run id), the first `page_size`, and whether more match (a page token)."""
    bound = re.search(r"StartTime (<=|<|=) '([^']+)'", query)
    matching = sorted(rows, key=lambda r: (-r.start_time.ToNanoseconds(), r.execution.run_id))
    if bound:
        operator, text = bound.groups()
        limit = Timestamp()
        limit.FromJsonString(text)
        keep = {
            "<=": lambda n: n <= limit.ToNanoseconds(),
            "<": lambda n: n < limit.ToNanoseconds(),
            "=": lambda n: n == limit.ToNanoseconds(),
        }[operator]
        matching = [r for r in matching if keep(r.start_time.ToNanoseconds())]
    return matching[:page_size], len(matching) > page_size


def walk(rows: list[WorkflowExecutionInfo], page_size: int) -> tuple[list[str], list[str]]:
    """Run ids listed by `newest_first` over `rows`, in order, and the queries it asked."""
    asked: list[str] = []

    async def read_page(query: str, size: int) -> tuple[list[WorkflowExecutionInfo], bool]:
        asked.append(query)
        assert len(asked) <= 10 * len(rows) + 10, "the listing did not end"
        return answer(rows, query, size)

    async def read_all(query: str) -> list[WorkflowExecutionInfo]:
        asked.append(query)
        return answer(rows, query, len(rows))[0]

    async def listed() -> list[str]:
        pages = newest_first(read_page, read_all, page_size, pause=0.0)
        return [row.execution.run_id async for page in pages for row in page]

    return asyncio.run(listed()), asked


def test_each_page_is_bounded_by_the_last_start_listed() -> None:
    rows = [row(f"automation-{i}", f"r{i}", RUNNING, at(100 - i, 1_500)) for i in range(5)]
    listed, asked = walk(rows, page_size=2)
    assert listed == ["r0", "r1", "r2", "r3", "r4"]
    assert asked[0] == "WorkflowType = 'AutomationWorkflow' AND ExecutionStatus = 'Running'"
    # The bound keeps the nanoseconds (Elasticsearch stores them) and the row at it comes
    # again, to be skipped: `<=`, not `<`.
    assert asked[1].endswith(f"AND StartTime <= '{at(99, 1_500).ToJsonString()}'")
    assert ".000001500Z'" in asked[1]
    assert len(asked) == 4  # after the first, a page of 2 brings one row not listed yet


def test_more_rows_started_at_one_instant_than_a_page_are_listed_once_each() -> None:
    rows = [row("automation-new", "r-new", RUNNING, at(9))]
    rows += [row(f"automation-{i}", f"r-tie{i:02}", RUNNING, at(5)) for i in range(7)]
    rows += [row("automation-old", "r-old", RUNNING, at(1))]
    listed, asked = walk(rows, page_size=3)
    assert sorted(listed) == sorted(r.execution.run_id for r in rows)
    assert len(listed) == len(set(listed))
    assert listed[0] == "r-new" and listed[-1] == "r-old"
    assert any(q.endswith(f"StartTime = '{at(5).ToJsonString()}'") for q in asked)
    assert asked[-1].endswith(f"StartTime < '{at(5).ToJsonString()}'")


@given(
    starts=st.lists(st.integers(min_value=0, max_value=6), min_size=0, max_size=40),
    page_size=st.integers(min_value=1, max_value=7),
)
def test_every_running_row_is_listed_exactly_once(starts: list[int], page_size: int) -> None:
    rows = [
        row(f"automation-{i}", f"r{i:03}", RUNNING, at(start)) for i, start in enumerate(starts)
    ]
    listed, _ = walk(rows, page_size)
    assert sorted(listed) == sorted(r.execution.run_id for r in rows)
