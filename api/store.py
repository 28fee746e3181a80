"""Automations kept in Temporal: each is the workflow `automation-<id>`. Every API process
keeps a catalog of them (what reads answer from and what the event router routes by):

- loaded at start from Temporal's visibility index, a page of up to CATALOG_PAGE_SIZE
  automations per call, each read from its memo (the definition without secrets: routing needs
  only triggers, and answers always mask secrets), never one query per automation;
- kept current after that by a change feed: every CATALOG_POLL_SECONDS a few visibility
  queries (each served by one index, so a poll's cost does not grow with the automations) for
  the automations whose `AutomationUpdated` search attribute (set at creation and by the
  workflow on every change of definition), start or close time is recent, so an automation
  created, changed or deleted through any API process is routed by every other within about
  a second;
- updated at once by this process's own writes, so reads see writes immediately;
- read whole again every CATALOG_RESYNC_SECONDS, beside the feed, a small page at a time
  (NewestFirst), as a net for what the feed missed.

Until the first load is complete the catalog is not `ready`: events are refused (routing by
half a catalog would drop events) and /api/health says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID, uuid4

from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    ListWorkflowExecutionsRequest,
    ListWorkflowExecutionsResponse,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations import logs
from temporal_automations.api.routing import CatalogNotReady
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import utcnow
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.domain.secrets import seal_automation
from temporal_automations.settings import Settings, secret_box
from temporal_automations.temporal import (
    AUTOMATION_UPDATED,
    WORKFLOW_TYPE,
    automation_id_of,
    workflow_id,
)
from temporal_automations.workflows.automation import (
    AutomationWorkflow,
    RunLimits,
    memo_for,
    search_attributes_for,
)
from temporal_automations.workflows.carried import (
    AutomationRun,
    AutomationStats,
    AutomationStatus,
)

log = logging.getLogger("automations.api")

__all__ = ["AutomationNotFound", "AutomationStore", "CatalogNotReady"]

STATUS_TIMEOUT = timedelta(seconds=5)
BUSY_STATUS_TIMEOUT = timedelta(seconds=2)
# Counters of many automations at once (the list's refresh): ids per visibility call, and the
# most time the whole read may take (what is not read by then is "unknown").
COUNTERS_CHUNK = 100
COUNTERS_TIMEOUT = 3.0
COUNTER_FIELDS = ("firings", "last_fired", "events_received", "errors", "last_error")
# Up to this many automations (with their memos, a few KB each) per visibility call: well
# under gRPC's 4 MB message limit.
CATALOG_PAGE_SIZE = 500
CATALOG_POLL_SECONDS = 0.4
# The feed asks about what API processes do (create, change, delete) every poll, and about
# what happens only some other way (a run started without our attribute, cancelled from the
# Web UI) every this many polls: five small queries fewer a poll.
CATALOG_RARE_EVERY = 10
# Visibility is written a little after the change, and API processes' clocks differ a little:
# each poll looks this far behind the last one. What it sees again costs a comparison (a
# search attribute; its memo is decoded only when newer), about (overlap / interval) times the
# rate of changes: 5 polls' worth at most.
CATALOG_OVERLAP = timedelta(seconds=2)
# Reading definitions too large for the memo (a query each) at once, at most this many.
QUERY_CONCURRENCY = 16
# And every so often, the whole index again: a net for a change the feed missed. It reads
# small pages with a pause between them, beside the feed's polls. Each row costs the dev
# server ~0.25 ms (its memo): the 21 pages of 500 it read at once at 10,000 automations,
# 150-250 ms each, made deadlines due meanwhile up to 118 ms late (p99 86.5 ms in that
# round of 100, 18-22 ms in quiet ones). Now ~8 ms a page, 0.1 s apart: 61 s at 10,000.
CATALOG_RESYNC_SECONDS = 300.0
RESYNC_PAGE_SIZE = 20
RESYNC_PAUSE_SECONDS = 0.1
# Ids deleted here are kept this long so that a page listed before the deletion does not
# bring them back.
FORGET_DELETED_AFTER = 120.0
# How a run ends for good, but for Terminated (a deletion). One that continued as new is not
# a deletion: its next run carries on.
_RARELY_GONE = ("Completed", "Failed", "Canceled", "TimedOut")
_RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
_ENDED_FOR_GOOD = {
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
    WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}
_RUNNING_QUERY = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"

CatalogListener = Callable[[UUID, Automation | None], None]


class AutomationNotFound(LookupError):
    pass


def _changes_since(since: str, rare_since: str | None) -> list[str]:
    """The change feed's visibility queries, each one the visibility store answers from one
    index. One query OR-ing them made SQLite (the dev server's store) read every row: 55 ms
    a poll at 10,000 automations, 2.5 polls a second; these take ~1 ms each. What API
    processes do (create, change, delete) is asked every poll; what only happens some other
    way is asked too when `rare_since` is given, from then on."""
    ours = f"WorkflowType = '{WORKFLOW_TYPE}'"

    def ended(status: str, after: str) -> str:  # one status a query: its index
        return f"{ours} AND ExecutionStatus = '{status}' AND CloseTime >= '{after}'"

    queries = [
        # Created by an API process (it sets the attribute at start) or changed since.
        f"{ours} AND {AUTOMATION_UPDATED.name} >= '{since}'",
        ended("Terminated", since),  # deleted (or terminated from the Web UI)
    ]
    if rare_since is not None:
        queries += [
            # Started some other way, without the attribute: read by query.
            f"{ours} AND ExecutionStatus = 'Running' AND ExecutionTime >= '{rare_since}'",
            # Cancelled from the Web UI, or ended by a failure or a timeout.
            *(ended(status, rare_since) for status in _RARELY_GONE),
        ]
    return queries


def read_feed(
    answers: Sequence[Sequence[WorkflowExecutionInfo]],
) -> tuple[list[str], list[WorkflowExecutionInfo]]:
    """The change feed's answers as (workflow ids whose automation is gone, running rows).
    A run can be in two answers (changed, then ended between the queries): its end is
    final. A run that continued as new is not an end (the attribute's query can return it):
    its next run carries on, and may not be in visibility yet. An id with a run still running
    (ended, then started again under the same id) is not gone."""
    latest: dict[tuple[str, str], WorkflowExecutionInfo] = {}
    for info in (info for answer in answers for info in answer):
        key = (info.execution.workflow_id, info.execution.run_id)
        if key not in latest or info.status != _RUNNING:
            latest[key] = info
    running = [info for info in latest.values() if info.status == _RUNNING]
    still_running = {info.execution.workflow_id for info in running}
    gone = {
        info.execution.workflow_id
        for info in latest.values()
        if info.status in _ENDED_FOR_GOOD and info.execution.workflow_id not in still_running
    }
    return sorted(gone), running


NextPage = Literal["more", "ties", "done"]


class NewestFirst:
    """Where a listing of the running automations, newest start first, stands between pages.
    Each page is a query of its own, bounded by the oldest start time listed so far
    (`StartTime <= t`), which the index serves at any depth; the server's page token made
    SQLite read every row before the page (20 rows: 7 ms for the first page, 43 ms for the
    last, at 10,000). The rows started at the bound itself come again and are skipped; when
    more of them than a page started at that very instant, they are listed whole by
    `at_bound_query` and the listing goes on strictly before it."""

    def __init__(self) -> None:
        self.bound: Timestamp | None = None
        self.strictly_before = False  # the rows at `bound` are all listed
        self.seen_at_bound: set[str] = set()  # run ids listed that started at `bound`

    def query(self) -> str:
        if self.bound is None:
            return _RUNNING_QUERY
        before = "<" if self.strictly_before else "<="
        return f"{_RUNNING_QUERY} AND StartTime {before} '{self.bound.ToJsonString()}'"

    def at_bound_query(self) -> str:
        assert self.bound is not None
        return f"{_RUNNING_QUERY} AND StartTime = '{self.bound.ToJsonString()}'"

    def take(
        self, rows: Sequence[WorkflowExecutionInfo], more: bool
    ) -> tuple[list[WorkflowExecutionInfo], NextPage]:
        """The rows of a page not listed before, and what next; `more`: the server said more
        rows match this page's query (a page token)."""
        new = [row for row in rows if row.execution.run_id not in self.seen_at_bound]
        if not more:
            return new, "done"
        if not new:  # a whole page started at `bound`, all listed already
            return [], "ties"
        last = new[-1].start_time
        if self.bound is None or _instant(last) != _instant(self.bound):
            self.seen_at_bound = set()
        self.bound, self.strictly_before = last, False
        self.seen_at_bound |= {
            row.execution.run_id for row in new if _instant(row.start_time) == _instant(last)
        }
        return new, "more"

    def past_ties(self) -> None:
        """The rows at `bound` are listed whole: go on strictly before it."""
        self.strictly_before = True
        self.seen_at_bound = set()


def _instant(moment: Timestamp) -> tuple[int, int]:
    return moment.seconds, moment.nanos


PageReader = Callable[[str, int], Awaitable[tuple[Sequence[WorkflowExecutionInfo], bool]]]
RowsReader = Callable[[str], Awaitable[list[WorkflowExecutionInfo]]]


async def newest_first(
    read_page: PageReader, read_all: RowsReader, page_size: int, pause: float
) -> AsyncGenerator[Sequence[WorkflowExecutionInfo]]:
    """The running automations, newest start first, `page_size` at a time (NewestFirst),
    `pause` seconds between pages. `read_page(query, size)` answers one page and whether
    more rows match; `read_all(query)` every row a query matches."""
    listing = NewestFirst()
    while True:
        rows, more = await read_page(listing.query(), page_size)
        new, next_page = listing.take(rows, more)
        if new:
            yield new
        if next_page == "ties":
            at_bound = await read_all(listing.at_bound_query())
            yield [row for row in at_bound if row.execution.run_id not in listing.seen_at_bound]
            listing.past_ties()
        elif next_page == "done":
            return
        await asyncio.sleep(pause)


def _visibility_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AutomationStore:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.secrets = secret_box(settings)
        self.catalog: dict[UUID, Automation] = {}
        self._listeners: list[CatalogListener] = []
        self._deleted: dict[UUID, float] = {}
        # Runs seen ending elsewhere, with their definition: a run started again under the
        # same id (a reset, a restart by hand) without a memo gets it back.
        self._ended: dict[UUID, tuple[float, Automation]] = {}
        # When each automation last changed here (created, changed or dropped, by this
        # process or the feed), since the last resync began: what a resync listed before
        # such a change is older than it.
        self._touched: dict[UUID, float] = {}
        # Loading: for /api/health and the 503s until it is done.
        self.ready = False
        self.load_started: float | None = None
        self.load_seconds: float | None = None
        self.load_error: str | None = None
        # Following: the time of the last visibility poll that succeeded (the next looks from
        # there, less CATALOG_OVERLAP), and what went wrong with the last one that failed.
        self._followed_to: datetime | None = None
        self._rare_followed_to: datetime | None = None
        self._polls = 0
        self.follow_error: str | None = None
        self.resync_error: str | None = None
        self.last_followed: float | None = None

    def on_change(self, listener: CatalogListener) -> None:
        """`listener(id, automation)` for each automation created or changed, `(id, None)`
        for each one gone."""
        self._listeners.append(listener)

    def _put(self, automation: Automation) -> None:
        self.catalog[automation.id] = automation
        self._touched[automation.id] = time.monotonic()
        for listener in self._listeners:
            listener(automation.id, automation)

    def _drop(self, automation_id: UUID, deleted_here: bool = True) -> None:
        now = time.monotonic()
        self._touched[automation_id] = now
        if deleted_here:
            self._deleted[automation_id] = now
        gone = self.catalog.pop(automation_id, None)
        if gone is not None:
            if not deleted_here:
                self._ended[automation_id] = (now, gone)
            for listener in self._listeners:
                listener(automation_id, None)

    def _merge(self, automation: Automation) -> bool:
        """Take what visibility says unless this process knows better: a newer definition
        (its own write), or that the automation is gone."""
        if automation.id in self._deleted:
            return False
        known = self.catalog.get(automation.id)
        if known is not None and known.updated >= automation.updated:
            return False
        self._put(automation)
        return True

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Read every running automation from the visibility index, a page at a time, then
        mark the catalog ready. Definitions too large for a memo are read by query."""
        self.load_started = time.monotonic()
        started_at = datetime.now(UTC)
        missing: list[str] = []
        async for page in self._pages(_RUNNING_QUERY):
            for info in page:
                automation = await self._from_memo(info)
                if automation is None:
                    missing.append(info.execution.workflow_id)
                else:
                    self._merge(automation)
        await self._read_by_query(missing)
        self._followed_to = self._rare_followed_to = started_at
        self.load_seconds = time.monotonic() - self.load_started
        self.ready = True
        log.info("loaded %d automations in %.2f s", len(self.catalog), self.load_seconds)

    async def load_and_follow(self, loaded: Callable[[], None] | None = None) -> None:
        """`load` (retried until it succeeds), `loaded()`, then `follow` until cancelled."""
        while not self.ready:
            try:
                await self.load()
            except Exception as error:  # Temporal unreachable: keep refusing, try again
                self.load_error = f"{type(error).__name__}: {error}"
                log.warning("could not load the automations catalog: %s", self.load_error)
                await asyncio.sleep(1.0)
        self.load_error = None
        if loaded is not None:
            loaded()
        await self.follow()

    async def follow(self) -> None:
        """Poll the change feed until cancelled; every CATALOG_RESYNC_SECONDS a resync runs
        beside the polls (it took 61 s at 10,000 automations on the dev server)."""
        resync: asyncio.Task[None] | None = None
        resync_at = time.monotonic() + CATALOG_RESYNC_SECONDS
        try:
            while True:
                await asyncio.sleep(CATALOG_POLL_SECONDS)
                try:
                    await self.poll_changes()
                except Exception as error:
                    self.follow_error = f"{type(error).__name__}: {error}"
                    log.warning("could not follow catalog changes: %s", self.follow_error)
                if time.monotonic() >= resync_at and (resync is None or resync.done()):
                    resync = asyncio.create_task(self._resync_logged())
                    resync_at = time.monotonic() + CATALOG_RESYNC_SECONDS
        finally:
            if resync is not None and not resync.done():
                resync.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await resync

    async def _resync_logged(self) -> None:
        try:
            await self.resync()
            self.resync_error = None
        except Exception as error:  # the next one, CATALOG_RESYNC_SECONDS on, tries again
            self.resync_error = f"{type(error).__name__}: {error}"
            log.warning("could not resync the catalog: %s", self.resync_error)

    async def resync(self) -> int:
        """Read the whole index again, as at start: what the change feed missed (a change
        whose visibility record came later than CATALOG_OVERLAP) is put right. Returns how
        many automations it changed here."""
        started = time.monotonic()
        seen: set[UUID] = set()
        changed = 0
        missing: list[str] = []
        pages = newest_first(self._page, self._rows, RESYNC_PAGE_SIZE, RESYNC_PAUSE_SECONDS)
        async for page in pages:
            for info in page:
                with contextlib.suppress(ValueError):
                    automation_id = automation_id_of(info.execution.workflow_id)
                    seen.add(automation_id)
                    if self._touched.get(automation_id, 0.0) >= started:
                        continue  # changed here while this pass ran: newer than this row
                if not self._may_be_news(info):
                    continue
                automation = await self._from_memo(info)
                if automation is None:
                    if not self._known(info.execution.workflow_id):
                        missing.append(info.execution.workflow_id)
                else:
                    changed += self._merge(automation)
        changed += await self._read_by_query(missing)
        for automation_id in [i for i in self.catalog if i not in seen]:
            # Not running any more. One that came here (created, or from the feed) since the
            # listing began, after the rows that would have had it, is kept.
            if self._touched.get(automation_id, 0.0) < started:
                changed += 1
                self._drop(automation_id, deleted_here=False)
        self._touched = {i: at for i, at in self._touched.items() if at >= started}
        return changed

    async def poll_changes(self) -> int:
        """The visibility queries for what changed since the last poll; returns how many
        automations it changed here."""
        polled_at = datetime.now(UTC)
        since = _visibility_time((self._followed_to or polled_at) - CATALOG_OVERLAP)
        self._polls += 1
        rare = self._polls % CATALOG_RARE_EVERY == 0 or self._rare_followed_to is None
        rare_since = (
            _visibility_time((self._rare_followed_to or polled_at) - CATALOG_OVERLAP)
            if rare
            else None
        )
        queries = _changes_since(since, rare_since)
        answers = await asyncio.gather(*(self._rows(q) for q in queries))
        gone, running = read_feed(answers)
        changed = 0
        for id_ in gone:
            with contextlib.suppress(ValueError):
                automation_id = automation_id_of(id_)
                changed += automation_id in self.catalog
                self._drop(automation_id, deleted_here=False)
        missing: list[str] = []
        for info in running:
            id_ = info.execution.workflow_id
            if not self._may_be_news(info):
                continue
            automation = await self._from_memo(info) or self._ended_before(id_)
            if automation is not None:
                changed += self._merge(automation)
            elif not self._known(id_):
                missing.append(id_)  # no memo (started by something else): ask it
        changed += await self._read_by_query(missing)
        self._followed_to = polled_at
        if rare:
            self._rare_followed_to = polled_at
        self.last_followed = time.monotonic()
        self.follow_error = None
        self._forget_deleted()
        return changed

    def _ended_before(self, id_: str) -> Automation | None:
        with contextlib.suppress(ValueError):
            ended = self._ended.get(automation_id_of(id_))
            return ended[1] if ended else None
        return None

    def _known(self, id_: str) -> bool:
        try:
            return automation_id_of(id_) in self.catalog
        except ValueError:
            return False

    async def _rows(self, query: str) -> list[WorkflowExecutionInfo]:
        return [info async for page in self._pages(query) for info in page]

    async def _pages(self, query: str) -> AsyncGenerator[Sequence[WorkflowExecutionInfo]]:
        """The executions a visibility query finds, a page at a time, the next page asked for
        while this one is read. Raw: the SDK's list_workflows decodes every search attribute
        of every execution (measured: 3 of the 6 s that 10,000 took); we read only the
        memo, and one attribute where needed."""

        def ask(token: bytes) -> asyncio.Task[ListWorkflowExecutionsResponse]:
            return asyncio.create_task(self._list_page(query, CATALOG_PAGE_SIZE, token))

        pending = ask(b"")
        try:
            while True:
                page = await pending
                if page.next_page_token:
                    pending = ask(page.next_page_token)
                yield page.executions
                if not page.next_page_token:
                    return
        finally:
            if not pending.done():
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, RPCError):
                    await pending

    async def _page(self, query: str, size: int) -> tuple[Sequence[WorkflowExecutionInfo], bool]:
        page = await self._list_page(query, size)
        return page.executions, bool(page.next_page_token)

    async def _list_page(
        self, query: str, size: int, token: bytes = b""
    ) -> ListWorkflowExecutionsResponse:
        while True:
            try:
                return await self.client.workflow_service.list_workflow_executions(
                    ListWorkflowExecutionsRequest(
                        namespace=self.settings.temporal_namespace,
                        query=query,
                        page_size=size,
                        next_page_token=token,
                    )
                )
            except RPCError as error:
                # Over gRPC's 4 MB: large definitions in these memos. Smaller pages.
                if error.status != RPCStatusCode.RESOURCE_EXHAUSTED or size == 1:
                    raise
                size = max(1, size // 8)

    def _may_be_news(self, info: WorkflowExecutionInfo) -> bool:
        """Cheap (one search attribute, no memo decoded): could it be newer than ours?"""
        with contextlib.suppress(Exception):
            known = self.catalog.get(automation_id_of(info.execution.workflow_id))
            raw = info.search_attributes.indexed_fields.get(AUTOMATION_UPDATED.name)
            if known is not None and raw is not None:
                updated = datetime.fromisoformat(json.loads(raw.data))
                return updated > known.updated
        return True

    async def _from_memo(self, info: WorkflowExecutionInfo) -> Automation | None:
        try:
            payload = info.memo.fields.get("automation")
            if payload is None:
                return None
            if payload.metadata.get("encoding") == b"json/plain":
                # The pydantic converter's JSON, validated straight from its bytes: about twice
                # as fast as decoding to a dict first, which counts for 10,000 at start-up.
                return Automation.model_validate_json(payload.data)
            decoded = await self.client.data_converter.decode([payload], [dict])
            return Automation.model_validate(decoded[0]) if decoded[0] else None
        except Exception:  # a memo cut to id and name (too large), or not ours: ask it
            return None

    async def _read_by_query(self, ids: list[str]) -> int:
        gate = asyncio.Semaphore(QUERY_CONCURRENCY)

        async def read(id_: str) -> Automation | None:
            async with gate:
                try:
                    return (await self._status(id_)).automation
                except Exception as error:
                    log.warning(
                        "could not read automation workflow %s: %r",
                        id_,
                        error,
                        extra={"automation_id": logs.automation_of_workflow(id_)},
                    )
                    return None

        found = await asyncio.gather(*(read(id_) for id_ in ids))
        return sum(self._merge(automation) for automation in found if automation is not None)

    def _forget_deleted(self) -> None:
        horizon = time.monotonic() - FORGET_DELETED_AFTER
        for automation_id in [i for i, at in self._deleted.items() if at < horizon]:
            del self._deleted[automation_id]
        for automation_id in [i for i, (at, _) in self._ended.items() if at < horizon]:
            del self._ended[automation_id]

    def catalog_health(self) -> dict[str, Any]:
        """For /api/health: loaded or not, how many, how fresh the change feed is."""
        report: dict[str, Any] = {"loaded": self.ready, "automations": len(self.catalog)}
        if self.load_seconds is not None:
            report["load_seconds"] = round(self.load_seconds, 3)
        elif self.load_started is not None:
            report["loading_for_seconds"] = round(time.monotonic() - self.load_started, 3)
        if self.load_error:
            report["load_error"] = self.load_error
        if self.last_followed is not None:
            report["changes_seen_seconds_ago"] = round(time.monotonic() - self.last_followed, 3)
        if self.follow_error:
            report["follow_error"] = self.follow_error
        if self.resync_error:
            report["resync_error"] = self.resync_error
        return report

    def require_ready(self) -> None:
        if not self.ready:
            raise CatalogNotReady("the automations catalog is still loading")

    # ------------------------------------------------------------------ reads

    def get(self, automation_id: UUID) -> Automation:
        try:
            return self.catalog[automation_id]
        except KeyError:
            self.require_ready()  # not found yet is not "not found"
            raise AutomationNotFound(automation_id) from None

    def all(self) -> list[Automation]:
        self.require_ready()
        return list(self.catalog.values())

    def known(self) -> list[Automation]:
        """What the catalog holds so far, loaded or not (for health probes)."""
        return list(self.catalog.values())

    async def status(self, automation_id: UUID) -> AutomationStatus:
        """The status query; when the workflow is too busy to answer in time (a burst of
        actions holds its workflow task), the counters its memo had at its last task."""
        automation = self.get(automation_id)
        try:
            return await self._status(workflow_id(automation_id), BUSY_STATUS_TIMEOUT)
        except RPCError as error:
            if error.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
        description = await self._handle(workflow_id(automation_id)).describe()
        memo = await description.memo()
        return AutomationStatus(
            automation=automation,
            # The memo's counters are AutomationStats' own fields (workflows.counters_memo).
            stats=AutomationStats.model_validate(memo),
            next_deadline=None,
            open_windows=0,
            triggered_keys=0,
            held_events=0,
            live=False,
        )

    async def counters(
        self, automation_ids: Sequence[UUID], timeout: float = COUNTERS_TIMEOUT
    ) -> dict[UUID, dict[str, Any]]:
        """The counters (AutomationStats' summary fields, as `counters_memo` writes them) of
        many automations at once, from their memos in the visibility index: one call per
        COUNTERS_CHUNK of them, whether or not a worker runs (no workflow has to answer; the
        counters are those of each one's last workflow task). An id missing from the answer
        (not in the catalog, not listed yet, a memo it cannot read, a call Temporal refused, or
        no answer within `timeout` seconds) is missing from the result: the caller says
        "unknown". Only when Temporal refused every call and nothing was read, its error."""
        wanted = [i for i in dict.fromkeys(automation_ids) if i in self.catalog]
        found: dict[UUID, dict[str, Any]] = {}
        refused: list[RPCError] = []

        async def read(chunk: list[UUID]) -> None:
            # UUIDs, so nothing here can break out of the quotes.
            listed = ", ".join(f"'{workflow_id(i)}'" for i in chunk)
            query = f"{_RUNNING_QUERY} AND WorkflowId IN ({listed})"
            try:
                async with contextlib.aclosing(self._pages(query)) as pages:
                    async for page in pages:
                        for info in page:
                            read_one = await self._counters_from_memo(info)
                            if read_one is not None:
                                found[read_one[0]] = read_one[1]
            except RPCError as error:  # this chunk is unknown; the others may still answer
                log.warning("could not list counters: %s %s", error.status.name, error.message)
                refused.append(error)

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                for start in range(0, len(wanted), COUNTERS_CHUNK):
                    await read(wanted[start : start + COUNTERS_CHUNK])
        if refused and not found:
            raise refused[0]  # Temporal answered none of it: the caller's 503
        return found

    async def _counters_from_memo(
        self, info: WorkflowExecutionInfo
    ) -> tuple[UUID, dict[str, Any]] | None:
        try:
            automation_id = automation_id_of(info.execution.workflow_id)
            fields = info.memo.fields
            names = [name for name in COUNTER_FIELDS if name in fields]
            if "firings" not in names:
                return None
            decoded = await self.client.data_converter.decode([fields[n] for n in names])
            stats = AutomationStats.model_validate(dict(zip(names, decoded, strict=True)))
        except Exception:  # not ours, or a memo from before counters: unknown
            return None
        return automation_id, stats.model_dump(mode="json", include=set(COUNTER_FIELDS))

    async def _status(self, id_: str, timeout: timedelta = STATUS_TIMEOUT) -> AutomationStatus:
        # Bounded: with no worker a query would wait for one until the client gives up.
        return await self._handle(id_).query(AutomationWorkflow.status, rpc_timeout=timeout)

    # ------------------------------------------------------------------ writes

    async def create(self, core: AutomationCore) -> Automation:
        # The id and times are drawn here, once, and travel in the workflow's input: the
        # stored model has no defaults of its own that a replay could draw differently.
        now = utcnow()
        automation = seal_automation(core.to_automation(uuid4(), now, now), self.secrets)
        await self.client.start_workflow(
            AutomationWorkflow.run,
            AutomationRun(
                automation=automation,
                limits=RunLimits(
                    firings_per_minute=self.settings.max_firings_per_minute,
                    chained_firings_per_minute=self.settings.max_chained_firings_per_minute,
                ),
            ),
            id=workflow_id(automation.id),
            task_queue=self.settings.task_queue,
            memo=memo_for(automation, AutomationStats()),
            search_attributes=search_attributes_for(automation),
            static_summary=f"Automation: {automation.name}",
            # Continue-as-new keeps it: the runs that follow inherit their first run's timeout.
            task_timeout=self.settings.workflow_task_timeout,
        )
        self._put(automation)
        return automation

    async def replace(self, automation_id: UUID, core: AutomationCore) -> Automation:
        current = self.get(automation_id)
        # A mask sent back is sealed as is; the workflow swaps it for the secret it holds.
        automation = seal_automation(
            core.to_automation(automation_id, current.created, utcnow()), self.secrets
        )
        result = await self._update(automation_id, AutomationWorkflow.replace, automation)
        self._put(result)
        return result

    async def set_enabled(self, automation_id: UUID, enabled: bool) -> Automation:
        self.get(automation_id)
        result = await self._update(automation_id, AutomationWorkflow.set_enabled, enabled)
        self._put(result)
        return result

    async def delete(self, automation_id: UUID) -> None:
        self.get(automation_id)
        try:
            await self._handle(workflow_id(automation_id)).terminate(reason="automation deleted")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        self._drop(automation_id)

    async def _update(self, automation_id: UUID, update: Any, argument: Any) -> Automation:
        handle = self._handle(workflow_id(automation_id))
        try:
            return await handle.execute_update(update, argument)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                self._drop(automation_id)
                raise AutomationNotFound(automation_id) from error
            raise

    def _handle(self, id_: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(id_)
