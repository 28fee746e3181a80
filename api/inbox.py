"""Sending a request's events to the inbox workflow (workflows/inbox.py) in one signal.

- One parcel signal in flight per API process; parcels that queue behind it ride the next
  signal together, so the inbox accepts them in the order this process routed them.
- `has_room`: the inbox's backlog as last asked (its `status` query, at most every
  QUERY_EVERY seconds while parcels go out), plus everything sent since that question. Over
  the high-water mark the router signals automations itself, which makes a client that sends
  faster than the automations take events wait for them, as it did before the inbox. So it
  does while the inbox drains (due to continue as new, it holds more than a run carries):
  under a steady load the rounds would otherwise never bring it under, and the run forced to
  continue when its history ran out of room dropped what it could not carry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.api.pending import Pending, settle
from temporal_automations.parcels import Delivery, pack
from temporal_automations.workflows.inbox import (
    ACCEPT_SIGNAL,
    INBOX_WORKFLOW_TYPE,
    EventInboxWorkflow,
    InboxRun,
    inbox_workflow_id,
)

log = logging.getLogger("automations.api")

MAX_PARCEL_BYTES = 1_500_000  # one signal (the server takes 2 MB)
QUERY_EVERY = 0.2  # seconds between two questions about the inbox's backlog
QUERY_TIMEOUT = timedelta(seconds=5)


class InboxSender:
    def __init__(self, client: Client, task_queue: str, high_water_bytes: int) -> None:
        self.client = client
        self.task_queue = task_queue
        self.workflow_id = inbox_workflow_id(task_queue)
        self.high_water_bytes = high_water_bytes
        self._queue: list[Pending[Delivery]] = []
        self._sending: asyncio.Task[None] | None = None
        self._backlog = 0  # bytes: the last answer, plus what was sent after it was asked
        self._asking: asyncio.Task[None] | None = None
        self._asked_at = 0.0
        self.parcels_sent = 0
        self.turned_away = 0  # requests for many automations signalled directly: no room

    def has_room(self) -> bool:
        if self._backlog >= self.high_water_bytes:
            self._ask_backlog(at_once=True)
            self.turned_away += 1
            return False
        return True

    def report(self) -> dict[str, int | bool]:
        """For /api/health: what this process sent, and the backlog it believes is there."""
        return {
            "parcels_sent": self.parcels_sent,
            "backlog_bytes": self._backlog,
            "over_high_water": self._backlog >= self.high_water_bytes,
            "requests_sent_directly_while_over": self.turned_away,
        }

    async def send(self, deliveries: list[Delivery]) -> None:
        """Return once the inbox has durably accepted `deliveries`."""
        if not deliveries:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for workflow_id, body in deliveries:
            if not self._queue or self._queue[-1].size + len(body) > MAX_PARCEL_BYTES:
                self._queue.append(Pending[Delivery]())
            parcel = self._queue[-1]
            parcel.items.append((workflow_id, body))
            parcel.size += len(body)
        self._queue[-1].waiters.append(waiter)  # the last parcel goes last: all are in then
        if self._sending is None:
            self._sending = asyncio.create_task(self._drain())
        await waiter

    async def _drain(self) -> None:
        try:
            while self._queue:
                parcel = self._queue.pop(0)
                try:
                    await self._signal(parcel)
                except Exception as error:
                    # Its requests fail (a 5xx: the client sends them again); so do those of
                    # the parcels split from the same request, which wait behind it.
                    settle(parcel.waiters, error)
                    for later in self._queue:
                        settle(later.waiters, error)
                    self._queue.clear()
                else:
                    settle(parcel.waiters)
        finally:
            self._sending = None

    async def _signal(self, parcel: Pending[Delivery]) -> None:
        data = pack(parcel.items, compress=True)
        payload = Payload(metadata={"encoding": b"binary/plain"}, data=data)
        await self.client.start_workflow(
            INBOX_WORKFLOW_TYPE,
            InboxRun(),
            id=self.workflow_id,
            task_queue=self.task_queue,
            start_signal=ACCEPT_SIGNAL,
            start_signal_args=[RawValue(payload)],
        )
        self.parcels_sent += 1
        self._backlog += parcel.size
        self._ask_backlog()

    def _ask_backlog(self, at_once: bool = False) -> None:
        now = time.monotonic()
        if self._asking is not None or (not at_once and now - self._asked_at < QUERY_EVERY):
            return
        self._asked_at = now
        self._asking = asyncio.create_task(self._query_backlog())

    async def _query_backlog(self) -> None:
        sent_before = self._backlog
        try:
            handle: WorkflowHandle[EventInboxWorkflow, None] = self.client.get_workflow_handle(
                self.workflow_id
            )
            status = await handle.query(EventInboxWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
            # A draining inbox continues as new once its backlog fits in the next run: no
            # room until then, however small that backlog is.
            pending = max(status.pending_bytes, self.high_water_bytes if status.draining else 0)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                log.info("the inbox's backlog is unknown for now: %s", error.message)
                return
            pending = 0  # no inbox yet
        except Exception as error:
            log.info("the inbox's backlog is unknown for now: %r", error)
            return
        finally:
            self._asking = None
        # What went out while the question was on its way is not in the answer.
        self._backlog = pending + max(self._backlog - sent_before, 0)
