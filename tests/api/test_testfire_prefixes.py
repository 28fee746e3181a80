"""Which event names a backtest reads from the store (api/testfire.py `event_name_prefixes`)."""

from __future__ import annotations

from typing import Any

from temporal_automations.api.testfire import event_name_prefixes
from tests.support import make_automation


def reactive(*expect: str) -> dict[str, Any]:
    return {"type": "event", "posture": "Reactive", "expect": list(expect)}


def test_an_event_trigger_reads_its_own_names() -> None:
    automation = make_automation(reactive("prefect.flow-run.Failed", "prefect.flow-run.Crash*"))
    assert event_name_prefixes(automation.trigger) == [
        "prefect.flow-run.Crash",
        "prefect.flow-run.Failed",
    ]


def test_a_composite_reads_the_names_of_all_its_children() -> None:
    # Before mypy ran on the API this was an AttributeError (a composite has no `expect`).
    automation = make_automation(
        {"type": "compound", "require": "any", "triggers": [reactive("a.one"), reactive("b.*")]}
    )
    assert event_name_prefixes(automation.trigger) == ["a.one", "b."]


def test_a_composite_with_a_child_that_takes_any_name_reads_everything() -> None:
    automation = make_automation({"type": "sequence", "triggers": [reactive("a.one"), reactive()]})
    assert event_name_prefixes(automation.trigger) is None
