"""FROZEN: the trigger evaluation of semantics version 1, kept only for automations whose run
started before semantics version 2 (`domain/evaluation.py`) and replays or continues in that
run. Their next continue-as-new converts the state (`evaluation.state_from_v1`) and evaluates
with version 2. Never change what this module decides: histories recorded with it must replay.
Its name matching (full fnmatch globs, empty `expect` meaning "the `after` names") is its own.

Trigger evaluation: buckets per `for_each` key, windows on event time, firings and resolves.

Pure and deterministic: the caller passes `now` (the workflow's clock) and owns the state, which
is a plain pydantic model so it can cross continue-as-new. The rules (version 1) were those of
docs/semantics.md before its revision; in short:

- an `after` event opens a window `[occurred, occurred + within)` for its key;
- without `after`, the first expected event opens one backdated by PRECEDING_WINDOW;
- each expected event inside the window adds one; Reactive fires at `threshold`,
  Proactive fires when the window ends below `threshold`;
- after a firing, `after` triggers wait for the next `after` event, the others start the next
  window at `max(end, now)`: at most one firing per window per key.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from fnmatch import fnmatchcase

from pydantic import BaseModel, Field

from temporal_automations.domain.automations import EventTrigger, Posture
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import Event, Labels

# Matching as version 1 did it: full fnmatch globs, a leading `!` negating a label value.


def _names_match(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _label_matches(pattern: str, value: str | None) -> bool:
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatchcase(value, pattern[1:])
    return fnmatchcase(value, pattern)


def _resource_matches(spec: dict[str, str | list[str]], labels: Labels) -> bool:
    for label, expected in spec.items():
        patterns = [expected] if isinstance(expected, str) else expected
        if not any(_label_matches(pattern, labels.get(label)) for pattern in patterns):
            return False
    return True


def _related_matches(specs: object, related: list[Labels]) -> bool:
    spec_list = [specs] if isinstance(specs, dict) else list(specs)  # type: ignore[call-overload]
    for spec in spec_list:
        if spec and not any(_resource_matches(spec, labels) for labels in related):
            return False
    return True


def starts_after(trigger: EventTrigger, name: str) -> bool:
    return bool(trigger.after) and _names_match(trigger.after, name)


def expects(trigger: EventTrigger, name: str) -> bool:
    return not trigger.expect or _names_match(trigger.expect, name)


def covers(trigger: EventTrigger, event: Event) -> bool:
    names = [*trigger.after, *trigger.expect]
    if names and not _names_match(names, event.event):
        return False
    return _resource_matches(trigger.match, event.resource) and _related_matches(
        trigger.match_related, event.related
    )


PRECEDING_WINDOW = timedelta(minutes=15)
HOLD_FOR_LEADER = timedelta(minutes=15)
REMEMBER_SEEN_FOR = timedelta(hours=1)
MAX_SEEN = 10_000
MAX_TRIGGERED = 10_000
MAX_HELD = 1_000  # followers waiting for their leader; past this the oldest stops waiting


class Bucket(BaseModel):
    labels: Labels
    start: datetime
    end: datetime
    count: int = 0
    last_event: Event | None = None


class HeldEvent(BaseModel):
    """An event waiting for the event it `follows`."""

    event: Event
    received: datetime


class TriggerState(BaseModel):
    buckets: dict[str, Bucket] = Field(default_factory=dict)
    triggered: dict[str, Labels] = Field(default_factory=dict)
    seen: dict[str, datetime] = Field(default_factory=dict)
    held: list[HeldEvent] = Field(default_factory=list)


def bucket_key(labels: Labels) -> str:
    return json.dumps(list(labels.values()))


class TriggerEvaluator:
    def __init__(self, trigger: EventTrigger, state: TriggerState | None = None) -> None:
        self.trigger = trigger
        self.state = state if state is not None else TriggerState()
        # Windows dropped because their arithmetic failed: reported, never raised, so one bad
        # window cannot stop the automation. The caller drains the list.
        self.problems: list[str] = []

    @property
    def _reactive(self) -> bool:
        return self.trigger.posture == Posture.Reactive

    @property
    def _instant(self) -> bool:
        """Reactive with `within` 0: every expected event counts, whenever it occurred."""
        return self._reactive and self.trigger.within == 0

    # ------------------------------------------------------------------ entry points

    def start(self, now: datetime) -> None:
        """A Proactive trigger with one key and no `after` watches for silence from the start."""
        trigger = self.trigger
        if trigger.posture == Posture.Proactive and not trigger.for_each and not trigger.after:
            key = bucket_key({})
            if key not in self.state.buckets:
                self.state.buckets[key] = Bucket(labels={}, start=now, end=now + trigger.window)

    def receive(self, events: Iterable[Event], now: datetime) -> list[Firing]:
        """Evaluate newly delivered events in delivery order; duplicates are skipped."""
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
                    firings += self._evaluate(oldest.event, now)
                    firings += self._release_followers(str(oldest.event.id), now)
                continue
            firings += self._evaluate(event, now)
            firings += self._release_followers(event_id, now)
        self._forget_old_ids(now)
        return firings

    def advance(self, now: datetime) -> list[Firing]:
        """Act on every deadline at or before `now`: window ends and leaders that never came."""
        firings: list[Firing] = []
        overdue = [h for h in self.state.held if h.received + HOLD_FOR_LEADER <= now]
        if overdue:
            self.state.held = [h for h in self.state.held if h not in overdue]
            for held in sorted(overdue, key=lambda h: h.event.occurred):
                firings += self._evaluate(held.event, now)
                firings += self._release_followers(str(held.event.id), now)
        if not self._instant:
            for key, bucket in list(self.state.buckets.items()):
                if bucket.end <= now:
                    try:
                        firings += self._settle(key, bucket, now)
                    except (ArithmeticError, ValueError) as error:  # a window past any date
                        self.state.buckets.pop(key, None)
                        self.problems.append(f"window {key} dropped: {error}")
        return firings

    def next_deadline(self) -> datetime | None:
        """The earliest moment `advance` has work to do, for one durable timer."""
        deadlines = [h.received + HOLD_FOR_LEADER for h in self.state.held]
        if not self._instant:
            for key, bucket in self.state.buckets.items():
                if not self._reactive or key in self.state.triggered:
                    deadlines.append(bucket.end)
        return min(deadlines, default=None)

    # ------------------------------------------------------------------ the rules

    def _evaluate(self, event: Event, now: datetime) -> list[Firing]:
        trigger = self.trigger
        if not covers(trigger, event):
            return []
        labels = trigger.bucket_labels(event)
        key = bucket_key(labels)
        occurred = event.occurred
        starts_window = starts_after(trigger, event.event)
        expected = expects(trigger, event.event)
        firings: list[Firing] = []

        bucket = self.state.buckets.get(key)
        past_end = bucket is not None and not self._instant and occurred >= bucket.end
        if past_end and bucket is not None:  # (past_end implies a bucket; said for mypy)
            firings += self._settle(key, bucket, now, keep_going=False)
            bucket = None

        if expected and not self._reactive and key in self.state.triggered:
            firings.append(self._resolve(key, event, now))

        if starts_window:
            bucket = Bucket(
                labels=labels,
                start=occurred,
                end=occurred + trigger.window,
                count=-1 if expected else 0,  # the opening event does not count itself
                last_event=event,
            )
            self.state.buckets[key] = bucket
        elif bucket is None:
            if trigger.after:
                return firings  # expected, but no `after` event opened a window for this key
            start = occurred if past_end else occurred - PRECEDING_WINDOW
            bucket = Bucket(labels=labels, start=start, end=occurred + trigger.window)
            self.state.buckets[key] = bucket

        if expected and (self._instant or bucket.start <= occurred < bucket.end):
            bucket.count += 1
            bucket.last_event = event

        if self._reactive and bucket.count >= trigger.threshold:
            firings.append(self._fire(key, bucket, now, event))
        return firings

    def _settle(
        self, key: str, bucket: Bucket, now: datetime, keep_going: bool = True
    ) -> list[Firing]:
        """The window of `key` is over: a Proactive trigger short of its threshold fires; a
        Reactive key that had fired and now stayed below its threshold resolves."""
        if not self._reactive and bucket.count < self.trigger.threshold:
            return [self._fire(key, bucket, now, bucket.last_event)]
        del self.state.buckets[key]
        firings = []
        if self._reactive and key in self.state.triggered:
            firings.append(self._resolve(key, None, now))
        if keep_going and not self._reactive and not self.trigger.after:
            # Silence is watched window after window; contiguous windows so that an event
            # delivered a moment after the boundary still counts in the next one.
            self.state.buckets[key] = Bucket(
                labels=bucket.labels, start=bucket.end, end=bucket.end + self.trigger.window
            )
        return firings

    def _fire(self, key: str, bucket: Bucket, now: datetime, event: Event | None) -> Firing:
        firing = Firing(
            state="triggered",
            key=key,
            labels=bucket.labels,
            event=event,
            occurred=now,
            window_start=bucket.start,
            window_end=bucket.end,
            count=max(bucket.count, 0),
        )
        if not self._instant:  # every event fires: nothing to resolve
            self.state.triggered[key] = bucket.labels
            while len(self.state.triggered) > MAX_TRIGGERED:
                del self.state.triggered[next(iter(self.state.triggered))]
        if self.trigger.after or (self._instant and self.trigger.threshold <= 1):
            # Waits for the next `after` event; or, when every event fires, an empty bucket
            # is the same as none (and keeps one-off keys from piling up).
            del self.state.buckets[key]
        else:
            start = max(bucket.end, now)
            self.state.buckets[key] = Bucket(
                labels=bucket.labels, start=start, end=start + self.trigger.window
            )
        return firing

    def _resolve(self, key: str, event: Event | None, now: datetime) -> Firing:
        labels = self.state.triggered.pop(key)
        return Firing(state="resolved", key=key, labels=labels, event=event, occurred=now)

    # ------------------------------------------------------------------ bookkeeping

    def _leader_pending(self, leader_id: str) -> bool:
        """Not evaluated yet: never delivered, or delivered but itself held for its own leader
        (else a Completed could overtake a held Running and leave the run "stuck")."""
        return leader_id not in self.state.seen or any(
            str(held.event.id) == leader_id for held in self.state.held
        )

    def _release_followers(self, leader_id: str, now: datetime) -> list[Firing]:
        followers = [h for h in self.state.held if str(h.event.follows) == leader_id]
        if not followers:
            return []
        self.state.held = [h for h in self.state.held if h not in followers]
        firings: list[Firing] = []
        for held in sorted(followers, key=lambda h: h.event.occurred):
            firings += self._evaluate(held.event, now)
            firings += self._release_followers(str(held.event.id), now)
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
