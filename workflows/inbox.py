"""EventInboxWorkflow: the durable fan-in for bulk requests whose events go to many automations.

Why it exists: the API answers a request only once every automation it routed events to holds
them. A request of 500 events that match 100 automations cost 100 signals before that answer,
and the dev server takes ~500 signals a second: one client got ~2,300 events/s through. Sent to
the inbox, the request costs one signal and is answered as soon as the inbox holds it, which is
just as durable. The inbox then delivers in rounds: each automation gets everything that
reached the inbox for it since its last delivery in one signal, so the busier it is, the more
each signal carries.

The story of the inbox (one per task queue, id `automations-inbox-<task queue>`):
1. the API signal-with-starts it with a parcel (`accept`; `temporal_automations.parcels`):
   for each automation, its events as a JSON list;
2. a round takes what is pending, one merged list per automation (at most
   MAX_SIGNAL_BYTES each, the oldest first), and delivers it with one local activity that
   signals them all at once; while the inbox is busy, the next round first waits a little
   (`_gather`), so that it carries more;
3. an automation that is gone is dropped, as the API does; one that failed for now keeps its
   events in front and the next round waits a little longer (backoff); a delivery the server
   will never take is dropped and recorded;
4. when its history grows, it continues as new with what is pending.

A round can run twice (a worker that crashed during it): automations skip event ids they
have already seen. Order: an automation receives its events in the order the inbox accepted
them.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.common import RawValue, RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporal_automations.activities.requests import DELIVER_PARCEL
    from temporal_automations.parcels import (
        MAX_SIGNAL_BYTES,
        DeliveryReport,
        ParcelError,
        events_list,
        is_events_list,
        pack,
        unpack,
    )

INBOX_WORKFLOW_TYPE = "EventInbox"
ACCEPT_SIGNAL = "accept"
MAX_ROUND_BYTES = 8_000_000  # what one round hands its activity
CARRY_BYTES = 1_500_000  # what a continue-as-new carries (its input is one 2 MB payload)
CONTINUE_AT_BYTES = 16_000_000  # history size: each parcel is in it once
CONTINUE_AT_SIGNALS = 1_000  # the server takes 10,000 per run
FORCE_CONTINUE_AT_BYTES = 40_000_000  # ... and ends a run at 50 MB: carry the most we can
ROUND_TIMEOUT = timedelta(seconds=60)
RECORD_FIRST = timedelta(milliseconds=1)
# The pace of rounds: after a round of N signals the next waits N x SPACING (at most
# MAX_ROUND_INTERVAL), so the inbox asks the server for ~100 signals a second, however many
# requests come in; a quiet inbox delivers at once.
SPACING = timedelta(milliseconds=10)
MAX_ROUND_INTERVAL = timedelta(seconds=1)
MAX_PACE = timedelta(hours=1)  # what a run's input may set either to
# workflow.patched id: rounds are paced only while busy (the last round carried more than one
# parcel); a quiet inbox delivers each parcel at once, so a single event for 10 automations
# is not held up to 100 ms behind the previous one's round.
PACE_ONLY_WHEN_BUSY = "inbox-pace-only-when-busy"
# workflow.patched id: after the wait that records the last round, the run continues as new
# only if what it holds still fits (parcels that came during that wait were dropped when they
# took it over CARRY_BYTES: 38-476 deliveries in 4 of 9 runs of the bench's ingest).
CONTINUE_ONLY_WHEN_IT_FITS = "inbox-continue-only-when-it-fits"
ROUND_FULL_BYTES = 2_000_000
FIRST_BACKOFF = timedelta(milliseconds=500)
MAX_BACKOFF = timedelta(seconds=30)
MAX_ERROR_TEXT = 500


def inbox_workflow_id(task_queue: str) -> str:
    return f"automations-inbox-{task_queue}"


class InboxStats(BaseModel):
    parcels: int = 0
    delivered: int = 0  # signals an automation took
    delivered_bytes: int = 0
    rounds: int = 0
    gone: int = 0  # deliveries dropped: their automation no longer exists
    retried: int = 0
    refused: int = 0  # deliveries the server will never take (recorded, dropped)
    skipped: int = 0  # parcels or deliveries that were not what the API sends
    runs: int = 1
    last_error: str | None = None
    last_error_at: datetime | None = None


class InboxRun(BaseModel):
    """The run's input: what the last run still held, per automation (JSON lists, in order)."""

    pending: list[tuple[str, str]] = Field(default_factory=list)
    stats: InboxStats = Field(default_factory=InboxStats)
    continue_at_signals: int = CONTINUE_AT_SIGNALS  # lower in tests
    spacing: timedelta = SPACING
    max_round_interval: timedelta = MAX_ROUND_INTERVAL  # longer in tests


