"""What an automation's workflow carries from run to run and answers: pydantic models.

Kept out of workflows/automation.py on purpose: the workflow sandbox re-imports the workflow's
module for every workflow it runs, and a pydantic model defined there builds its validator
again each time (AutomationRun nests the whole definition and trigger state). Measured with
300 automations on one worker: about 560 KB of RSS per cached workflow when these were defined
in the workflow module, about 110 KB once they are imported through the sandbox (passed
through, built once per process). They hold data only: no I/O, nothing non-deterministic.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from temporal_automations.domain.automations import Automation
from temporal_automations.domain.evaluation import Firing, TriggerState
from temporal_automations.domain.events import Event
from temporal_automations.domain.ratelimit import FiringBudget

DEFAULT_FIRINGS_PER_MINUTE = 60_000
DEFAULT_CHAINED_FIRINGS_PER_MINUTE = 60
# Temporal refuses a payload over 2 MB and a gRPC message over 4 MB: what a run carries into
# the next one (its state, inbox, queue and outbox) stays under this (workflows/automation.py).
MAX_CARRY_BYTES = 1_500_000
OVERFLOW_CHUNK_ITEMS = 2_000  # items per overflow chunk (workflows/automation.py)


class ActionResult(BaseModel):
    index: int
    type: str
    status: Literal["queued", "running", "executed", "failed"] = "running"
    detail: str | None = None


class FiringRecord(BaseModel):
    id: UUID
    state: Literal["triggered", "resolved"]
    key: str
    labels: dict[str, str]
    event_id: UUID | None
    event_name: str | None
    event_resource_id: str | None = None
    occurred: datetime
    actions: list[ActionResult] = Field(default_factory=list)
    # What the trigger decided (semantics version 2): which trigger of a composite, the
    # window, the count, when it was decided and how far the events clock was held back.
    path: str = ""
    window_start: datetime | None = None
    window_end: datetime | None = None
    count: int = 0
    evaluated: datetime | None = None
    lag_seconds: float = 0.0
    lag_capped: bool = False


class AutomationStats(BaseModel):
    events_received: int = 0
    firings: int = 0
    last_fired: datetime | None = None
    recent: list[FiringRecord] = Field(default_factory=list)
    # What went wrong and was skipped: visible in the status query and the Web UI's memo.
    errors: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    suppressed_firings: int = 0  # over the firing rate limit
    chain_cut: int = 0  # firings at the end of a chain of automations, not acted on


class QueuedFiring(BaseModel):
    """A firing whose actions wait their turn."""

    id: UUID
    firing: Firing


class RunLimits(BaseModel):
    firings_per_minute: int = DEFAULT_FIRINGS_PER_MINUTE
    # Firings caused by another automation's lifecycle event: each firing emits several (one
    # per action and outcome), so two automations reacting to each other multiply at every
    # link; this much smaller budget keeps such a storm to a few hundred firings.
    chained_firings_per_minute: int = DEFAULT_CHAINED_FIRINGS_PER_MINUTE
    # What a run carries into the next (compressed when it must); tests make it small.
    max_carry_bytes: int = MAX_CARRY_BYTES
    overflow_chunk_items: int = OVERFLOW_CHUNK_ITEMS


class CarriedWork(BaseModel):
    """Unread events, queued firings and unsent lifecycle events: what a run hands the next."""

    inbox: list[Event] = Field(default_factory=list)
    queue: list[QueuedFiring] = Field(default_factory=list)
    outbox: list[Event] = Field(default_factory=list)


class AutomationRun(BaseModel):
    """The workflow's input: a fresh start (`state` None) or a continuation."""

    automation: Automation
    state: TriggerState | None = None
    inbox: list[Event] = Field(default_factory=list)
    queue: list[QueuedFiring] = Field(default_factory=list)
    outbox: list[Event] = Field(default_factory=list)
    stats: AutomationStats = Field(default_factory=AutomationStats)
    limits: RunLimits = Field(default_factory=RunLimits)
    budget: FiringBudget | None = None
    chained_budget: FiringBudget | None = None
    # CarriedWork as zlib-compressed JSON in base64, when it would not fit plain (see _packed).
    packed_work: str | None = None
    # Overflow children holding work this automation has yet to pull back, oldest first.
    overflow: list[str] = Field(default_factory=list)
    # The trigger semantics that wrote `state` (1: before event time); informational, the
    # run decides its own version when it starts (SEMANTICS_V2).
    semantics: int = 1


class LagReport(BaseModel):
    """A source of events (a bridge catching up) says how far behind its events arrive."""

    source: str = "bridge"
    lag_seconds: float


class AutomationStatus(BaseModel):
    """The `status` query: the definition, counters, and what the trigger is waiting for."""

    automation: Automation
    stats: AutomationStats
    next_deadline: datetime | None
    open_windows: int
    triggered_keys: int
    held_events: int
    backlog: int = 0  # events decoded, not evaluated yet
    waiting_signals: int = 0  # signals received, not decoded yet
    queued_firings: int = 0  # firings waiting for their actions to start
    running_firings: int = 0
    overflow_chunks: int = 0  # chunks of work held by overflow children, not pulled back yet
    # False: the workflow was too busy to answer (its worker holds a workflow task while
    # actions run) and these are the counters of its memo, as of its last workflow task.
    live: bool = True
    semantics: int = 1  # the trigger semantics this run evaluates with
    # Each trigger's state (a composite lists its children): windows, keys, filled slots.
    trigger_state: dict[str, Any] | None = None
