"""Trigger evaluation: every rule of docs/semantics.md "Buckets" and "Ordering", and properties."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_automations.domain.evaluation import GRACE, HOLD_FOR_LEADER, Firing, TriggerEvaluator
from temporal_automations.domain.events import Event
from temporal_automations.domain.inputs import EventTriggerInput
from tests.support import STUCK_TRIGGER, make_event

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def evaluator(**trigger: Any) -> TriggerEvaluator:
    return TriggerEvaluator(EventTriggerInput.model_validate(trigger))


def run_event(name: str, seconds: float, run: str = "r1", **fields: Any) -> Event:
    return make_event(name, f"prefect.flow-run.{run}", occurred=at(seconds), **fields)


def fired(firings: list[Firing]) -> list[Firing]:
    return [f for f in firings if f.state == "triggered"]


def resolved(firings: list[Firing]) -> list[Firing]:
    return [f for f in firings if f.state == "resolved"]


# --------------------------------------------------------------------------- reactive


def test_reactive_fires_at_threshold_once_per_window() -> None:
    e = evaluator(posture="Reactive", expect=["fail"], threshold=3, within=60)
    assert e.receive([run_event("fail", 0), run_event("fail", 1)], at(1)) == []
    firings = e.receive([run_event("fail", 2)], at(2))
    assert len(fired(firings)) == 1 and firings[0].count == 3
    # More in the same window never fire again: the next window starts at the old end.
    assert fired(e.receive([run_event("fail", s) for s in (3, 4, 5, 6)], at(6))) == []
    assert e.state.buckets[firings[0].key].start == at(60)


def test_reactive_next_window_counts_afresh_after_the_first_ends() -> None:
    e = evaluator(posture="Reactive", expect=["fail"], threshold=2, within=10)
    assert len(fired(e.receive([run_event("fail", 0), run_event("fail", 1)], at(1)))) == 1
    assert fired(e.receive([run_event("fail", 11)], at(11))) == []
    assert len(fired(e.receive([run_event("fail", 12)], at(12)))) == 1


def test_reactive_within_zero_fires_on_every_event() -> None:
    e = evaluator(posture="Reactive", expect=["x"])
    events = [run_event("x", s, run=f"r{s}") for s in range(5)] + [run_event("x", 0.5)]
    assert len(fired(e.receive(events, at(5)))) == 6
    assert e.state.triggered == {}  # nothing to resolve, nothing kept


def test_threshold_zero_fires_on_the_first_expected_event_not_the_opening_one() -> None:
    e = evaluator(posture="Reactive", after=["start"], expect=["x"], threshold=0, within=60)
    assert fired(e.receive([run_event("start", 0)], at(0))) == []
    assert len(fired(e.receive([run_event("x", 1)], at(1)))) == 1


def test_for_each_keeps_separate_buckets() -> None:
    e = evaluator(
        posture="Reactive",
        expect=["fail"],
        threshold=2,
        within=60,
        for_each=["prefect.resource.id"],
    )
    assert fired(e.receive([run_event("fail", 0, "a"), run_event("fail", 1, "b")], at(1))) == []
    firings = fired(e.receive([run_event("fail", 2, "a")], at(2)))
    assert [f.labels for f in firings] == [{"prefect.resource.id": "prefect.flow-run.a"}]


def test_expect_without_after_backdates_its_window_by_15_minutes() -> None:
    e = evaluator(posture="Reactive", expect=["x"], threshold=2, within=60)
    e.receive([run_event("x", 0)], at(0))
    (bucket,) = e.state.buckets.values()
    assert bucket.start == at(-15 * 60) and bucket.end == at(60)
    # An older event still inside the backdated window counts (reordering tolerated).
    assert len(fired(e.receive([run_event("x", -300)], at(1)))) == 1


def test_event_before_window_start_is_ignored() -> None:
    e = evaluator(posture="Reactive", after=["start"], expect=["x"], threshold=1, within=60)
    e.receive([run_event("start", 10)], at(10))
    assert fired(e.receive([run_event("x", 5)], at(11))) == []
    assert len(fired(e.receive([run_event("x", 12)], at(12)))) == 1


def test_event_past_the_end_starts_a_new_window_at_itself() -> None:
    e = evaluator(posture="Reactive", expect=["x"], threshold=2, within=10)
    e.receive([run_event("x", 0)], at(0))
    e.receive([run_event("x", 30)], at(30))
    (bucket,) = e.state.buckets.values()
    assert (bucket.start, bucket.end, bucket.count) == (at(30), at(40), 1)


def test_after_opens_window_and_expect_alone_does_nothing() -> None:
    e = evaluator(posture="Reactive", after=["start"], expect=["x"], threshold=1, within=60)
    assert e.receive([run_event("x", 0)], at(0)) == []
    assert e.state.buckets == {}
    e.receive([run_event("start", 1)], at(1))
    firings = fired(e.receive([run_event("x", 2)], at(2)))
    assert len(firings) == 1
    # After a firing with `after`, the key waits for the next `after` event.
    assert e.state.buckets == {}
    assert fired(e.receive([run_event("x", 3)], at(3))) == []


def test_after_event_that_is_also_expected_does_not_count_itself() -> None:
    # `*` expects every event, so the opening "start" is expected too.
    e = evaluator(posture="Reactive", after=["start"], expect=["*"], threshold=1, within=60)
    assert fired(e.receive([run_event("start", 0)], at(0))) == []
    assert len(fired(e.receive([run_event("anything", 1)], at(1)))) == 1


# --------------------------------------------------------------------------- proactive


def test_stuck_run_fires_at_the_deadline_and_not_before() -> None:
    e = evaluator(**STUCK_TRIGGER)
    e.receive([run_event("prefect.flow-run.Running", 0)], at(0))
    assert e.next_deadline() == at(1800)
    assert e.advance(at(1799.9)) == []
    (firing,) = e.advance(at(1800))
    assert firing.state == "triggered"
    assert firing.labels == {"prefect.resource.id": "prefect.flow-run.r1"}
    assert firing.event is not None and firing.event.event == "prefect.flow-run.Running"
    assert e.next_deadline() is None  # with `after`, it waits for the next Running
    assert e.advance(at(5000)) == []


def test_stuck_run_that_completes_in_time_never_fires() -> None:
    e = evaluator(**STUCK_TRIGGER)
    e.receive([run_event("prefect.flow-run.Running", 0)], at(0))
    assert e.receive([run_event("prefect.flow-run.Completed", 600)], at(600)) == []
    assert e.advance(at(1800)) == [] and e.advance(at(3600)) == []


def test_second_running_event_does_not_restart_the_window() -> None:
    e = evaluator(**STUCK_TRIGGER)
    e.receive([run_event("prefect.flow-run.Running", 0)], at(0))
    e.receive([run_event("prefect.flow-run.Running", 1000)], at(1000))
    assert len(e.advance(at(1800))) == 1  # counted from the first Running
    assert e.advance(at(2800)) == []


def test_one_stuck_run_among_many() -> None:
    e = evaluator(**STUCK_TRIGGER)
    e.receive([run_event("prefect.flow-run.Running", s, f"r{s}") for s in range(10)], at(10))
    e.receive(
        [run_event("prefect.flow-run.Completed", 100, f"r{s}") for s in range(10) if s != 7],
        at(100),
    )
    firings = e.advance(at(2000))
    assert [f.labels["prefect.resource.id"] for f in firings] == ["prefect.flow-run.r7"]


def test_proactive_without_after_fires_every_window_while_silent() -> None:
    e = evaluator(posture="Proactive", expect=["heartbeat"], within=60)
    e.start(at(0))
    assert e.next_deadline() == at(60)
    assert len(e.advance(at(60))) == 1
    assert e.next_deadline() == at(120)
    assert len(e.advance(at(120))) == 1
    # A heartbeat resolves the silence and keeps the next window quiet.
    firings = e.receive([make_event("heartbeat", "svc", occurred=at(130))], at(130))
    assert [f.state for f in firings] == ["resolved"]
    assert e.advance(at(180)) == []
    assert len(e.advance(at(240))) == 1


def test_proactive_threshold_counts_expected_events() -> None:
    e = evaluator(posture="Proactive", expect=["ok"], threshold=2, within=60)
    e.start(at(0))
    e.receive([make_event("ok", "svc", occurred=at(10))], at(10))
    assert len(e.advance(at(60))) == 1  # one is short of two


def test_proactive_fires_from_start_only_without_for_each_and_after() -> None:
    keyed = evaluator(
        posture="Proactive", expect=["x"], within=60, for_each=["prefect.resource.id"]
    )
    keyed.start(at(0))
    assert keyed.next_deadline() is None


# --------------------------------------------------------------------------- resolve


def test_proactive_key_resolves_on_its_next_expected_event() -> None:
    e = evaluator(**STUCK_TRIGGER)
    e.receive([run_event("prefect.flow-run.Running", 0)], at(0))
    e.advance(at(1800))
    firings = e.receive([run_event("prefect.flow-run.Completed", 2000)], at(2000))
    assert [(f.state, f.labels["prefect.resource.id"]) for f in firings] == [
        ("resolved", "prefect.flow-run.r1")
    ]
    assert e.state.triggered == {}


def test_reactive_key_resolves_when_a_later_window_ends_below_threshold() -> None:
    e = evaluator(posture="Reactive", expect=["not-ready"], threshold=1, within=60)
    assert len(fired(e.receive([run_event("not-ready", 0)], at(0)))) == 1
    # the window after the firing's, [60, 120), is decided once its grace has passed
    assert e.next_deadline() == at(120) + GRACE
    assert resolved(e.advance(at(179))) == []
    assert len(resolved(e.advance(at(180)))) == 1


# --------------------------------------------------------------------------- dedupe and order


def test_the_same_event_id_is_evaluated_once() -> None:
    e = evaluator(posture="Reactive", expect=["x"])
    event = run_event("x", 0)
    assert len(e.receive([event, event], at(0))) == 1
    assert e.receive([event], at(1)) == []


def test_follower_waits_for_its_leader_then_both_run_in_occurred_order() -> None:
    e = evaluator(**STUCK_TRIGGER)
    running = run_event("prefect.flow-run.Running", 0)
    completed = run_event("prefect.flow-run.Completed", 5, follows=running.id)
    assert e.receive([completed], at(6)) == []
    assert len(e.state.held) == 1
    e.receive([running], at(7))
    assert e.state.held == []
    assert e.advance(at(1800)) == []  # the Completed closed the window: not stuck


def test_follower_is_evaluated_anyway_after_15_minutes() -> None:
    e = evaluator(posture="Reactive", expect=["x"])
    lonely = run_event("x", 0, follows=uuid.uuid4())
    assert e.receive([lonely], at(0)) == []
    assert e.next_deadline() == at(0) + HOLD_FOR_LEADER
    assert len(fired(e.advance(at(0) + HOLD_FOR_LEADER))) == 1


def test_out_of_order_occurred_times_use_event_time() -> None:
    e = evaluator(posture="Reactive", after=["start"], expect=["x"], threshold=2, within=60)
    e.receive([run_event("start", 100)], at(100))
    # Delivered late but occurred inside the window: counts.
    e.receive([run_event("x", 150)], at(200))
    assert len(fired(e.receive([run_event("x", 120)], at(201)))) == 1


# --------------------------------------------------------------------------- properties

NAMES = ["start", "x", "other"]
event_specs = st.lists(
    st.tuples(st.sampled_from(NAMES), st.integers(0, 300), st.sampled_from(["a", "b"])),
    max_size=40,
)
triggers = st.fixed_dictionaries(
    {
        "posture": st.sampled_from(["Reactive", "Proactive"]),
        "after": st.sampled_from([[], ["start"]]),
        "expect": st.sampled_from([[], ["x"]]),
        "threshold": st.integers(0, 3),
        "within": st.sampled_from([0, 10, 60]),
        "for_each": st.sampled_from([[], ["prefect.resource.id"]]),
    }
)


def build(specs: list[tuple[str, int, str]]) -> list[Event]:
    return [run_event(name, seconds, run) for name, seconds, run in specs]


def replay(trigger: dict[str, Any], batches: list[list[Event]]) -> list[tuple[Any, ...]]:
    """Deliver the batches at one clock reading: the follow-on window of a firing starts at
    max(end, now), so only the batching differs between two replays."""
    e = evaluator(**trigger)
    e.start(T0)
    now = at(1000)
    out: list[Firing] = []
    for batch in batches:
        out += e.receive(batch, now)
    return [(f.state, f.key, f.event.id if f.event else None, f.count) for f in out]


@settings(max_examples=200, deadline=None)
@given(triggers, event_specs, st.data())
def test_splitting_a_stream_into_batches_never_changes_the_firings(
    trigger: dict[str, Any], specs: list[tuple[str, int, str]], data: st.DataObject
) -> None:
    events = sorted(build(specs), key=lambda event: event.occurred)
    cuts = sorted(data.draw(st.sets(st.integers(1, max(len(events) - 1, 1)))))
    batches, previous = [], 0
    for cut in [*cuts, len(events)]:
        batches.append(events[previous:cut])
        previous = cut
    assert replay(trigger, [[event] for event in events]) == replay(trigger, batches)


@settings(max_examples=200, deadline=None)
@given(triggers, event_specs)
def test_duplicates_never_change_the_firings(
    trigger: dict[str, Any], specs: list[tuple[str, int, str]]
) -> None:
    events = sorted(build(specs), key=lambda event: event.occurred)
    doubled = [[event, event] for event in events]
    assert replay(trigger, [[event] for event in events]) == replay(trigger, doubled)


@settings(max_examples=200, deadline=None)
@given(event_specs, st.integers(1, 3), st.sampled_from([10, 60]))
def test_reactive_fires_at_most_once_per_window_per_key(
    specs: list[tuple[str, int, str]], threshold: int, within: int
) -> None:
    e = evaluator(
        posture="Reactive",
        expect=["x"],
        threshold=threshold,
        within=within,
        for_each=["prefect.resource.id"],
    )
    events = sorted(build(specs), key=lambda event: event.occurred)
    windows: set[tuple[str, datetime | None]] = set()
    for event in events:
        for firing in fired(e.receive([event], event.occurred)):
            window = (firing.key, firing.window_start)
            assert window not in windows
            windows.add(window)


@settings(max_examples=200, deadline=None)
@given(event_specs)
def test_next_deadline_is_never_after_the_earliest_proactive_window_end(
    specs: list[tuple[str, int, str]],
) -> None:
    e = evaluator(**{**STUCK_TRIGGER, "after": ["start"], "expect": ["x"], "within": 60})
    for event in sorted(build(specs), key=lambda event: event.occurred):
        e.receive([event], event.occurred)
        ends = [bucket.end for bucket in e.state.buckets.values()]
        assert e.next_deadline() == (min(ends) if ends else None)