class InboxStatus(BaseModel):
    pending_bytes: int
    pending_automations: int
    stats: InboxStats
    # The run is due to continue as new but holds more than it can carry: it goes on with
    # rounds, and continues once what it holds fits. Requests meanwhile go to their automations
    # directly (api/inbox.py), or the rounds would never catch up under a steady load.
    draining: bool = False


@workflow.defn(name=INBOX_WORKFLOW_TYPE)
class EventInboxWorkflow:
    @workflow.init
    def __init__(self, run: InboxRun) -> None:
        self.stats = run.stats
        self.continue_at_signals = max(run.continue_at_signals, 1)
        self.spacing = min(max(run.spacing, timedelta(0)), MAX_PACE)
        self.max_round_interval = min(max(run.max_round_interval, timedelta(0)), MAX_PACE)
        self.pending: dict[str, list[bytes]] = {}
        self.pending_bytes = 0
        self.signals_this_run = 0
        self.backoff: timedelta | None = None
        self.last_round_at: datetime | None = None
        self.last_round_signals = 0
        self.parcels_waiting = 0  # accepted since the last round began
        self.last_round_parcels = 0
        self.pace_only_when_busy = False  # decided at the start of `run` (workflow.patched)
        self.continue_only_when_it_fits = False  # decided at the start of `run` (the same)
        for workflow_id, body in run.pending:
            self._add(workflow_id, body.encode())

    @workflow.run
    async def run(self, run: InboxRun) -> None:
        self.pace_only_when_busy = workflow.patched(PACE_ONLY_WHEN_BUSY)
        self.continue_only_when_it_fits = workflow.patched(CONTINUE_ONLY_WHEN_IT_FITS)
        while True:
            await workflow.wait_condition(lambda: bool(self.pending) or self._should_continue())
            if self._should_continue() and self._may_carry():
                # First let the task that ran the last round complete (its result is recorded
                # then): a signal that arrives meanwhile fails the task that continues as new,
                # and everything that task did would be done again.
                await workflow.sleep(RECORD_FIRST, summary="record the last round, then continue")
                if not self.continue_only_when_it_fits or self._may_carry():
                    workflow.continue_as_new(self._carry())
                # Parcels that came during that wait took it over what a run carries: one
                # more round first (they used to be dropped here).
            await self._gather()
            await self._round()
            if self.backoff is not None:
                await workflow.sleep(self.backoff, summary="a delivery failed: wait, then retry")

    # ------------------------------------------------------------------ messages

    @workflow.signal(name=ACCEPT_SIGNAL)
    def accept(self, parcel: RawValue) -> None:
        """A parcel from the API: durable once the server records this signal. Taken raw, and
        read here: a parcel that is not one is skipped and recorded, never retried."""
        self.signals_this_run += 1
        self.stats.parcels += 1
        self.parcels_waiting += 1
        try:
            deliveries = unpack(parcel.payload.data)
        except ParcelError as error:
            self.stats.skipped += 1
            self._record_error(f"a parcel was skipped: {error}")
            return
        skipped = 0
        for workflow_id, body in deliveries:
            if is_events_list(body):
                self._add(workflow_id, body)
            else:
                skipped += 1
        if skipped:
            self.stats.skipped += skipped
            self._record_error(f"{skipped} deliveries of a parcel were not JSON lists: skipped")

    @workflow.query
    def status(self) -> InboxStatus:
        return InboxStatus(
            pending_bytes=self.pending_bytes,
            pending_automations=len(self.pending),
            stats=self.stats,
            draining=self._should_continue() and not self._fits_a_run(),
        )

    # ------------------------------------------------------------------ a round

    async def _gather(self) -> None:
        """Let a round gather requests while the inbox is busy. Each automation's signal costs
        the server ~3 ms of CPU here whatever it carries, so after a round of N signals that
        carried several parcels the next one waits N x `spacing` (at most
        `max_round_interval`; not at all once ROUND_FULL_BYTES are pending), and each signal
        carries the events of every request that came meanwhile."""
        if self.last_round_at is None or self.pending_bytes >= ROUND_FULL_BYTES:
            return
        if self.pace_only_when_busy and self.last_round_parcels <= 1:
            return  # requests come no faster than rounds go: no reason to hold this one
        interval = min(self.spacing * self.last_round_signals, self.max_round_interval)
        wait = self.last_round_at + interval - workflow.now()
        if wait > timedelta(0):
            with contextlib.suppress(TimeoutError):  # the usual end: time for the round
                await workflow.wait_condition(
                    lambda: self.pending_bytes >= ROUND_FULL_BYTES or self._should_continue(),
                    timeout=wait,
                    timeout_summary="gather requests for the next round",
                )

    async def _round(self) -> None:
        self.last_round_at = workflow.now()
        self.last_round_parcels, self.parcels_waiting = self.parcels_waiting, 0
        deliveries = self._take_round()
        self.last_round_signals = len(deliveries)
        try:
            report: DeliveryReport = await workflow.execute_local_activity(
                DELIVER_PARCEL,
                RawValue(Payload(metadata={"encoding": b"binary/plain"}, data=pack(deliveries))),
                result_type=DeliveryReport,
                start_to_close_timeout=ROUND_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),  # the next round is the retry
                summary=f"deliver to {len(deliveries)} automations",
            )
        except Exception as error:
            report = DeliveryReport(retry=list(range(len(deliveries))))
            self._record_error(f"a delivery round failed: {error!r}")
        self.stats.rounds += 1
        report = _within(report, len(deliveries))
        for index in sorted(report.retry, reverse=True):  # back in front, in their order
            workflow_id, body = deliveries[index]
            self._add(workflow_id, body, in_front=True)
        for index, reason in report.refused.items():
            self._record_error(f"a delivery to {deliveries[index][0]} was refused: {reason}")
        unsettled = {*report.retry, *report.refused, *report.gone}
        self.stats.delivered += len(deliveries) - len(unsettled)
        self.stats.delivered_bytes += sum(
            len(body) for index, (_, body) in enumerate(deliveries) if index not in unsettled
        )
        self.stats.gone += len(report.gone)
        self.stats.refused += len(report.refused)
        self.stats.retried += len(report.retry)
        if report.retry:
            doubled = self.backoff * 2 if self.backoff else FIRST_BACKOFF
            self.backoff = min(doubled, MAX_BACKOFF)
        else:
            self.backoff = None

    def _take_round(self) -> list[tuple[str, bytes]]:
        """One merged list per automation, oldest events first, within the round's bytes."""
        deliveries: list[tuple[str, bytes]] = []
        size = 0
        for workflow_id in list(self.pending):
            if deliveries and size >= MAX_ROUND_BYTES:
                break
            queued = self.pending[workflow_id]
            taken = 1
            taken_bytes = len(queued[0])
            while taken < len(queued) and taken_bytes + len(queued[taken]) <= MAX_SIGNAL_BYTES:
                taken_bytes += len(queued[taken])
                taken += 1
            deliveries.append((workflow_id, events_list(queued[:taken])))
            del queued[:taken]
            if not queued:
                del self.pending[workflow_id]
            self.pending_bytes -= taken_bytes
            size += taken_bytes
        return deliveries

    def _add(self, workflow_id: str, body: bytes, in_front: bool = False) -> None:
        queued = self.pending.setdefault(workflow_id, [])
        if in_front:
            queued.insert(0, body)
        else:
            queued.append(body)
        self.pending_bytes += len(body)

    # ------------------------------------------------------------------ continue-as-new

    def _should_continue(self) -> bool:
        info = workflow.info()
        return (
            self.signals_this_run >= self.continue_at_signals
            or info.get_current_history_size() >= CONTINUE_AT_BYTES
            or info.is_continue_as_new_suggested()
        )

    def _may_carry(self) -> bool:
        """What it holds fits in the next run, or the history has no room left to wait."""
        return self._fits_a_run() or not self._within_headroom()

    def _fits_a_run(self) -> bool:
        return self.pending_bytes <= CARRY_BYTES

    def _within_headroom(self) -> bool:
        return workflow.info().get_current_history_size() < FORCE_CONTINUE_AT_BYTES

    def _carry(self) -> InboxRun:
        """What is pending, oldest first per automation, up to CARRY_BYTES; past that (only
        when the history's headroom ran out with that much held) the rest is recorded as lost."""
        carried: list[tuple[str, str]] = []
        size = 0
        dropped = 0
        for workflow_id, queued in self.pending.items():
            for body in queued:
                if size + len(body) > CARRY_BYTES:
                    dropped += 1
                    continue
                carried.append((workflow_id, body.decode()))
                size += len(body)
        if dropped:
            self.stats.refused += dropped
            self._record_error(f"{dropped} deliveries did not fit the continue-as-new: dropped")
        stats = self.stats.model_copy(update={"runs": self.stats.runs + 1})
        return InboxRun(
            pending=carried,
            stats=stats,
            continue_at_signals=self.continue_at_signals,
            spacing=self.spacing,
            max_round_interval=self.max_round_interval,
        )

    def _record_error(self, message: str) -> None:
        self.stats.last_error = message[:MAX_ERROR_TEXT]
        self.stats.last_error_at = workflow.now()
        workflow.logger.warning("inbox: %s", message[:MAX_ERROR_TEXT])


def _within(report: DeliveryReport, count: int) -> DeliveryReport:
    """The report with each index once and in range (a report is outside input too)."""
    retry = sorted({index for index in report.retry if 0 <= index < count})
    refused = {i: r for i, r in report.refused.items() if 0 <= i < count and i not in retry}
    gone = sorted({i for i in report.gone if 0 <= i < count and i not in refused} - set(retry))
    return DeliveryReport(gone=gone, retry=retry, refused=refused)
