"""How much earlier to arm a deadline's timer so that its workflow task starts at the deadline.

A timer's duration is counted from `workflow.now()`, the start of the workflow task that arms
it, but the server starts the timer when that task completes, and the task the timer wakes
starts after the timer queue and matching have handed it over. A timer armed for exactly
`deadline - now` therefore wakes the workflow late by the arming task's length plus that
dispatch: 6-9 ms at p50 on two quiet cores, before the action even starts.

Each timer that fires says how late it woke the workflow: the `workflow.now()` of the task that
sees it, minus the instant it was due. Both come from the history, so replay computes the same.
The next deadline's timer is armed earlier by the least of the last LEAD_SAMPLES of those, at
most MAX_LEAD. A timer that wakes the workflow before its deadline finds it not due yet and is
armed again for what remains, without a lead: a deadline never fires early, and a lead that was
too long costs one timer more (the deadline's action then arrives 14-21 ms after it, measured).

Each run starts with no sample. Before FIRST_LEAD (a patch) its first deadline had no lead and
its action arrived 23-31 ms after it, the slowest of a run of 100 deadlines: after every
continue-as-new, and in every benchmark run. With FIRST_LEAD, a run's first timer is armed
FIRST_LEAD earlier. Runs' first timers (10 s long here) woke the workflow 10.8-18.1 ms late
over 16 runs; the short timers after them, 6-7 ms at least. At 5 ms the first deadline's
action arrived 19.0-22.1 ms after it (4 runs), at 10 ms 15.2-19.8 (3 runs), most of it the
worker's first webhook.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

LEAD_SAMPLES = 8
MAX_LEAD = timedelta(milliseconds=20)
FIRST_LEAD = timedelta(milliseconds=10)


@dataclass
class TimerLead:
    lateness: list[timedelta] = field(default_factory=list)  # the last timers', oldest first
    led_for: datetime | None = None  # the deadline whose timer was last armed with a lead
    lead_first: bool = False  # FIRST_LEAD before any sample (decided by a patch)

    def observe(self, lateness: timedelta) -> None:
        """A timer armed for its full time woke the workflow this long after it was due."""
        if lateness >= timedelta(0):
            self.lateness = [*self.lateness, lateness][-LEAD_SAMPLES:]

    def lead_for(self, deadline: datetime) -> timedelta:
        """How much earlier to arm the timer for `deadline`: once per deadline, so that the
        timer armed again after an early wake-up waits for the deadline itself."""
        if deadline == self.led_for or not (self.lateness or self.lead_first):
            return timedelta(0)
        self.led_for = deadline
        return min(min(self.lateness), MAX_LEAD) if self.lateness else FIRST_LEAD
