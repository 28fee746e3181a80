"""Getting events to the automations that care, cheaply and without losing any.

- `AutomationIndex`: enabled automations indexed by the event names their triggers name, so an
  event costs nothing for automations that cannot match it.
- `SignalBatcher`: one signal in flight per automation; events that arrive meanwhile ride the
  next signal together (micro-batching that adds no wait when the load is low).
- `EventRouter`: validates nothing (the edge did), routes, batches, and returns only once every
  interested workflow has durably accepted the events, or the inbox workflow has (api/inbox.py):
  a bulk request whose events go to many automations costs one signal instead of one per
  automation.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar
from uuid import UUID

from pydantic_core import to_json
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api.inbox import InboxSender
from temporal_automations.api.pending import Pending, settle
from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import MAX_PAYLOAD_DEPTH, Event, trim_payload
from temporal_automations.domain.lifecycle import is_own_event
from temporal_automations.domain.matching import is_name_pattern, name_pattern_matches
from temporal_automations.parcels import MAX_SIGNAL_BYTES
from temporal_automations.temporal import workflow_id
from temporal_automations.workflows.automation import AutomationWorkflow

T = TypeVar("T")
# What a workflow stores of one event's payload: Prefect accepts events up to 1.5 MB, but an
# automation keeps events in its state and embeds them in its own events. A larger payload is
# stored as a marker with its size and an excerpt (`trim_payload`), never dropped silently.
STORED_PAYLOAD_BYTES = 64_000
REMEMBER_IDS_FOR = 15 * 60.0
MAX_REMEMBERED_IDS = 200_000
NAME_CACHE_SIZE = 10_000
ROUTE_SLICE = 500  # events routed between two yields to the event loop


class AutomationIndex:
    """Kept up to date one automation at a time (`put`, `remove`): with 10,000 automations
    and hundreds of creations a second, rebuilding it on every change would cost more than
    the creations themselves."""

    def __init__(self, automations: Iterable[Automation] = ()) -> None:
        self.by_name: dict[str, dict[UUID, Automation]] = defaultdict(dict)
        self.by_pattern: dict[UUID, tuple[list[str], Automation]] = {}
        self.any_name: dict[UUID, Automation] = {}
        self._names_of: dict[UUID, list[str]] = {}
        self._name_cache: dict[str, list[Automation]] = {}
        for automation in automations:
            self.put(automation)

    def __len__(self) -> int:
        return len(self._names_of)

    def put(self, automation: Automation) -> None:
        """Index `automation` (or its new definition); a paused one is not indexed."""
        self.remove(automation.id)
        if not automation.enabled:
            return
        # The names its trigger (every event trigger of a composite) listens to; none: all.
        names = sorted(set(automation.trigger.names()))
        self._names_of[automation.id] = names
        if not names:
            self.any_name[automation.id] = automation
        patterns = [name for name in names if is_name_pattern(name)]
        if patterns:
            self.by_pattern[automation.id] = (patterns, automation)
        for name in names:
            if not is_name_pattern(name):
                self.by_name[name][automation.id] = automation
        self._name_cache.clear()

    def remove(self, automation_id: UUID) -> None:
        names = self._names_of.pop(automation_id, None)
        if names is None:
            return
        self.any_name.pop(automation_id, None)
        self.by_pattern.pop(automation_id, None)
        for name in names:
            listeners = self.by_name.get(name)
            if listeners is not None:
                listeners.pop(automation_id, None)
                if not listeners:
                    del self.by_name[name]
        self._name_cache.clear()

    def _candidates(self, name: str) -> list[Automation]:
        cached = self._name_cache.get(name)
        if cached is None:
            found = dict(self.by_name.get(name, {}))
            found.update(
                (a.id, a)
                for patterns, a in self.by_pattern.values()
                if any(name_pattern_matches(pattern, name) for pattern in patterns)
            )
            found.update(self.any_name)
            cached = list(found.values())
            if len(self._name_cache) >= NAME_CACHE_SIZE:
                self._name_cache.clear()
            self._name_cache[name] = cached
        return cached

    def interested(self, event: Event) -> list[Automation]:
        return [
            automation
            for automation in self._candidates(event.event)
            if automation.trigger.covers(event) and not is_own_event(automation.id, event)
        ]


class SignalBatcher:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._queues: dict[UUID, list[Pending[Event]]] = {}
        self._draining: dict[UUID, asyncio.Task[None]] = {}

    async def deliver(self, automation_id: UUID, events: list[Event], size: int) -> None:
        """Return once the automation's workflow has durably accepted `events` (`size`: their
        bytes, estimated; over MAX_SIGNAL_BYTES they are measured and go in several signals)."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(automation_id)
        sending = queue is not None
        if queue is None:
            queue = self._queues[automation_id] = []
        waiters: list[asyncio.Future[None]] = []
        for part, part_size in _parts(events, size):
            if not queue or queue[-1].size + part_size > MAX_SIGNAL_BYTES:
                queue.append(Pending[Event]())
            batch = queue[-1]
            batch.items += part
            batch.size += part_size
            waiters.append(loop.create_future())
            batch.waiters.append(waiters[-1])
        if not sending:
            self._draining[automation_id] = asyncio.create_task(self._drain(automation_id))
        await asyncio.gather(*waiters)

    async def settled(self, automation_ids: Iterable[UUID]) -> None:
        """Return once nothing queued so far for these automations is still on its way."""
        draining = [self._draining[a] for a in automation_ids if a in self._draining]
        if draining:
            await asyncio.wait(draining)

    async def _drain(self, automation_id: UUID) -> None:
        queue = self._queues[automation_id]
        handle = self.client.get_workflow_handle(workflow_id(automation_id))
        try:
            while queue:
                batch = queue.pop(0)
                try:
                    # `deliver` takes the batch raw (RawValue) to decode it event by event.
                    await handle.signal(AutomationWorkflow.deliver, batch.items)  # type: ignore[call-overload]
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        settle(batch.waiters)  # deleted meanwhile: nobody left to tell
                    else:
                        settle(batch.waiters, error)
                except Exception as error:
                    settle(batch.waiters, error)
                else:
                    settle(batch.waiters)
        finally:
            del self._queues[automation_id]
            del self._draining[automation_id]


