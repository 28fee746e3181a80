"""Inferred targets: which resource an action with `source: inferred` acts on."""

from __future__ import annotations

from uuid import UUID

from temporal_automations.domain.automations import FlowRunAction, Source, TargetedAction
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import RESOURCE_ID, Labels


class NoTarget(ValueError):
    """Nothing of the needed kind in the firing; the action fails with this reason."""


def infer_target_id(kind: str, firing: Firing) -> UUID:
    """The first `prefect.<kind>.<uuid>` in the triggering event (its resource, then related
    ones in order); for a firing without an event, the firing key's labels."""
    prefix = f"prefect.{kind}."
    candidates: list[str] = []
    if firing.event is not None:
        candidates = [labels.get(RESOURCE_ID, "") for labels in firing.event.resources()]
    candidates += list(firing.labels.values())
    for candidate in candidates:
        if candidate.startswith(prefix):
            try:
                return UUID(candidate[len(prefix) :])
            except ValueError:
                continue
    where = "the triggering event" if firing.event is not None else "the firing's labels"
    raise NoTarget(f"no {kind} could be inferred: {where} names no 'prefect.{kind}.<id>' resource")


def target_id(action: TargetedAction | FlowRunAction, firing: Firing) -> UUID:
    """The resource an action acts on: the selected one, or the one the firing names."""
    if isinstance(action, TargetedAction) and action.source == Source.selected:
        assert action.selected_id is not None  # the model's validator guarantees it
        return action.selected_id
    return infer_target_id(action.target_kind, firing)


def infer_resource(prefix: str, firing: Firing) -> tuple[str, Labels]:
    """The first resource whose id starts with `prefix` (the triggering event's resource, then
    its related ones, then the firing key's labels): its id without the prefix, and its labels.
    For Temporal's resources, whose ids are free-form strings rather than UUIDs."""
    resources: list[Labels] = firing.event.resources() if firing.event is not None else []
    for labels in resources:
        resource_id = labels.get(RESOURCE_ID, "")
        if resource_id.startswith(prefix) and len(resource_id) > len(prefix):
            return resource_id[len(prefix) :], labels
    for value in firing.labels.values():
        if value.startswith(prefix) and len(value) > len(prefix):
            return value[len(prefix) :], {}
    where = "the triggering event" if firing.event is not None else "the firing's labels"
    raise NoTarget(f"nothing could be inferred: {where} names no '{prefix}<id>' resource")
