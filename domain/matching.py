"""Resource specifications and event-name globs: which events a trigger is about."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase

from temporal_automations.domain.events import Labels

ResourceSpec = dict[str, str | list[str]]


def label_matches(pattern: str, value: str | None) -> bool:
    """A case-sensitive glob; a leading `!` negates. A missing label never matches."""
    if value is None:
        return False
    if pattern.startswith("!"):
        return not fnmatchcase(value, pattern[1:])
    return fnmatchcase(value, pattern)


def resource_matches(spec: ResourceSpec, labels: Labels) -> bool:
    """Every label of the spec must match (AND); a list of values for one label is OR."""
    for label, expected in spec.items():
        patterns = [expected] if isinstance(expected, str) else expected
        value = labels.get(label)
        if not any(label_matches(pattern, value) for pattern in patterns):
            return False
    return True


def related_matches(specs: ResourceSpec | list[ResourceSpec], related: list[Labels]) -> bool:
    """One spec is met by ANY related resource; a list of specs needs EVERY spec met."""
    spec_list = [specs] if isinstance(specs, dict) else specs
    for spec in spec_list:
        if spec and not any(resource_matches(spec, labels) for labels in related):
            return False
    return True


def name_matches(patterns: Iterable[str], name: str) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)