def _parts(events: list[Event], size: int) -> list[tuple[list[Event], int]]:
    """`events` in signal-sized parts, each with its bytes: one part when the estimate is under
    MAX_SIGNAL_BYTES (most requests), else parts of at most that many measured bytes (a
    part over the server's 2 MB limit was refused whole: 45 events of 60 KB for one
    automation got a 422)."""
    if size <= MAX_SIGNAL_BYTES:
        return [(events, size)]
    return list(_by_size([(event, len(to_json(event))) for event in events]))


def _by_size(sized: Sequence[tuple[T, int]]) -> Iterator[tuple[list[T], int]]:
    """Consecutive runs of items of at most MAX_SIGNAL_BYTES (an item over it alone)."""
    part: list[T] = []
    part_size = 0
    for item, item_size in sized:
        if part and part_size + item_size > MAX_SIGNAL_BYTES:
            yield part, part_size
            part, part_size = [], 0
        part.append(item)
        part_size += item_size
    if part:
        yield part, part_size


class CatalogNotReady(RuntimeError):
    """The catalog of automations is still loading: routing by half of it would drop events."""


class EventRouter:
    def __init__(
        self,
        client: Client,
        ready: Callable[[], bool] = lambda: True,
        inbox: InboxSender | None = None,
        inbox_min_automations: int = 0,
        inbox_min_events: int = 1,
    ) -> None:
        self.batcher = SignalBatcher(client)
        self.inbox = inbox
        self.inbox_min_automations = inbox_min_automations
        self.inbox_min_events = inbox_min_events
        # Events sent through the inbox lately: a follower of one goes the same way, so that
        # it reaches each automation after its leader.
        # Keyed by the id's int, as the two below: an int is not tracked by the garbage
        # collector, a UUID object is. Up to 200,000 UUIDs, each kept a few seconds at
        # 50,000 events/s, were promoted into the oldest generation and walked by every
        # full collection: 69 of them in a 1,000,000-event run, 4 s of the API's CPU.
        self._via_inbox: OrderedDict[int, float] = OrderedDict()
        self.index = AutomationIndex()
        self.ready = ready
        # Ordering (`follows`) across automations: ids this process accepted recently, and
        # which automations hold a follower waiting for a leader not seen yet.
        self._recent_ids: OrderedDict[int, float] = OrderedDict()
        self._awaited: dict[int, set[UUID]] = {}

    def reindex(self, automations: Iterable[Automation]) -> None:
        self.index = AutomationIndex(automations)

    def catalog_changed(self, automation_id: UUID, automation: Automation | None) -> None:
        """The store's listener: one automation created, changed (`automation`) or gone."""
        if automation is None:
            self.index.remove(automation_id)
        else:
            self.index.put(automation)

    async def route(self, events: Sequence[Event], size: int) -> int:
        """Deliver to every interested automation; returns how many deliveries were made."""
        if not self.ready():
            raise CatalogNotReady("the automations catalog is still loading")
        targets: dict[UUID, list[Event]] = defaultdict(list)
        now = time.monotonic()
        follows_inbox = False
        trim = size > STORED_PAYLOAD_BYTES  # else no payload in the request can be over it
        for position, event in enumerate(events):
            if position and position % ROUTE_SLICE == 0:
                # A big batch lets other requests in between slices (35,000 events held the
                # loop 0.7 s in one piece). A request routed in between knows the ids of the
                # slices done; a follower of a leader still to come waits for it, as it would
                # for a leader in a later request.
                await asyncio.sleep(0)
            if trim and event.payload:  # an empty payload (most events) has nothing to trim
                event = stored(event)
            # Remembered before delivery: a follower later in this request, or in a request
            # behind this one, is signalled after its leader on the same per-automation queue.
            self._recent_ids[event.id.int] = now
            self._recent_ids.move_to_end(event.id.int)
            follows_inbox = follows_inbox or (
                event.follows is not None and event.follows.int in self._via_inbox
            )
            for automation in self.index.interested(event):
                targets[automation.id].append(self._ordered(event, automation.id))
            for waiting in self._awaited.pop(event.id.int, ()):
                if event not in targets[waiting]:
                    targets[waiting].append(event)
        if self._goes_through_inbox(len(targets), len(events), follows_inbox):
            await self._through_inbox(targets, events, now)
        else:
            per_event = size // max(len(events), 1)
            await asyncio.gather(
                *(
                    self.batcher.deliver(automation_id, batch, per_event * len(batch))
                    for automation_id, batch in targets.items()
                )
            )
        self._forget_old_ids(now)
        return sum(len(batch) for batch in targets.values())

    def _goes_through_inbox(self, automations: int, events: int, follows_inbox: bool) -> bool:
        """A bulk request for many automations: its 204 waits for one signal, not one per
        automation. A single event or a small batch goes directly, the fastest way there."""
        if self.inbox is None or not automations:
            return False
        if follows_inbox:
            return True  # even over the high-water mark: its leader is in there
        return (
            0 < self.inbox_min_automations <= automations
            and events >= self.inbox_min_events
            and self.inbox.has_room()
        )

    async def _through_inbox(
        self, targets: dict[UUID, list[Event]], events: Sequence[Event], now: float
    ) -> None:
        assert self.inbox is not None
        for event in events:  # before any wait: a follower routed meanwhile must know
            self._via_inbox[event.id.int] = now
            self._via_inbox.move_to_end(event.id.int)
        # What this process signalled these automations itself goes first: each one then gets
        # its events in the order they came in.
        await self.batcher.settled(targets)
        encoded: dict[int, bytes] = {}  # each event once, however many automations get it

        def json_of(event: Event) -> bytes:
            found = encoded.get(id(event))
            if found is None:
                found = encoded[id(event)] = to_json(event)
            return found

        await self.inbox.send(
            [
                (workflow_id(automation_id), b"[" + b",".join(part) + b"]")
                for automation_id, batch in targets.items()
                for part, _ in _by_size([(j, len(j)) for j in map(json_of, batch)])
            ]
        )

    def _ordered(self, event: Event, automation_id: UUID) -> Event:
        if event.follows is None:
            return event
        if event.follows.int in self._recent_ids:
            return event.model_copy(update={"follows": None})  # its leader is already in
        self._awaited.setdefault(event.follows.int, set()).add(automation_id)
        return event

    def _forget_old_ids(self, now: float) -> None:
        horizon = now - REMEMBER_IDS_FOR
        while self._recent_ids and (
            len(self._recent_ids) > MAX_REMEMBERED_IDS
            or next(iter(self._recent_ids.values())) < horizon
        ):
            self._recent_ids.popitem(last=False)
        while self._via_inbox and (
            len(self._via_inbox) > MAX_REMEMBERED_IDS
            or next(iter(self._via_inbox.values())) < horizon
        ):
            self._via_inbox.popitem(last=False)
        if len(self._awaited) > MAX_REMEMBERED_IDS:
            self._awaited.clear()  # followers then wait out their 15 minutes in the workflow


def stored(event: Event) -> Event:
    """`event` with its payload trimmed to what a workflow stores."""
    trimmed = trim_payload(event.payload, STORED_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH)
    return event if trimmed is event.payload else event.model_copy(update={"payload": trimmed})
