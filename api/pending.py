"""What waits for a signal: the items that will ride it, their bytes, and the requests that
wait for it to be accepted (the router's per-automation queues and the inbox sender's)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Pending(Generic[T]):
    items: list[T] = field(default_factory=list)
    size: int = 0
    waiters: list[asyncio.Future[None]] = field(default_factory=list)


def settle(waiters: list[asyncio.Future[None]], error: BaseException | None = None) -> None:
    """Wake every waiter still waiting: done, or failed with `error`."""
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
