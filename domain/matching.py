"""Resource specifications and event-name patterns: which events a trigger is about.

Prefect's pattern syntax, and nothing more: a pattern is an exact string, or ends in `*`, or
starts with `!` (negation). `?`, `[..]` and a `*` anywhere but at the end are literal characters.
- Label values: a trailing `*` is a prefix match (`prefect.flow-run.*`, and `*` alone matches any
  value); a missing label never matches, negated or not.
- Event names: a trailing `*` needs ONE or more further characters (`prefect.flow-run.*` does not
  match `prefect.flow-run.`).
"""

from __future__ import annotations

from collections.abc import Iterable

from temporal_automations.domain.events import Labels

ResourceSpec = dict[str, str | list[str]]


def _value_matches(pattern: str, value: str) -> bool:
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return value == pattern


def label_matches(pattern: str, value: str | None) -> bool:
    """Exact or a trailing-`*` prefix, case-sensitive; a leading `!` negates. A missing label
    never matches."""
    if value is None:
        return False
    if pattern.startswith("!"):
        return not _value_matches(pattern[1:], value)
    return _value_matches(pattern, value)


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


def name_pattern_matches(pattern: str, name: str) -> bool:
    """One event-name pattern: exact, `prefix*` (one or more further characters), or `!...`."""
    if pattern.startswith("!"):
        return not name_pattern_matches(pattern[1:], name)
    if pattern.endswith("*"):
        prefix = pattern[:-1]
        return len(name) > len(prefix) and name.startswith(prefix)
    return name == pattern


def name_matches(patterns: Iterable[str], name: str) -> bool:
    return any(name_pattern_matches(pattern, name) for pattern in patterns)


def is_name_pattern(pattern: str) -> bool:
    """Whether `pattern` matches more than the one name it spells."""
    return pattern.endswith("*") or pattern.startswith("!")
