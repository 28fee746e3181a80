"""Differential test: our trigger evaluation against a real Prefect server, on the same streams.

200 seeded random reactive streams (mixed `after`/`expect`, `for_each`, thresholds 0-3, windows
0-20 s, `occurred` out of order). Each stream has its own automation on Prefect (a do-nothing
action) and its own evaluator here, built from the same JSON through our edge model. Prefect
reports each firing as a `prefect.automation.action.triggered` event naming its triggering
event; ours are the firings' events. The firings are compared stream by stream.

Prefect does not keep the order of events within one request, nor across requests (its
in-memory consumer takes two messages at once), and sweeps buckets 60 s past their end: every
event goes in its own request, `follows` the one sent before it (Prefect's causal ordering then
evaluates them in the order sent, as ours does), with `occurred` within the last 30 s. The
only differences allowed are docs/semantics.md's own (`ALLOWED`, each named below); every other
difference fails the test with the stream that shows it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from temporal_automations.domain.evaluation import TriggerEvaluator
from temporal_automations.domain.events import EventIn
from temporal_automations.domain.inputs import AutomationCore
from tests.prefect_server import PrefectServer
from tests.support import eventually

STREAMS = 200
SEED = 20261205
RESOURCE_ID = "prefect.resource.id"


@dataclass
class Stream:
    number: int
    trigger: dict[str, Any]
    offsets: list[tuple[str, str, float]]  # (name, resource, seconds after the base)
    events: list[dict[str, Any]] = field(default_factory=list)
    automation_id: str = ""


def random_stream(rng: random.Random, number: int) -> Stream:
    prefix = f"diff{number}"
    start, x, y = f"{prefix}.start", f"{prefix}.x", f"{prefix}.y"
    trigger = {
        "type": "event",
        "posture": "Reactive",
        # every stream watches only its own resources (an empty expect means every event)
        "match": {RESOURCE_ID: f"{prefix}.*"},
        "after": rng.choice([[], [], [start]]),
        "expect": rng.choice([[x], [x], [x, start], [], [f"{prefix}.*"]]),
        "for_each": rng.choice([[], [RESOURCE_ID]]),
        "threshold": rng.choice([0, 1, 1, 2, 2, 3]),
        "within": rng.choice([0, 5, 10, 20]),
    }
    offsets = []
    cursor = 0.0
    for _ in range(rng.randint(3, 12)):
        # mostly forward in time, sometimes back (out of order), all within 30 s
        cursor = min(max(cursor + rng.uniform(-4, 6), 0.0), 28.0)
        name = rng.choice([start, x, x, y])
        resource = rng.choice([f"{prefix}.r1", f"{prefix}.r2"])
        offsets.append((name, resource, round(cursor, 3)))
    return Stream(number, trigger, offsets)


def ours(stream: Stream) -> list[str]:
    trigger = AutomationCore.model_validate({"name": "d", "trigger": stream.trigger}).trigger
    evaluator = TriggerEvaluator(trigger)  # type: ignore[arg-type]
    fired: list[str] = []
    for data in stream.events:
        event = EventIn.model_validate(data)
        for firing in evaluator.receive([event], datetime.now(UTC)):
            if firing.state == "triggered" and firing.event is not None:
                fired.append(str(firing.event.id))
    return fired


# --------------------------------------------------------------------------- Prefect's side


def post(client: httpx.Client, path: str, body: Any) -> Any:
    """Prefect's SQLite answers 5xx now and then under load: ask again."""

    def answered() -> httpx.Response:
        response = client.post(path, json=body)
        assert response.status_code < 500, f"POST {path}: {response.status_code}"
        return response

    response = eventually(answered, timeout=30, interval=0.3)
    assert response.status_code < 300, f"POST {path}: {response.status_code} {response.text}"
    return response.json() if response.content else None


def action_events(
    client: httpx.Client, since: datetime, automation: str | None = None
) -> list[dict[str, Any]]:
    """Every `prefect.automation.action.triggered` event since `since` (of one automation),
    all pages."""
    body: dict[str, Any] = {
        "filter": {
            "occurred": {
                "since": since.isoformat(),
                "until": (since + timedelta(hours=1)).isoformat(),
            },
            "event": {"name": ["prefect.automation.action.triggered"]},
        },
        "limit": 50,
    }
    if automation is not None:
        body["filter"]["resource"] = {"id": [f"prefect.automation.{automation}"]}
    page = post(client, "/events/filter", body)
    events = list(page["events"])
    while page.get("next_page"):
        response = client.get(page["next_page"])
        assert response.status_code == 200, response.text
        page = response.json()
        events += page["events"]
    return events


def prefect_firings(
    client: httpx.Client, since: datetime, automation: str | None = None
) -> dict[str, list[str]]:
    """Triggering event ids by automation id."""
    by_automation: dict[str, list[str]] = {}
    for event in action_events(client, since, automation):
        automation = event["resource"][RESOURCE_ID].removeprefix("prefect.automation.")
        for related in event.get("related", []):
            if related.get("prefect.resource.role") == "triggering-event":
                triggering = related[RESOURCE_ID].removeprefix("prefect.event.")
                by_automation.setdefault(automation, []).append(triggering)
    return by_automation


