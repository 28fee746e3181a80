"""Which requests the router hands to the inbox: many events for many automations at once,
while the inbox has room, and any request holding a follower of an event that went through
it."""

from __future__ import annotations

import gc
import json
import uuid
from datetime import UTC, datetime
from uuid import UUID

from temporal_automations.api.routing import EventRouter
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import Event, EventIn
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.parcels import Delivery
from temporal_automations.temporal import workflow_id

MIN_AUTOMATIONS = 3
MIN_EVENTS = 2


class RecordingBatcher:
    """A fake of SignalBatcher (no Temporal here): records what each automation would get."""

    def __init__(self) -> None:
        self.delivered: dict[UUID, list[Event]] = {}

    async def deliver(self, automation_id: UUID, events: list[Event], size: int) -> None:
        self.delivered.setdefault(automation_id, []).extend(events)

    async def settled(self, automation_ids: object) -> None:
        return None


class RecordingInbox:
    """A fake of InboxSender (no Temporal here): records the parcels; `room` is its answer."""

    def __init__(self) -> None:
        self.room = True
        self.sent: list[list[Delivery]] = []

    def has_room(self) -> bool:
        return self.room

    async def send(self, deliveries: list[Delivery]) -> None:
        self.sent.append(deliveries)


def listener(name: str) -> Automation:
    now = datetime.now(UTC)
    core = AutomationCore.model_validate(
        {
            "name": name,
            "trigger": {"posture": "Reactive", "expect": [name], "threshold": 1000},
            "actions": [{"type": "do-nothing"}],
        }
    )
    return core.to_automation(uuid.uuid4(), now, now)


def make_router() -> tuple[EventRouter, RecordingBatcher, RecordingInbox, list[Automation]]:
    inbox = RecordingInbox()
    router = EventRouter(
        client=None,  # type: ignore[arg-type]  # the batcher is replaced
        inbox=inbox,  # type: ignore[arg-type]
        inbox_min_automations=MIN_AUTOMATIONS,
        inbox_min_events=MIN_EVENTS,
    )
    batcher = RecordingBatcher()
    router.batcher = batcher  # type: ignore[assignment]
    automations = [listener(f"e{n}") for n in range(MIN_AUTOMATIONS)]
    router.reindex(automations)
    return router, batcher, inbox, automations


def event(name: str, follows: UUID | None = None) -> Event:
    return EventIn(event=name, resource={"prefect.resource.id": "r"}, follows=follows)


async def test_a_request_for_many_automations_is_one_parcel_with_each_ones_events() -> None:
    router, batcher, inbox, automations = make_router()
    events = [event(f"e{n % MIN_AUTOMATIONS}") for n in range(2 * MIN_AUTOMATIONS)]

    assert await router.route(events, 1000) == len(events)

    assert batcher.delivered == {}
    [parcel] = inbox.sent
    got = {target: [item["id"] for item in json.loads(body)] for target, body in parcel}
    assert got == {
        workflow_id(a.id): [str(e.id) for e in events if e.event == a.name] for a in automations
    }


async def test_fewer_automations_fewer_events_or_a_full_inbox_mean_signals_of_its_own() -> None:
    router, batcher, inbox, automations = make_router()
    await router.route([event("e0"), event("e1")], 100)  # 2 automations: under the minimum
    await router.route([event("e2")], 100)  # 1 event: under the minimum
    inbox.room = False
    await router.route([event(f"e{n}") for n in range(MIN_AUTOMATIONS)], 100)
    assert inbox.sent == []
    assert sorted(len(events) for events in batcher.delivered.values()) == [2, 2, 2]


async def test_a_follower_of_an_event_in_the_inbox_goes_through_the_inbox_too() -> None:
    router, batcher, inbox, automations = make_router()
    leaders = [event(f"e{n}") for n in range(MIN_AUTOMATIONS)]
    await router.route(leaders, 100)
    inbox.room = False  # even so: it must reach its automation after its leader
    follower = event("e0", follows=leaders[0].id)
    await router.route([follower], 100)
    assert batcher.delivered == {}
    assert [[target for target, _ in parcel] for parcel in inbox.sent][1] == [
        workflow_id(automations[0].id)
    ]
    [(_, body)] = inbox.sent[1]
    assert json.loads(body)[0]["follows"] is None  # its leader is known to be in: in order


async def test_remembered_ids_add_nothing_for_the_garbage_collector_to_walk() -> None:
    """The router remembers every event id for a while (followers, the inbox's). Kept as
    UUID objects, 200,000 of them were walked by every full collection of the API: 4 s of
    CPU in a 1,000,000-event ingest. Kept as ints, they are not tracked at all."""
    router, _, _, _ = make_router()
    events = [event("nobody.listens") for _ in range(5_000)]
    await router.route(events, size=0)
    await router.route(events[:1], size=0)  # the inbox's memory too: many automations
    del events
    gc.collect()
    remembered = len(router._recent_ids)
    assert remembered >= 5_000
    tracked_ids = sum(1 for obj in gc.get_objects() if type(obj) is UUID)
    assert tracked_ids < 1_000  # the automations' own and the test's; not one per event
