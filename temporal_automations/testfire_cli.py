"""`automations test`: test-fire an automation definition on events from a file (here, no
server needed), or backtest it on the events store of a running API (`--from 2h`)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
from pydantic import TypeAdapter, ValidationError

from temporal_automations.domain.events import EventIn
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.settings import Settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_events = TypeAdapter(list[EventIn])


class TestInputError(ValueError):
    """A file or option the test cannot use; the message says which and why."""


def instant(value: str, now: datetime) -> datetime:
    """`2h`, `30m`, `1d` (that long ago) or an ISO 8601 instant (naive means UTC)."""
    match = _DURATION.match(value.strip())
    if match:
        return now - timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise TestInputError(f"not a duration (2h, 30m, 1d) or an ISO instant: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load_definition(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
        AutomationCore.model_validate(data)
    except (OSError, ValueError) as error:
        raise TestInputError(f"{path}: {error}") from None
    return data


def load_events(path: Path) -> list[EventIn]:
    try:
        return _events.validate_json(path.read_bytes())
    except (OSError, ValidationError) as error:
        raise TestInputError(f"{path}: {error}") from None


async def test_locally(
    definition: dict[str, Any], events: list[EventIn], until: datetime | None, settings: Settings
) -> dict[str, Any]:
    from temporal_automations.activities.rendering import TemplateRenderer
    from temporal_automations.api.testfire import test_fire

    now = datetime.now(UTC)
    automation = AutomationCore.model_validate(definition).to_automation(uuid4(), now, now)
    async with TemplateRenderer(processes=1) as renderer:
        return await test_fire(
            automation,
            list(events),
            renderer,
            until=until,
            max_events=100_000,
            firings_per_minute=settings.max_firings_per_minute,
            chained_firings_per_minute=settings.max_chained_firings_per_minute,
        )


def backtest_remotely(
    definition: dict[str, Any], since: datetime, to: datetime | None, settings: Settings
) -> dict[str, Any]:
    key = settings.api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}
    body: dict[str, Any] = {
        "automation": definition,
        "events": {"from": since.isoformat(), **({"to": to.isoformat()} if to else {})},
        "max_events": 100_000,
    }
    try:
        response = httpx.post(
            f"{settings.api_url}/automations/test", json=body, headers=headers, timeout=300
        )
    except httpx.HTTPError as error:
        raise TestInputError(f"the API at {settings.api_url} did not answer: {error}") from None
    if response.status_code != 200:
        raise TestInputError(f"the API answered {response.status_code}: {response.text[:500]}")
    return response.json()


def table(result: dict[str, Any]) -> str:
    """The firings as a readable table, then what was scanned."""
    rows = [("#", "state", "at (event time)", "for", "because of", "actions (not sent)")]
    for number, firing in enumerate(result["firings"], 1):
        labels = firing["labels"]
        key = ", ".join(f"{v}" for v in labels.values()) or "(all)"
        event = firing["event"]
        cause = event["event"] if event else "a deadline"
        actions = "; ".join(_action_text(a) for a in firing["actions"]) or (
            firing["not_acted_on_because"] or "none"
        )
        rows.append((str(number), firing["state"], firing["occurred"][:19], key, cause, actions))
    widths = [min(60, max(len(row[i]) for row in rows)) for i in range(len(rows[0]))]
    # Every column but the last (the actions, said in full) cut at 60 characters.
    lines = [
        "  ".join(
            [cell[:60].ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
            + [row[-1]]
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    if not result["firings"]:
        lines.append("(no firing)")
    summary = (
        f"{len(result['firings'])} firing(s); {result['events_scanned']} events scanned, "
        f"{result['events_evaluated']} evaluated, from {result['evaluated_from']} "
        f"until {result['evaluated_until']}"
    )
    lines += ["", summary]
    if result.get("capped"):
        lines.append(f"capped: only the first {result['max_events']} events were evaluated")
    for gap in result.get("gaps") or []:
        lines.append(
            f"gap in the stored events: {gap['events']} events {gap['start']} … {gap['end']} "
            f"({gap['reason']})"
        )
    lines += [f"problem: {problem}" for problem in result.get("problems") or []]
    lines.append("nothing was sent: a test has no side effect")
    return "\n".join(lines)


def _action_text(action: dict[str, Any]) -> str:
    request = action.get("request") or {}
    where = action.get("target") or request.get("url") or ", ".join(request.get("to") or [])
    text = f"{action['type']}" + (f" → {where}" if where else "")
    if action.get("would_fail"):
        text += f" (would fail: {action['would_fail']})"
    return text


def run(
    file: Path,
    events_file: Path | None,
    since: str | None,
    to: str | None,
    until: str | None,
    settings: Settings,
) -> dict[str, Any]:
    if (events_file is None) == (since is None):
        raise TestInputError("give either --events FILE or --from (e.g. --from 2h)")
    definition = load_definition(file)
    now = datetime.now(UTC)
    if events_file is not None:
        events = load_events(events_file)
        limit = instant(until, now) if until else None
        return asyncio.run(test_locally(definition, events, limit, settings))
    assert since is not None
    return backtest_remotely(
        definition, instant(since, now), instant(to, now) if to else None, settings
    )