def create_automation(client: httpx.Client, name: str, trigger: dict[str, Any]) -> str:
    body = {
        "name": name,
        "trigger": trigger,
        "actions": [{"type": "do-nothing"}],
    }
    return str(post(client, "/automations/", body)["id"])


def send_event(client: httpx.Client, event: dict[str, Any]) -> None:
    post(client, "/events", [event])


# --------------------------------------------------------------------------- allowed differences


ALLOWED: dict[str, str] = {
    "within-0-after": (
        "Reactive, `within` 0, with `after`: docs/semantics.md counts every expected event in the "
        "window an `after` event opened (`within` 0: no time limit but the grace sweep). "
        "Prefect removes that window whenever an event does not fire it (its bucket ends where "
        "it starts), so with a threshold above what the opening event leaves, it never fires."
    ),
}


def explain(stream: Stream, ours_: list[str], theirs: list[str]) -> str | None:
    """The name of the docs/semantics.md difference that accounts for this stream, if any."""
    trigger = stream.trigger
    if trigger["after"] and trigger["within"] == 0 and not theirs and ours_:
        return "within-0-after"
    return None


def test_random_reactive_streams_fire_as_on_prefect(prefect: PrefectServer) -> None:
    rng = random.Random(SEED)
    streams = [random_stream(rng, n) for n in range(STREAMS)]
    since = datetime.now(UTC) - timedelta(minutes=5)
    with prefect.client() as client:
        for stream in streams:
            stream.automation_id = create_automation(
                client, f"differential {stream.number}", stream.trigger
            )
        # a sentinel automation: once it fires on an event sent after a stream, Prefect has
        # evaluated that stream (one consumer, in order) and its automations are loaded
        sentinel_id = create_automation(
            client,
            "differential sentinel",
            {"posture": "Reactive", "expect": ["diff.sentinel"], "match": {RESOURCE_ID: "s.*"}},
        )

        def sentinel_fired(count: int) -> bool:
            fired = prefect_firings(client, since, sentinel_id).get(sentinel_id, [])
            return len(fired) >= count

        sentinels = 0

        def send_sentinel() -> None:
            nonlocal sentinels
            sentinels += 1
            send_event(
                client,
                {
                    "id": str(uuid.uuid4()),
                    "occurred": datetime.now(UTC).isoformat(),
                    "event": "diff.sentinel",
                    "resource": {RESOURCE_ID: f"s.{sentinels}"},
                },
            )

        # Prefect loads automations asynchronously: until a sentinel fires, send another one
        # each time (one sent before the triggers were loaded never fires).
        def loaded() -> bool:
            if sentinel_fired(1):
                return True
            send_sentinel()
            return False

        eventually(loaded, timeout=60, interval=0.5, what="Prefect's triggers loaded")
        sentinels_fired = len(prefect_firings(client, since, sentinel_id).get(sentinel_id, []))

        for stream in streams:
            base = datetime.now(UTC) - timedelta(seconds=30)
            leader: str | None = None
            for name, resource, offset in stream.offsets:
                event = {
                    "id": str(uuid.uuid4()),
                    "occurred": (base + timedelta(seconds=offset)).isoformat(),
                    "event": name,
                    "resource": {RESOURCE_ID: resource},
                }
                if leader is not None:
                    event["follows"] = leader
                leader = event["id"]
                stream.events.append(event)
                send_event(client, event)
        send_sentinel()
        eventually(
            lambda: sentinel_fired(sentinels_fired + 1),
            timeout=120,
            what="Prefect evaluated every stream",
        )
        # the actions service and the persister run behind the triggers: wait until stable
        previous: list[int] = []

        def stable() -> bool:
            counts = sum(len(v) for v in prefect_firings(client, since).values())
            previous.append(counts)
            return len(previous) >= 4 and len(set(previous[-4:])) == 1

        eventually(stable, timeout=60, interval=1.0, what="Prefect's firings settled")
        theirs_by_automation = prefect_firings(client, since)

    mismatches: list[str] = []
    allowed: dict[str, int] = {}
    for stream in streams:
        mine = sorted(ours(stream))
        theirs = sorted(theirs_by_automation.get(stream.automation_id, []))
        if mine == theirs:
            continue
        reason = explain(stream, mine, theirs)
        if reason is not None:
            allowed[reason] = allowed.get(reason, 0) + 1
            continue
        names = {
            e["id"]: f"{e['event']}@{e['occurred'][17:23]}/{e['resource'][RESOURCE_ID]}"
            for e in stream.events
        }
        mismatches.append(
            f"stream {stream.number} {stream.trigger}\n"
            f"  events: {[names[e['id']] for e in stream.events]}\n"
            f"  ours:   {[names.get(i, i) for i in mine]}\n"
            f"  prefect:{[names.get(i, i) for i in theirs]}"
        )
    total = sum(len(theirs_by_automation.get(s.automation_id, [])) for s in streams)
    print(f"{STREAMS} streams, {total} Prefect firings, allowed differences: {allowed}")
    assert not mismatches, f"{len(mismatches)} streams differ:\n" + "\n".join(mismatches[:20])
