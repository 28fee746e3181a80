"""The inbox's delivery round: each automation of a parcel gets its events in one signal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.activities.requests import DELIVER_PARCEL
from temporal_automations.parcels import DeliveryReport, ParcelError, unpack

DELIVER_SIGNAL = "deliver"  # AutomationWorkflow.deliver
SIGNALS_AT_ONCE = 64
SIGNAL_TIMEOUT = timedelta(seconds=10)  # each


class InboxActivities:
    def __init__(self, client: Client) -> None:
        self.client = client

    @activity.defn(name=DELIVER_PARCEL)
    async def deliver_parcel(self, parcel: RawValue) -> DeliveryReport:
        """Signal every delivery of the parcel, SIGNALS_AT_ONCE at a time; never raises for
        one delivery: the report says which to drop and which to send again."""
        try:
            deliveries = unpack(parcel.payload.data)
        except ParcelError as error:  # the inbox packed it: the round fails, to be run again
            raise ApplicationError(f"not a parcel: {error}", non_retryable=True) from None
        report = DeliveryReport()
        gate = asyncio.Semaphore(SIGNALS_AT_ONCE)

        async def deliver(index: int, workflow_id: str, body: bytes) -> None:
            events = RawValue(Payload(metadata={"encoding": b"json/plain"}, data=body))
            async with gate:
                try:
                    await self.client.get_workflow_handle(workflow_id).signal(
                        DELIVER_SIGNAL, events, rpc_timeout=SIGNAL_TIMEOUT
                    )
                except RPCError as error:
                    if error.status == RPCStatusCode.NOT_FOUND:
                        report.gone.append(index)
                    elif _never_taken(error):
                        report.refused[index] = error.message[:500]
                    else:
                        report.retry.append(index)
                except Exception:
                    report.retry.append(index)

        await asyncio.gather(
            *(deliver(index, wid, body) for index, (wid, body) in enumerate(deliveries))
        )
        if report.retry or report.refused:
            activity.logger.warning(
                "inbox round: %d of %d deliveries to send again, %d refused",
                len(report.retry),
                len(deliveries),
                len(report.refused),
            )
        return report

    def all(self) -> list[Callable[..., Any]]:
        return [self.deliver_parcel]


def _never_taken(error: RPCError) -> bool:
    """Too big for the server, however often it is sent. (The other INVALID_ARGUMENT a signal
    meets, a run's 10,000-signal limit, passes once the automation continues as new.)"""
    return error.status == RPCStatusCode.INVALID_ARGUMENT and "size exceeds" in error.message
