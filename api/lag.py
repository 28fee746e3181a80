"""Lag reports from event sources, forwarded to the automations whose deadlines they hold.

A source that delivers events late (a bridge catching up on Temporal's visibility or Prefect's
event stream) says so on every POST /api/events, even an empty one:
`X-Events-Source: <name>` and `X-Events-Lag: <seconds>`. While it lags, a Proactive deadline
must wait for the events that may still be on their way (the events clock of
docs/semantics.md), or a late "Completed" would come after a false "stuck" alarm.

The lag forwarded is the largest of the sources' fresh reports; it goes, as the workflow's
`report_lag` signal, to every enabled automation with a Proactive trigger, only when it changes
(by a second or a fifth), and again every REFRESH_EVERY while it stays above zero, since a
workflow forgets a report that is not renewed. Reports are advice: one that cannot be sent is
logged and dropped, never a failed request.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from temporalio.client import Client

from temporal_automations.domain.automations import Automation, Posture
from temporal_automations.temporal import workflow_id
from temporal_automations.workflows.automation import AutomationWorkflow
from temporal_automations.workflows.carried import LagReport

log = logging.getLogger("automations.api.lag")

SOURCE_HEADER = "X-Events-Source"
LAG_HEADER = "X-Events-Lag"
MAX_SOURCE_CHARS = 100
MAX_LAG_SECONDS = 366 * 86400.0
MAX_SOURCES = 100
REFRESH_EVERY = 60.0  # seconds; workflows forget a report after twice their maximum lag (5 min)
FORGET_SOURCE_AFTER = 600.0  # seconds without a report: that source no longer lags
SIGNALS_AT_ONCE = 50


class LagHeaderError(ValueError):
    """The lag headers of a request are malformed (the request is refused with 422)."""


def parse_lag_headers(source: str | None, lag: str | None) -> tuple[str, float] | None:
    """The (source, seconds) a request reports, None when it reports nothing."""
    if lag is None:
        return None
    try:
        seconds = float(lag)
    except ValueError:
        raise LagHeaderError(
            f"{LAG_HEADER} must be a number of seconds, not {lag[:40]!r}"
        ) from None
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_LAG_SECONDS:
        raise LagHeaderError(f"{LAG_HEADER} must be between 0 and {MAX_LAG_SECONDS:.0f} seconds")
    source = (source or "unnamed").strip() or "unnamed"
    if len(source) > MAX_SOURCE_CHARS or not source.isprintable():
        raise LagHeaderError(
            f"{SOURCE_HEADER} must be at most {MAX_SOURCE_CHARS} printable characters"
        )
    return source, seconds


def waits_on_deadlines(automation: Automation) -> bool:
    return automation.enabled and any(
        leaf.posture == Posture.Proactive for leaf in automation.trigger.leaves()
    )


@dataclass
class LagForwarder:
    client: Client
    automations: Callable[[], Iterable[Automation]]
    # source -> (seconds, monotonic time of its report)
    reports: dict[str, tuple[float, float]] = field(default_factory=dict)
    sent: tuple[float, float] | None = None  # (seconds, monotonic time) last forwarded
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def report(self, source: str, seconds: float) -> None:
        """Take one source's report; forward the largest fresh lag when it is news."""
        now = time.monotonic()
        self.reports[source] = (seconds, now)
        self._forget_stale(now)
        lag = max(seconds for seconds, _ in self.reports.values())
        if self._is_news(lag, now):
            self.sent = (lag, now)
            task = asyncio.get_running_loop().create_task(self._forward(lag))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _forget_stale(self, now: float) -> None:
        for source, (_, at) in list(self.reports.items()):
            if now - at > FORGET_SOURCE_AFTER:
                del self.reports[source]
        while len(self.reports) > MAX_SOURCES:  # the oldest first
            del self.reports[min(self.reports, key=lambda s: self.reports[s][1])]

    def _is_news(self, lag: float, now: float) -> bool:
        if self.sent is None:
            return lag > 0  # nothing held yet: no lag changes nothing
        last, at = self.sent
        if (lag == 0) != (last == 0) or abs(lag - last) >= max(1.0, 0.2 * last):
            return True
        return lag > 0 and now - at >= REFRESH_EVERY

    async def _forward(self, lag: float) -> None:
        targets = [a.id for a in self.automations() if waits_on_deadlines(a)]
        limit = asyncio.Semaphore(SIGNALS_AT_ONCE)

        async def signal(automation_id: object) -> None:
            async with limit:
                handle = self.client.get_workflow_handle(workflow_id(automation_id))  # type: ignore[arg-type]
                try:
                    # `report_lag` takes its argument raw (RawValue), to skip one that fails.
                    await handle.signal(
                        AutomationWorkflow.report_lag,  # type: ignore[call-overload]
                        LagReport(source="api", lag_seconds=lag),
                    )
                except Exception as error:  # advice, not a promise: log and go on
                    log.warning(
                        "lag report to %s not sent: %s",
                        automation_id,
                        error,
                        extra={"automation_id": str(automation_id)},
                    )

        await asyncio.gather(*(signal(automation_id) for automation_id in targets))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
