"""Composite triggers (Prefect's `compound` and `sequence`) in event time, and what templates
see of a firing (Prefect's names)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from temporal_automations.domain.automations import Automation, CompoundTrigger
from temporal_automations.domain.evaluation import TriggerEvaluator
from temporal_automations.domain.inputs import MAX_COMPOSITE_DEPTH, AutomationCore
from temporal_automations.domain.templates import action_context, render
from tests.domain.builders import FAILED, T0, at, automation, event, related, triggered, uid


def reactive(name: str, **fields: Any) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": [name], **fields}


def composite(**trigger: Any) -> Automation:
    return automation(trigger=trigger)


def evaluator_of(**trigger: Any) -> TriggerEvaluator:
    return TriggerEvaluator(composite(**trigger).trigger)


# --------------------------------------------------------------------------- compound


def test_compound_any_fires_on_the_first_child() -> None:
    e = evaluator_of(type="compound", require="any", triggers=[reactive("a"), reactive("b")])
    (firing,) = e.receive([event("b", 5)], at(5))
    assert firing.occurred == at(5) and [child.path for child in firing.firings] == ["1"]
    assert firing.path == "" and firing.event is not None and firing.event.event == "b"


def test_compound_all_fires_once_every_child_fired_and_starts_over() -> None:
    e = evaluator_of(type="compound", require="all", triggers=[reactive("a"), reactive("b")])
    assert e.receive([event("a", 0), event("a", 1)], at(1)) == []
    (firing,) = e.receive([event("b", 2)], at(2))
    assert [child.event.event for child in firing.firings if child.event] == ["a", "b"]
    assert firing.firings[0].event is not None and firing.firings[0].event.occurred == at(1)
    assert e.receive([event("b", 3)], at(3)) == []  # the slots were cleared


def test_compound_require_n_of_three() -> None:
    e = evaluator_of(
        type="compound", require=2, triggers=[reactive("a"), reactive("b"), reactive("c")]
    )
    assert e.receive([event("c", 0)], at(0)) == []
    assert len(e.receive([event("a", 1)], at(1))) == 1


def test_compound_within_drops_child_firings_too_far_apart_in_event_time() -> None:
    e = evaluator_of(
        type="compound", require="all", within=60, triggers=[reactive("a"), reactive("b")]
    )
    # delivered together, but 100 s apart when they occurred
    assert e.receive([event("a", 0), event("b", 100)], at(100)) == []
    assert len(e.receive([event("a", 90)], at(101))) == 1


def test_a_compound_of_a_reactive_and_a_proactive_child() -> None:
    e = evaluator_of(
        type="compound",
        require="all",
        within=120,
        triggers=[
            reactive("deploy"),
            {"posture": "Proactive", "expect": ["beat"], "within": 60},
        ],
    )
    e.start(at(0))
    assert e.receive([event("deploy", 30)], at(30)) == []
    (firing,) = e.advance(at(60))  # no beat in [0, 60): the proactive child fires at 60
    assert [child.occurred for child in firing.firings] == [at(30), at(60)]
    assert firing.occurred == at(60)


# --------------------------------------------------------------------------- sequence


def test_sequence_fires_when_children_fire_in_order() -> None:
    e = evaluator_of(type="sequence", triggers=[reactive("a"), reactive("b"), reactive("c")])
    assert e.receive([event("a", 0), event("b", 1)], at(1)) == []
    (firing,) = e.receive([event("c", 2)], at(2))
    assert [child.path for child in firing.firings] == ["0", "1", "2"]


def test_sequence_out_of_order_in_event_time_does_not_fire() -> None:
    e = evaluator_of(type="sequence", triggers=[reactive("a"), reactive("b")])
    assert e.receive([event("b", 0), event("a", 1)], at(1)) == []
    assert len(e.receive([event("b", 2)], at(2))) == 1  # now b follows a


def test_sequence_arriving_out_of_order_in_one_batch_but_occurred_in_order_fires() -> None:
    e = evaluator_of(type="sequence", triggers=[reactive("a"), reactive("b")])
    (firing,) = e.receive([event("b", 10), event("a", 5)], at(11))
    assert firing.occurred == at(10)


def test_sequence_ties_are_broken_by_arrival() -> None:
    e = evaluator_of(type="sequence", triggers=[reactive("a"), reactive("b")])
    assert e.receive([event("b", 5), event("a", 5)], at(5)) == []
    e = evaluator_of(type="sequence", triggers=[reactive("a"), reactive("b")])
    assert len(e.receive([event("a", 5), event("b", 5)], at(5))) == 1


def test_sequence_within_bounds_the_span() -> None:
    e = evaluator_of(type="sequence", within=10, triggers=[reactive("a"), reactive("b")])
    assert e.receive([event("a", 0), event("b", 30)], at(30)) == []


def test_nested_composites_report_up_to_the_root_only() -> None:
    e = evaluator_of(
        type="compound",
        require="any",
        triggers=[
            {"type": "sequence", "triggers": [reactive("a"), reactive("b")]},
            reactive("z", threshold=3, within=60),
        ],
    )
    assert e.receive([event("a", 0)], at(0)) == []
    (firing,) = e.receive([event("b", 1)], at(1))
    (child,) = firing.firings
    assert child.path == "0" and [g.path for g in child.firings] == ["0.0", "0.1"]


def test_status_describes_each_child() -> None:
    e = evaluator_of(type="compound", require="all", triggers=[reactive("a"), reactive("b")])
    e.receive([event("a", 0)], at(0))
    described = e.describe()
    assert described["type"] == "compound"
    assert described["fired_children"][0] is not None and described["fired_children"][1] is None
    assert [child["path"] for child in described["children"]] == ["0", "1"]


def test_composites_are_checked_at_the_edge() -> None:
    deep: dict[str, Any] = reactive("a")
    for _ in range(MAX_COMPOSITE_DEPTH + 1):
        deep = {"type": "compound", "require": "any", "triggers": [deep]}
    for trigger in (
        deep,
        {"type": "compound", "require": 3, "triggers": [reactive("a"), reactive("b")]},
        {"type": "compound", "require": 0, "triggers": [reactive("a")]},
        {"type": "sequence", "triggers": []},
        {"type": "sequence", "within": -1, "triggers": [reactive("a")]},
    ):
        with pytest.raises(ValidationError):
            AutomationCore.model_validate({"name": "x", "trigger": trigger})
    trigger = composite(
        type="compound", require="all", triggers=[reactive("a"), reactive("b")]
    ).trigger
    assert isinstance(trigger, CompoundTrigger) and trigger.required == 2
    assert trigger.names() == ["a", "b"]


def test_an_event_triggers_errors_keep_their_locations() -> None:
    with pytest.raises(ValidationError) as error:
        AutomationCore.model_validate(
            {"name": "x", "trigger": {"posture": "Proactive", "within": 5}}
        )
    assert [tuple(e["loc"]) for e in error.value.errors()] == [("trigger", "within")]


# --------------------------------------------------------------------------- template context


def test_templates_see_prefect_names_for_a_firing() -> None:
    auto = automation()
    e = TriggerEvaluator(auto.trigger)
    failed = event(
        FAILED,
        10,
        f"prefect.flow-run.{uid(5)}",
        related=[related(f"prefect.deployment.{uid(6)}", "deployment")],
    )
    (firing,) = triggered(e.receive([failed], at(10)))
    context = action_context(auto, firing, uid(9))
    assert render('{{ labels["prefect.resource.id"] }}', context) == f"prefect.flow-run.{uid(5)}"
    assert render("{{ event.occurred.year }} {{ event.occurred }}", context) == (
        f"{T0.year} 2026-03-01T12:00:10Z"
    )
    assert render("{{ firing.triggered > event.occurred }}", context) == "False"
    assert render("{{ firing.trigger_states | join(',') }}", context) == "Triggered"
    assert render("{{ firing.triggering_event.event }}", context) == FAILED
    assert render('{{ resource_in_role["deployment"].id }}', context) == (
        f"prefect.deployment.{uid(6)}"
    )
    assert render("{{ firings | length }} {{ events[0].event }}", context) == f"1 {FAILED}"


def test_templates_see_a_composites_children() -> None:
    auto = composite(type="sequence", triggers=[reactive("a"), reactive("b")])
    e = TriggerEvaluator(auto.trigger)
    (firing,) = e.receive([event("a", 0), event("b", 1)], at(1))
    context = action_context(auto, firing, uid(9))
    assert render("{% for e in events %}{{ e.event }}{% endfor %}", context) == "ab"
    assert render("{{ firings | map(attribute='path') | join(',') }}", context) == "0,1"


# --------------------------------------------------------------------------- property


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["compound", "sequence"]),
    st.sampled_from(["any", "all", 2]),
    st.sampled_from([None, 10, 60]),
    st.lists(st.tuples(st.sampled_from(["a", "b", "c", "y"]), st.integers(0, 120)), max_size=20),
    st.sets(st.integers(1, 20)),
)
def test_composite_firings_do_not_depend_on_batching(
    kind: str, require: Any, within: Any, stream: list[tuple[str, int]], cuts: set[int]
) -> None:
    trigger: dict[str, Any] = {
        "type": kind,
        "within": within,
        "triggers": [reactive("a"), reactive("b", threshold=2, within=30), reactive("c")],
    }
    if kind == "compound":
        trigger["require"] = require
    events = [event(name, t, id=uid(n + 100)) for n, (name, t) in enumerate(stream)]

    def run(batches: list[list[Any]]) -> list[Any]:
        e = evaluator_of(**trigger)
        out = []
        for batch in batches:
            out += e.receive(batch, at(500))
        return [(f.occurred, [c.path for c in f.firings], f.count) for f in out]

    bounds = sorted(c for c in cuts if 0 < c < len(events))
    batches = [events[i:j] for i, j in zip([0, *bounds], [*bounds, len(events)], strict=True)]
    assert run(batches) == run([[e] for e in events]) == run([events])
