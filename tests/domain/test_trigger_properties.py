"""Properties of trigger evaluation that must hold for any event stream (hypothesis).

Streams are small (≤ 30 events within a few minutes), names from a tiny alphabet so that
`after`/`expect` collide often, two resources so that `for_each` keys matter, and some events
`follows` another one of the stream (or one that never comes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_automations.domain.evaluation import (
    HOLD_FOR_LEADER,
    Firing,
    TriggerEvaluator,
    bucket_key,
)
from temporal_automations.domain.events import RESOURCE_ID, Event
from tests.domain.builders import at, evaluator

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["start", "x", "y"]
RESOURCES = ["prefect.flow-run.a", "prefect.flow-run.b"]


@dataclass(frozen=True)
class Spec:
    name: str
    occurred: int
    resource: str
    follows: int | None  # index into the stream; out of range means "a leader that never comes"
    delay: int  # seconds between occurred and delivery


specs = st.lists(
    st.builds(
        Spec,
        name=st.sampled_from(NAMES),
        occurred=st.integers(0, 300),
        resource=st.sampled_from(RESOURCES),
        follows=st.none() | st.none() | st.integers(0, 40),
        delay=st.integers(0, 120),
    ),
    max_size=30,
)


def build(stream: list[Spec]) -> list[Event]:
    ids = [uuid.UUID(int=n + 1) for n in range(len(stream))]
    return [
        Event(
            id=ids[n],
            occurred=at(spec.occurred),
            event=spec.name,
            resource={RESOURCE_ID: spec.resource},
            follows=(
                None
                if spec.follows is None or spec.follows == n
                else uuid.UUID(int=spec.follows + 1)
            ),
        )
        for n, spec in enumerate(stream)
    ]


def trigger_fields(postures: list[str], thresholds: tuple[int, int] = (0, 3)) -> Any:
    return st.fixed_dictionaries(
        {
            "posture": st.sampled_from(postures),
            "after": st.sampled_from([[], ["start"]]),
            "expect": st.sampled_from([[], ["x"], ["x", "start"], ["*"]]),
            "threshold": st.integers(*thresholds),
            "within": st.sampled_from([0, 10, 60, 120]),
            "for_each": st.sampled_from([[], [RESOURCE_ID]]),
        }
    )


any_trigger = trigger_fields(["Reactive", "Proactive"])
reactive_trigger = trigger_fields(["Reactive"], thresholds=(1, 3))
proactive_trigger = trigger_fields(["Proactive"], thresholds=(1, 3))


def summary(firings: list[Firing]) -> list[tuple[Any, ...]]:
    return [
        (
            f.state,
            f.key,
            f.event.id if f.event else None,
            f.count,
            f.window_start,
            f.window_end,
            f.occurred,
        )
        for f in firings
    ]


def batches_at_one_clock(fields: dict[str, Any], batches: list[list[Event]]) -> list[Any]:
    """Deliver batches at one clock reading, then let every deadline pass."""
    e = evaluator(**fields)
    e.start(at(0))
    now = at(1000)
    out: list[Firing] = []
    for batch in batches:
        out += e.receive(batch, now)
    out += e.advance(at(100_000))
    return summary(out)


def cut(events: list[Event], cuts: set[int]) -> list[list[Event]]:
    batches, previous = [], 0
    for index in sorted(c for c in cuts if 0 < c < len(events)) + [len(events)]:
        batches.append(events[previous:index])
        previous = index
    return batches


def deliveries(events: list[Event], stream: list[Spec]) -> list[tuple[int, Event]]:
    """Each event delivered `delay` seconds after it occurred, in delivery order."""
    timed = [(spec.occurred + spec.delay, e) for spec, e in zip(stream, events, strict=True)]
    return sorted(timed, key=lambda pair: pair[0])


def catch_up(e: TriggerEvaluator, clock: datetime, until: datetime) -> list[Firing]:
    """Act on every deadline before `until`, as the workflow does: a timer at next_deadline(),
    and a deadline already behind the clock is acted on at once (time never goes backwards)."""
    out: list[Firing] = []
    for _ in range(1000):
        deadline = e.next_deadline()
        if deadline is None or deadline >= until:
            return out
        clock = max(clock, deadline)
        out += e.advance(clock)
    raise AssertionError("deadlines did not settle")


def deliver(e: TriggerEvaluator, events: list[Event], now: datetime) -> list[Firing]:
    """The workflow's evaluation step: receive, then advance, at one clock reading; then
    whatever is still due at that reading (a due timer re-runs the step at once)."""
    out = e.receive(events, now) + e.advance(now)
    return out + catch_up(e, now, now + SECOND)


SECOND = at(1) - at(0)

# (delivery time, event), in delivery order
Timed = list[tuple[int, Event]]


def drive_by_timer(
    e: TriggerEvaluator, timed: Timed, end: int, redelivered: Timed | None = None
) -> list[Firing]:
    """One durable timer at next_deadline(); events as they arrive. `redelivered` events are
    handed to receive() alone, so they can only matter through dedupe."""
    schedule = sorted(
        [(t, 0, event) for t, event in timed] + [(t, 1, event) for t, event in redelivered or []],
        key=lambda item: (item[0], item[1]),
    )
    out: list[Firing] = []
    clock = at(0)
    e.start(clock)
    for t, again, event in schedule:
        out += catch_up(e, clock, at(t))
        clock = max(clock, at(t))
        out += e.receive([event], clock) if again else deliver(e, [event], clock)
    out += catch_up(e, clock, at(end + 1))
    return out


def drive_by_polling(e: TriggerEvaluator, timed: Timed, end: int) -> list[Firing]:
    """A 1-second poll instead of the timer; events as they arrive."""
    out: list[Firing] = []
    e.start(at(0))
    pending = list(timed)
    for t in range(0, end + 1):
        now = at(t)
        while pending and pending[0][0] == t:
            out += deliver(e, [pending.pop(0)[1]], now)
        out += e.advance(now)
        deadline = e.next_deadline()
        if deadline is not None and deadline <= now:
            out += catch_up(e, now, now + SECOND)
    return out


HORIZON = 300 + 120 + 15 * 60 + 2 * 120 + 10  # last delivery + hold + two windows


# --------------------------------------------------------------------------- (1) batching


@SETTINGS
@given(any_trigger, specs, st.randoms(use_true_random=False), st.sets(st.integers(1, 30)))
def test_splitting_a_stream_into_batches_never_changes_the_firings(
    fields: dict[str, Any], stream: list[Spec], random: Any, cuts: set[int]
) -> None:
    events = build(stream)
    random.shuffle(events)  # any delivery order, as long as both replays share it
    one_by_one = batches_at_one_clock(fields, [[event] for event in events])
    assert batches_at_one_clock(fields, cut(events, cuts)) == one_by_one
    assert batches_at_one_clock(fields, [events]) == one_by_one


# --------------------------------------------------------------------------- (2) duplicates


@SETTINGS
@given(any_trigger, specs, st.randoms(use_true_random=False))
def test_delivering_every_event_twice_never_changes_the_firings(
    fields: dict[str, Any], stream: list[Spec], random: Any
) -> None:
    events = build(stream)
    random.shuffle(events)
    once = batches_at_one_clock(fields, [[event] for event in events])
    assert batches_at_one_clock(fields, [[event, event] for event in events]) == once
    assert batches_at_one_clock(fields, [events, events]) == once  # the whole stream again


@SETTINGS
@given(any_trigger, specs, st.data())
def test_redelivery_as_time_passes_never_changes_the_firings(
    fields: dict[str, Any], stream: list[Spec], data: st.DataObject
) -> None:
    timed = deliveries(build(stream), stream)
    # every event again, up to a minute later, while deadlines pass and fire
    again = [(t + data.draw(st.integers(0, 60)), event) for t, event in timed]
    once = summary(drive_by_timer(evaluator(**fields), timed, HORIZON))
    assert summary(drive_by_timer(evaluator(**fields), timed, HORIZON, again)) == once


# --------------------------------------------------------------------------- (3) once per window

prompt_specs = st.lists(
    st.builds(
        Spec,
        name=st.sampled_from(NAMES),
        occurred=st.integers(0, 300),
        resource=st.sampled_from(RESOURCES),
        follows=st.none(),
        delay=st.integers(0, 9),  # delivered within one window (within >= 10 below)
    ),
    max_size=30,
)


@SETTINGS
@given(reactive_trigger, prompt_specs, st.booleans())
def test_reactive_never_fires_twice_for_one_key_in_one_window(
    fields: dict[str, Any], stream: list[Spec], by_timer: bool
) -> None:
    if fields["within"] == 0:
        fields = {**fields, "within": 60}  # within 0 fires on every event: it has no windows
    timed = deliveries(build(stream), stream)
    drive = drive_by_timer if by_timer else drive_by_polling
    firings = [f for f in drive(evaluator(**fields), timed, HORIZON) if f.state == "triggered"]
    windows = [(f.key, f.window_start, f.window_end) for f in firings]
    if fields["after"]:
        # Each `after` event opens its own window (Prefect too): two runs of windows with the
        # same bounds are two `after` events at the same instant, never one window twice.
        for window in set(windows):
            key, start, _ = window
            openers = [
                spec
                for spec in stream
                if spec.name == "start"
                and at(spec.occurred) == start
                and (not fields["for_each"] or key == bucket_key({RESOURCE_ID: spec.resource}))
            ]
            assert windows.count(window) <= max(len(openers), 1)
    else:
        assert len(windows) == len(set(windows))
    if not fields["after"]:
        # and no event from a window that already fired makes its key fire again
        for n, later in enumerate(firings):
            assert later.event is not None
            for earlier in firings[:n]:
                if earlier.key == later.key:
                    assert earlier.window_start is not None and earlier.window_end is not None
                    assert not (earlier.window_start <= later.event.occurred < earlier.window_end)


@SETTINGS
@given(reactive_trigger, specs, st.booleans())
def test_reactive_fires_only_with_enough_events_counted(
    fields: dict[str, Any], stream: list[Spec], by_timer: bool
) -> None:
    timed = deliveries(build(stream), stream)
    drive = drive_by_timer if by_timer else drive_by_polling
    for firing in drive(evaluator(**fields), timed, HORIZON):
        if firing.state == "triggered":
            assert firing.count >= fields["threshold"]
            assert firing.event is not None


# --------------------------------------------------------------------------- (4) deadlines


def check_deadline(e: TriggerEvaluator) -> None:
    deadline = e.next_deadline()
    ends = [bucket.end for bucket in e.state.buckets.values()]
    holds = [held.received + HOLD_FOR_LEADER for held in e.state.held]
    if ends or holds:
        assert deadline is not None
        assert deadline <= min(ends + holds)
    else:
        assert deadline is None
    if deadline is not None:
        # nothing is due before the deadline: advancing to just before it does nothing
        probe = TriggerEvaluator(e.trigger, e.state.model_copy(deep=True, update={"clock": None}))
        assert probe.advance(deadline - SECOND) == []
        # the events clock moves; nothing else does
        assert probe.state.model_copy(update={"clock": None}) == e.state.model_copy(
            update={"clock": None}
        )


@SETTINGS
@given(proactive_trigger, specs, st.booleans())
def test_next_deadline_is_never_later_than_the_earliest_proactive_window_end(
    fields: dict[str, Any], stream: list[Spec], by_timer: bool
) -> None:
    e = evaluator(**fields)
    clock = at(0)
    e.start(clock)
    check_deadline(e)
    for t, event in deliveries(build(stream), stream):
        while by_timer and (deadline := e.next_deadline()) is not None and deadline <= at(t):
            clock = max(clock, deadline)
            e.advance(clock)
            check_deadline(e)
        clock = at(t)
        e.receive([event], clock)
        check_deadline(e)
    while (deadline := e.next_deadline()) is not None and deadline <= at(HORIZON):
        clock = max(clock, deadline)
        e.advance(clock)
        check_deadline(e)


@SETTINGS
@given(proactive_trigger, specs)
def test_proactive_firings_from_the_deadline_timer_equal_a_one_second_poll(
    fields: dict[str, Any], stream: list[Spec]
) -> None:
    timed = deliveries(build(stream), stream)
    by_timer = summary(drive_by_timer(evaluator(**fields), timed, HORIZON))
    assert by_timer == summary(drive_by_polling(evaluator(**fields), timed, HORIZON))


@SETTINGS
@given(any_trigger, specs)
def test_the_timer_leaves_nothing_overdue(fields: dict[str, Any], stream: list[Spec]) -> None:
    e = evaluator(**fields)
    drive_by_timer(e, deliveries(build(stream), stream), HORIZON)
    assert e.state.held == []  # every follower was evaluated, with its leader or after 15 min
    deadline = e.next_deadline()
    assert deadline is None or deadline > at(HORIZON)
