"""Trigger evaluation, semantics version 2: every decision in event time (docs/semantics.md).

Pure and deterministic: the caller passes `now` (the workflow's clock, used only for the events
clock, holding followers and forgetting ids) and owns the state, a plain pydantic model that
crosses continue-as-new. In short:

- an event is evaluated at its `occurred`, never at the moment it is processed, so batching and
  delivery delays (within the grace) do not change which firings happen;
- an `after` event opens `[occurred, occurred + within)` for its key only if none is open; without
  `after`, the first expected event opens a window backdated by PRECEDING_WINDOW;
- Reactive fires at `threshold` (its firing's time is the event's `occurred`); a window that ended
  is kept for GRACE so a late event still counts in it, and is treated as gone for an event that
  occurred GRACE past its end (so sweeping it later, on the clock, changes nothing);
- Proactive settles a window once the EVENTS CLOCK reaches its end: wall time held back by the lag
  a bridge reports (at most `max_lag`, then it fires anyway and says so). An event beyond an
  unsettled window waits ("parked") for that decision. With `for_each` and no `after`, a silent
  key fires once and is forgotten until it is heard from again;
- composite triggers (`compound`, `sequence`) keep their children's latest firings in slots and
  fire in event time (a child's firing time is its event's `occurred`, or its deadline).

`evaluation_v1.py` is the frozen version 1, for runs that started before this one existed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field

from temporal_automations.domain.automations import (
    CompositeTrigger,
    CompoundTrigger,
    EventTrigger,
    Posture,
    SequenceTrigger,
)
from temporal_automations.domain.events import Event, Labels

SEMANTICS_VERSION = 2
PRECEDING_WINDOW = timedelta(minutes=15)
HOLD_FOR_LEADER = timedelta(minutes=15)
REMEMBER_SEEN_FOR = timedelta(hours=1)
# Prefect's expired-bucket buffer: an ended window keeps counting late events this long.
GRACE = timedelta(seconds=60)
# How long a lagging source may hold a proactive deadline back; a lag report not renewed within
# twice this is stale (a bridge that died stops holding deadlines).
MAX_LAG = timedelta(minutes=5)
MAX_SEEN = 10_000
MAX_TRIGGERED = 10_000
MAX_HELD = 1_000  # followers waiting for their leader; past this the oldest stops waiting
MAX_PARKED = 10_000  # events beyond a proactive window that waits for the events clock
# Composite triggers nest at most this deep (a root compound of sequences of event triggers is
# depth 2); the edge refuses deeper ones.
MAX_COMPOSITE_DEPTH = 4
MAX_CHILDREN = 10

AnyTrigger = EventTrigger | CompoundTrigger | SequenceTrigger


class Bucket(BaseModel):
    labels: Labels
    start: datetime
    end: datetime
    count: int = 0
    last_event: Event | None = None
    # Reactive: the window's end was acted on by the clock (a resolve, if due, went out).
    settled: bool = False


class HeldEvent(BaseModel):
    """An event waiting for the event it `follows`."""

    event: Event
    received: datetime


class Firing(BaseModel):
    """A trigger that fired (state `triggered`) or came back to normal (state `resolved`).

    `occurred` is the firing's time in event time: the triggering event's `occurred` (reactive),
    the window's end (proactive), the latest child firing (composite). Fields after `count` came
    with semantics version 2 and have constant defaults (version 1 firings still read)."""

    state: Literal["triggered", "resolved"]
    key: str
    labels: Labels
    event: Event | None
    occurred: datetime
    window_start: datetime | None = None
    window_end: datetime | None = None
    count: int = 0
    path: str = ""  # which trigger: "" the root, "1.0" its second child's first child
    evaluated: datetime | None = None  # when it was decided (the workflow's clock)
    lag_seconds: float = 0.0  # how far the events clock was held back
    lag_capped: bool = False  # the lag reported was over the maximum: fired anyway
    firings: list[Firing] = Field(default_factory=list)  # a composite's children's firings


class Slot(BaseModel):
    firing: Firing
    arrival: int


class TriggerState(BaseModel):
    """State of one trigger (and, nested, of a composite's children). The first four fields
    are version 1's, so a version 1 state validates as this one."""

    buckets: dict[str, Bucket] = Field(default_factory=dict)
    triggered: dict[str, Labels] = Field(default_factory=dict)
    seen: dict[str, datetime] = Field(default_factory=dict)
    held: list[HeldEvent] = Field(default_factory=list)
    version: int = 1  # the semantics that last wrote it
    parked: list[Event] = Field(default_factory=list)
    clock: datetime | None = None
    lag_seconds: float = 0.0
    lag_reported: datetime | None = None
    children: list[TriggerState] = Field(default_factory=list)
    slots: list[Slot | None] = Field(default_factory=list)
    arrivals: int = 0


def bucket_key(labels: Labels) -> str:
    return json.dumps(list(labels.values()))


class _Clock:
    """The events clock of one evaluation step: wall time less the lag a source reported."""

    def __init__(self, now: datetime, lag: timedelta, capped: bool) -> None:
        self.now = now
        self.lag = lag
        self.capped = capped
        self.time = now - lag


# --------------------------------------------------------------------------- event triggers


class _EventNode:
    def __init__(self, trigger: EventTrigger, state: TriggerState, path: str) -> None:
        self.trigger = trigger
        self.state = state
        self.path = path
        self.problems: list[str] = []

    @property
    def reactive(self) -> bool:
        return self.trigger.posture == Posture.Reactive

    @property
    def instant(self) -> bool:
        """Reactive with `within` 0: an expected event counts whenever it occurred (from the
        window's start on); the window only goes with the grace sweep."""
        return self.reactive and self.trigger.within == 0

    def start(self, now: datetime) -> None:
        trigger = self.trigger
        if trigger.posture == Posture.Proactive and not trigger.for_each and not trigger.after:
            key = bucket_key({})
            if key not in self.state.buckets:
                self.state.buckets[key] = Bucket(labels={}, start=now, end=now + trigger.window)

    # ------------------------------------------------------------------ events

    def evaluate(self, event: Event, clock: _Clock) -> list[Firing]:
        if not self.trigger.covers(event):
            return []
        if self.reactive:
            return self._reactive(event, clock)
        return self._proactive(event, clock)

    def _reactive(self, event: Event, clock: _Clock) -> list[Firing]:
        trigger, buckets = self.trigger, self.state.buckets
        labels = trigger.bucket_labels(event)
        key = bucket_key(labels)
        occurred = event.occurred
        opens = trigger.starts_after(event.event)
        expected = trigger.expects(event.event)
        firings: list[Firing] = []

        bucket = buckets.get(key)
        if bucket is not None and occurred >= bucket.end + GRACE:
            # Swept in event time: whether the clock already removed it changes nothing.
            firings += self._close(key, bucket, clock)
            bucket = None
        if opens:
            if bucket is not None and not self.instant and occurred >= bucket.end:
                firings += self._close(key, bucket, clock)
                bucket = None
            if bucket is None:
                bucket = Bucket(
                    labels=labels,
                    start=occurred,
                    end=occurred + trigger.window,
                    count=-1 if expected else 0,  # the opening event does not count itself
                    last_event=event,
                )
                buckets[key] = bucket
            # else: an open window is never moved nor restarted by another `after` event
        elif bucket is None:
            if trigger.after:
                return firings  # expected, but no `after` event opened a window for this key
            bucket = Bucket(
                labels=labels, start=occurred - PRECEDING_WINDOW, end=occurred + trigger.window
            )
            buckets[key] = bucket
        elif not self.instant and occurred >= bucket.end:
            firings += self._close(key, bucket, clock)
            if trigger.after:
                return firings  # the window closed unfired; the key waits for `after`
            start = max(bucket.end, occurred)
            bucket = Bucket(labels=labels, start=start, end=start + trigger.window)
            buckets[key] = bucket

        if not expected or occurred < bucket.start:
            return firings  # not expected, or late for a window already spent
        if self.instant or occurred < bucket.end:
            bucket.count += 1
            bucket.last_event = event
            if bucket.count >= trigger.threshold:
                firings.append(self._fire_reactive(key, bucket, event, clock))
        return firings

    def _close(self, key: str, bucket: Bucket, clock: _Clock) -> list[Firing]:
        """A reactive window is over, unfired: a key that had fired resolves."""
        del self.state.buckets[key]
        if bucket.settled or key not in self.state.triggered:
            return []
        return [self._resolve(key, bucket.end, None, clock)]

    def _fire_reactive(self, key: str, bucket: Bucket, event: Event, clock: _Clock) -> Firing:
        firing = self._firing(key, bucket, event, event.occurred, clock)
        if not self.instant:  # every event fires: nothing to resolve
            self._mark_triggered(key, bucket.labels)
        if self.trigger.after or self.instant:
            # The key waits for the next `after` event; or, with `within` 0, the next
            # expected event starts afresh (so every event fires at threshold 1).
            del self.state.buckets[key]
        else:
            # The rest of the fired window is spent: the next one starts at its end.
            self.state.buckets[key] = Bucket(
                labels=bucket.labels, start=bucket.end, end=bucket.end + self.trigger.window
            )
        return firing

    def _proactive(self, event: Event, clock: _Clock) -> list[Firing]:
        trigger, buckets = self.trigger, self.state.buckets
        labels = trigger.bucket_labels(event)
        key = bucket_key(labels)
        occurred = event.occurred
        opens = trigger.starts_after(event.event)
        expected = trigger.expects(event.event)
        firings: list[Firing] = []

        bucket = buckets.get(key)
        settled = False
        while bucket is not None and occurred >= bucket.end and bucket.end <= clock.time:
            # Its deadline passed: decided now (each settle moves the window past the last).
            firings += self._settle(key, bucket, clock)
            bucket = buckets.get(key)
            settled = True
        if settled and self.state.parked:
            # Events that waited for that decision occurred before this one: they go first.
            firings += self._release_parked(clock)
            bucket = buckets.get(key)
        if bucket is not None and occurred >= bucket.end:
            # Beyond a window whose deadline the events clock has not reached: it waits for
            # that decision (events of the window may still be on their way).
            if len(self.state.parked) < MAX_PARKED:
                self.state.parked.append(event)
                return firings
            # Too many waiting: this key's window is decided now, as if the clock were there.
            self.problems.append(f"over {MAX_PARKED} events waited for the events clock")
            firings += self._settle(key, bucket, clock)
            bucket = buckets.get(key)
            if bucket is not None and occurred >= bucket.end:
                del buckets[key]  # still beyond: the key starts afresh from this event
                bucket = None
        if expected and key in self.state.triggered:
            firings.append(self._resolve(key, occurred, event, clock))  # heard from again
        if opens:
            if bucket is None:
                bucket = Bucket(
                    labels=labels,
                    start=occurred,
                    end=occurred + trigger.window,
                    count=-1 if expected else 0,
                    last_event=event,
                )
                buckets[key] = bucket
        elif bucket is None:
            if trigger.after:
                return firings
            bucket = Bucket(
                labels=labels, start=occurred - PRECEDING_WINDOW, end=occurred + trigger.window
            )
            buckets[key] = bucket
        if expected and bucket.start <= occurred < bucket.end:
            bucket.count += 1
            bucket.last_event = event
            if opens and bucket.count >= trigger.threshold and occurred > bucket.start:
                # Prefect's heartbeat rule: an event that is both `after` and expected, in a
                # window already satisfied, starts the next window from itself (a crash is a
                # silence after the LAST heartbeat). Never for an `after`-only event.
                buckets[key] = Bucket(
                    labels=labels,
                    start=occurred,
                    end=occurred + trigger.window,
                    count=0,
                    last_event=event,
                )
        return firings

    # ------------------------------------------------------------------ the clock

    def advance(self, clock: _Clock) -> list[Firing]:
        firings: list[Firing] = []
        for key, bucket in list(self.state.buckets.items()):
            try:
                if self.reactive:
                    firings += self._sweep_reactive(key, bucket, clock)
                elif bucket.end <= clock.time:
                    firings += self._settle(key, bucket, clock)
            except (ArithmeticError, ValueError) as error:  # a window past any date
                self.state.buckets.pop(key, None)
                self.problems.append(f"window {key} dropped: {error}")
        if self.state.parked and not self.reactive:
            firings += self._release_parked(clock)
        return firings

    def _release_parked(self, clock: _Clock) -> list[Firing]:
        """Evaluate, in event time, the events that waited for a window's decision."""
        parked, self.state.parked = self.state.parked, []
        firings: list[Firing] = []
        for event in sorted(parked, key=lambda e: e.occurred):
            firings += self._proactive(event, clock)
        return firings

    def _sweep_reactive(self, key: str, bucket: Bucket, clock: _Clock) -> list[Firing]:
        firings: list[Firing] = []
        if not bucket.settled and bucket.end + GRACE <= clock.time:
            bucket.settled = True
            if key in self.state.triggered:
                firings.append(self._resolve(key, bucket.end, None, clock))
        # Gone once no event delivered within the grace can land in it any more.
        if bucket.end + 2 * GRACE <= clock.time:
            del self.state.buckets[key]
        return firings

    def _settle(self, key: str, bucket: Bucket, clock: _Clock) -> list[Firing]:
        """The events clock reached a proactive window's end."""
        trigger = self.trigger
        del self.state.buckets[key]
        firings: list[Firing] = []
        silent = bucket.count < trigger.threshold
        if silent:
            firings.append(self._firing(key, bucket, bucket.last_event, bucket.end, clock))
            self._mark_triggered(key, bucket.labels)
        if trigger.after:
            return firings  # once per `after` event (stuck detection fires once per run)
        if trigger.for_each:
            if not silent:  # heard from: watched window after window
                self.state.buckets[key] = Bucket(
                    labels=bucket.labels, start=bucket.end, end=bucket.end + trigger.window
                )
            return firings  # silent: fired once, forgotten until heard from again
        # Contiguous windows (a clock released by a lagging source settles each in turn),
        # unless the clock is far past (a worker down for hours): then one firing for the
        # silence, and the next window from now.
        far = bucket.end + max(trigger.window, MAX_LAG)
        start = bucket.end if clock.time <= far else clock.time
        self.state.buckets[key] = Bucket(labels={}, start=start, end=start + trigger.window)
        return firings

    def next_deadline(self) -> datetime | None:
        """The earliest events-clock time at which `advance` has work to do."""
        deadlines: list[datetime] = []
        for key, bucket in self.state.buckets.items():
            if not self.reactive:
                deadlines.append(bucket.end)
            elif key in self.state.triggered and not bucket.settled:
                deadlines.append(bucket.end + GRACE)
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ firings

    def _firing(
        self,
        key: str,
        bucket: Bucket,
        event: Event | None,
        occurred: datetime,
        clock: _Clock,
    ) -> Firing:
        return Firing(
            state="triggered",
            key=key,
            labels=bucket.labels,
            event=event,
            occurred=occurred,
            window_start=bucket.start,
            window_end=bucket.end,
            count=max(bucket.count, 0),
            path=self.path,
            evaluated=clock.now,
            lag_seconds=clock.lag.total_seconds(),
            lag_capped=clock.capped,
        )

    def _mark_triggered(self, key: str, labels: Labels) -> None:
        self.state.triggered[key] = labels
        while len(self.state.triggered) > MAX_TRIGGERED:
            del self.state.triggered[next(iter(self.state.triggered))]

    def _resolve(self, key: str, occurred: datetime, event: Event | None, clock: _Clock) -> Firing:
        labels = self.state.triggered.pop(key)
        return Firing(
            state="resolved",
            key=key,
            labels=labels,
            event=event,
            occurred=occurred,
            path=self.path,
            evaluated=clock.now,
            lag_seconds=clock.lag.total_seconds(),
        )

    def describe(self) -> dict[str, Any]:
        deadline = self.next_deadline()
        return {
            "path": self.path,
            "type": "event",
            "posture": self.trigger.posture.value,
            "open_windows": len(self.state.buckets),
            "triggered_keys": len(self.state.triggered),
            "waiting_for_clock": len(self.state.parked),
            "next_deadline": deadline.isoformat() if deadline else None,
        }


# --------------------------------------------------------------------------- composites


class _CompositeNode:
    def __init__(self, trigger: CompositeTrigger, state: TriggerState, path: str) -> None:
        self.trigger = trigger
        self.state = state
        self.path = path
        count = len(trigger.triggers)
        while len(state.children) < count:
            state.children.append(TriggerState(version=SEMANTICS_VERSION))
        del state.children[count:]
        state.slots = (state.slots + [None] * count)[:count]
        self.children = [
            _node(child, child_state, f"{path}.{index}" if path else str(index))
            for index, (child, child_state) in enumerate(
                zip(trigger.triggers, state.children, strict=True)
            )
        ]

    @property
    def problems(self) -> list[str]:
        return [problem for child in self.children for problem in child.problems]

    def clear_problems(self) -> None:
        for child in self.children:
            child.problems.clear()
            if isinstance(child, _CompositeNode):
                child.clear_problems()

    def start(self, now: datetime) -> None:
        for child in self.children:
            child.start(now)

    def evaluate(self, event: Event, clock: _Clock) -> list[Firing]:
        firings: list[Firing] = []
        for index, child in enumerate(self.children):
            for firing in child.evaluate(event, clock):
                firings += self._child_fired(index, firing, clock)
        return firings

    def advance(self, clock: _Clock) -> list[Firing]:
        firings: list[Firing] = []
        for index, child in enumerate(self.children):
            for firing in child.advance(clock):
                firings += self._child_fired(index, firing, clock)
        return firings

    def next_deadline(self) -> datetime | None:
        deadlines = [child.next_deadline() for child in self.children]
        return min((d for d in deadlines if d is not None), default=None)

    def _child_fired(self, index: int, firing: Firing, clock: _Clock) -> list[Firing]:
        """A child fired: it fills its slot; the composite fires when its rule is met. Only
        the root acts; a child's resolves are not the composite's business."""
        if firing.state != "triggered":
            return []
        state = self.state
        state.arrivals += 1
        state.slots[index] = Slot(firing=firing, arrival=state.arrivals)
        filled = [slot for slot in state.slots if slot is not None]
        if self.trigger.within is not None:
            newest = max(slot.firing.occurred for slot in filled)
            horizon = newest - timedelta(seconds=self.trigger.within)
            state.slots = [
                slot if slot is not None and slot.firing.occurred >= horizon else None
                for slot in state.slots
            ]
            filled = [slot for slot in state.slots if slot is not None]
        if isinstance(self.trigger, SequenceTrigger):
            ordered = sorted(
                (slot.firing.occurred, slot.arrival, position)
                for position, slot in enumerate(state.slots)
                if slot is not None
            )
            met = len(filled) == len(state.slots) and [p for *_, p in ordered] == list(
                range(len(state.slots))
            )
        else:
            assert isinstance(self.trigger, CompoundTrigger)
            met = len(filled) >= max(self.trigger.required, 1)
        if not met:
            return []
        children = [slot.firing for slot in state.slots if slot is not None]
        latest = max(children, key=lambda child: (child.occurred, 0))
        labels: Labels = {}
        for child in children:
            labels.update(child.labels)
        state.slots = [None] * len(state.slots)
        return [
            Firing(
                state="triggered",
                key=bucket_key(labels),
                labels=labels,
                event=latest.event,
                occurred=latest.occurred,
                window_start=min(child.occurred for child in children),
                window_end=latest.occurred,
                count=len(children),
                path=self.path,
                evaluated=clock.now,
                lag_seconds=clock.lag.total_seconds(),
                lag_capped=clock.capped,
                firings=children,
            )
        ]

    def describe(self) -> dict[str, Any]:
        deadline = self.next_deadline()
        return {
            "path": self.path,
            "type": self.trigger.type,  # type: ignore[attr-defined]
            "fired_children": [
                None if slot is None else slot.firing.occurred.isoformat()
                for slot in self.state.slots
            ],
            "next_deadline": deadline.isoformat() if deadline else None,
            "children": [child.describe() for child in self.children],
        }


_Node = _EventNode | _CompositeNode


def _node(trigger: Any, state: TriggerState, path: str) -> _Node:
    if isinstance(trigger, CompositeTrigger):
        return _CompositeNode(trigger, state, path)
    return _EventNode(trigger, state, path)


# --------------------------------------------------------------------------- the evaluator


class TriggerEvaluator:
    """One automation's trigger: dedupe and `follows` ordering, the events clock, and the
    trigger's tree of nodes."""

    def __init__(
        self,
        trigger: AnyTrigger,
        state: TriggerState | None = None,
        max_lag: timedelta = MAX_LAG,
    ) -> None:
        self.trigger = trigger
        self.state = state if state is not None else TriggerState()
        self.state.version = SEMANTICS_VERSION
        self.max_lag = max_lag
        self.node = _node(trigger, self.state, "")
        # Windows dropped because their arithmetic failed: reported, never raised, so one bad
        # window cannot stop the automation. The caller drains the list.
        self.problems: list[str] = []

    # ------------------------------------------------------------------ the events clock

    def report_lag(self, seconds: float, now: datetime) -> None:
        """A source (a bridge catching up) says its events reach us `seconds` late."""
        seconds = float(seconds)
        # bounded: NaN or a negative lag is none, an endless one is capped (MAX_LAG applies)
        self.state.lag_seconds = 0.0 if not seconds > 0 else min(seconds, 366 * 86400.0)
        self.state.lag_reported = now

    def _lag(self, now: datetime) -> tuple[timedelta, bool]:
        state = self.state
        if not state.lag_seconds or state.lag_reported is None:
            return timedelta(0), False
        if now - state.lag_reported >= 2 * self.max_lag:  # the report went stale
            return timedelta(0), False
        lag = timedelta(seconds=state.lag_seconds)
        return min(lag, self.max_lag), lag > self.max_lag

    def _clock(self, now: datetime) -> _Clock:
        lag, capped = self._lag(now)
        clock = _Clock(now, lag, capped)
        if self.state.clock is not None and clock.time < self.state.clock:
            clock.time = self.state.clock  # never backwards (a larger lag came in)
        self.state.clock = clock.time
        return clock

    # ------------------------------------------------------------------ entry points

    def start(self, now: datetime) -> None:
        """A Proactive trigger with one key and no `after` watches for silence from the start."""
        self.node.start(now)

    def receive(self, events: Iterable[Event], now: datetime) -> list[Firing]:
        """Evaluate newly delivered events in delivery order; duplicates are skipped."""
        clock = self._clock(now)
        firings: list[Firing] = []
        for event in events:
            event_id = str(event.id)
            if event_id in self.state.seen:
                continue
            self.state.seen[event_id] = now
            if event.follows is not None and self._leader_pending(str(event.follows)):
                self.state.held.append(HeldEvent(event=event, received=now))
                if len(self.state.held) > MAX_HELD:
                    oldest = self.state.held.pop(0)
                    firings += self._evaluate(oldest.event, clock)
                    firings += self._release_followers(str(oldest.event.id), clock)
                continue
            firings += self._evaluate(event, clock)
            firings += self._release_followers(event_id, clock)
        self._forget_old_ids(now)
        return firings

    def advance(self, now: datetime) -> list[Firing]:
        """Act on every deadline the events clock reached, and on leaders that never came."""
        clock = self._clock(now)
        firings: list[Firing] = []
        overdue = [h for h in self.state.held if h.received + HOLD_FOR_LEADER <= now]
        if overdue:
            self.state.held = [h for h in self.state.held if h not in overdue]
            for held in sorted(overdue, key=lambda h: h.event.occurred):
                firings += self._evaluate(held.event, clock)
                firings += self._release_followers(str(held.event.id), clock)
        firings += self.node.advance(clock)
        self._collect_problems()
        return firings

    def next_deadline(self) -> datetime | None:
        """The earliest wall-clock moment `advance` has work to do, for one durable timer: a
        window's end, later by the lag a source reports (while that report holds)."""
        deadlines = [h.received + HOLD_FOR_LEADER for h in self.state.held]
        window = self.node.next_deadline()
        if window is not None:
            state = self.state
            if state.lag_seconds and state.lag_reported is not None:
                held_back = window + min(timedelta(seconds=state.lag_seconds), self.max_lag)
                # ... but not past the moment the report goes stale.
                window = max(window, min(held_back, state.lag_reported + 2 * self.max_lag))
            deadlines.append(window)
        return min(deadlines, default=None)

    def describe(self) -> dict[str, Any]:
        """Each trigger's state, for the status query (a composite lists its children)."""
        return {
            **self.node.describe(),
            "lag_seconds": self.state.lag_seconds,
            "events_clock": self.state.clock.isoformat() if self.state.clock else None,
        }

    # ------------------------------------------------------------------ helpers

    def _evaluate(self, event: Event, clock: _Clock) -> list[Firing]:
        firings = self.node.evaluate(event, clock)
        self._collect_problems()
        return firings

    def _collect_problems(self) -> None:
        node = self.node
        self.problems += node.problems
        if isinstance(node, _CompositeNode):
            node.clear_problems()
        else:
            node.problems.clear()

    def _leader_pending(self, leader_id: str) -> bool:
        """Not evaluated yet: never delivered, or delivered but itself held for its own leader
        (else a Completed could overtake a held Running and leave the run "stuck")."""
        return leader_id not in self.state.seen or any(
            str(held.event.id) == leader_id for held in self.state.held
        )

    def _release_followers(self, leader_id: str, clock: _Clock) -> list[Firing]:
        followers = [h for h in self.state.held if str(h.event.follows) == leader_id]
        if not followers:
            return []
        self.state.held = [h for h in self.state.held if h not in followers]
        firings: list[Firing] = []
        for held in sorted(followers, key=lambda h: h.event.occurred):
            firings += self._evaluate(held.event, clock)
            firings += self._release_followers(str(held.event.id), clock)
        return firings

    def _forget_old_ids(self, now: datetime) -> None:
        seen = self.state.seen
        horizon = now - REMEMBER_SEEN_FOR
        # Insertion order is delivery order, so the oldest ids come first: stop at the first
        # one to keep (called once per event, so never walk the whole dict).
        while seen:
            oldest = next(iter(seen))
            if seen[oldest] >= horizon and len(seen) <= MAX_SEEN:
                break
            del seen[oldest]
