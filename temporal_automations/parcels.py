"""The inbox's wire format: a parcel holds, for each of many automations, its events.

One parcel is one payload (`binary/plain`), read without parsing a single event (the API
sends it zlib-compressed after a first line of its own, `MAGIC_ZLIB`):

    inbox-parcel/1\\n
    [["automation-<uuid>", 1234], ["automation-<uuid>", 567], ...]\\n
    <1234 bytes: a JSON list of events><567 bytes: a JSON list of events>...

The header names each delivery's workflow and its byte length; the body is the deliveries'
JSON lists back to back. The API packs one parcel per request (or per few requests), the inbox
workflow merges what it holds for one automation into one list, and the delivery activity
sends each list as that automation's `deliver` signal, byte for byte what the API would have
signalled itself. Anything that does not read as a parcel raises `ParcelError`.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Sequence

from pydantic import BaseModel, Field

MAGIC = b"inbox-parcel/1\n"
# The same, zlib-compressed after this line: events repeat their keys and resource ids, so a
# parcel shrinks ~8x, and the server stores, and sends the worker, that much less.
MAGIC_ZLIB = b"inbox-parcel/1+zlib\n"
MAX_UNPACKED_BYTES = 32_000_000  # what a compressed parcel may expand to
# What one automation gets in one `deliver` signal, from the API or from the inbox (the server
# refuses a payload over 2 MB whole).
MAX_SIGNAL_BYTES = 1_000_000
MAX_DELIVERIES = 20_000  # per parcel: a request reaches at most every enabled automation
# Only automations' workflows take deliveries: a parcel cannot make the inbox signal any
# other workflow of the namespace.
_AUTOMATION_WORKFLOW = re.compile(
    r"automation-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)

Delivery = tuple[str, bytes]  # a workflow id, and a JSON list of events for it


class ParcelError(ValueError):
    """The bytes are not a parcel (or name a workflow that is not an automation's)."""


def pack(deliveries: Iterable[Delivery], compress: bool = False) -> bytes:
    deliveries = list(deliveries)
    header = json.dumps([[workflow_id, len(body)] for workflow_id, body in deliveries])
    parcel = b"".join([MAGIC, header.encode(), b"\n", *(body for _, body in deliveries)])
    if compress:
        return MAGIC_ZLIB + zlib.compress(parcel[len(MAGIC) :], level=1)
    return parcel


def unpack(data: bytes) -> list[Delivery]:
    if data.startswith(MAGIC_ZLIB):
        data = MAGIC + _inflated(data[len(MAGIC_ZLIB) :])
    if not data.startswith(MAGIC):
        raise ParcelError("not an inbox parcel (no inbox-parcel/1 line)")
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise ParcelError("a parcel without a header line")
    try:
        header = json.loads(data[len(MAGIC) : end])
    except (ValueError, RecursionError) as error:
        raise ParcelError(f"the parcel's header is not JSON: {error}") from None
    if not isinstance(header, list) or len(header) > MAX_DELIVERIES:
        raise ParcelError(f"the header must be a list of at most {MAX_DELIVERIES} deliveries")
    deliveries: list[Delivery] = []
    offset = end + 1
    for entry in header:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not _AUTOMATION_WORKFLOW.fullmatch(entry[0])
            or type(entry[1]) is not int
            or entry[1] < 2
        ):
            raise ParcelError(f"a delivery is not [automation workflow id, length]: {entry!r:.200}")
        body = data[offset : offset + entry[1]]
        if len(body) != entry[1]:
            raise ParcelError("the parcel is shorter than its header says")
        deliveries.append((entry[0], body))
        offset += entry[1]
    if offset != len(data):
        raise ParcelError(f"{len(data) - offset} bytes after the parcel's last delivery")
    return deliveries


def _inflated(data: bytes) -> bytes:
    inflater = zlib.decompressobj()
    try:
        inflated = inflater.decompress(data, MAX_UNPACKED_BYTES)
    except zlib.error as error:
        raise ParcelError(f"a compressed parcel that does not inflate: {error}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise ParcelError(f"a compressed parcel over {MAX_UNPACKED_BYTES} bytes, or cut short")
    return inflated


def events_list(items: Sequence[bytes]) -> bytes:
    """The JSON list of every event of `items`, each one a JSON list, in order."""
    if len(items) == 1:
        return items[0]
    inner = [item.strip()[1:-1].strip() for item in items]
    return b"[" + b",".join(part for part in inner if part) + b"]"


def is_events_list(body: bytes) -> bool:
    """UTF-8 JSON holding a list (of anything: each automation checks its events one by one)."""
    try:
        return isinstance(json.loads(body.decode("utf-8")), list)
    except (ValueError, RecursionError):
        return False


class DeliveryReport(BaseModel):
    """What one delivery round did, by index into its parcel; every other one was delivered."""

    gone: list[int] = Field(default_factory=list)  # the automation no longer exists
    retry: list[int] = Field(default_factory=list)  # failed for now: deliver it again
    refused: dict[int, str] = Field(default_factory=dict)  # will never be taken: why
