"""The Temporal bridge, watching the engine's own cluster, skips the engine's workflows: an
automation, its overflow children and the inbox continuing as new are not the user's events."""

from __future__ import annotations

from temporal_automations.cli import _engine_types
from temporal_automations.settings import Settings


def test_the_engines_own_workflow_types_are_left_out_on_its_own_cluster_only() -> None:
    settings = Settings(temporal_address="127.0.0.1:7233")
    assert set(_engine_types(settings, settings.engine_connection())) == {
        "AutomationWorkflow",
        "AutomationOverflow",
        "EventInbox",
    }
    elsewhere = Settings(temporal_address="127.0.0.1:7233", target_temporal_address="other:7233")
    assert _engine_types(elsewhere, elsewhere.target_connection()) == []
