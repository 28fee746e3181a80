"""The event loop the long-running processes (worker, API, dev, events writer) run on:
uvloop's (libuv) where it is installed, which is everywhere but Windows.

The worker hands every activation and activity between temporalio's threads and its loop.
Measured with the worker, the API and its events writer on uvloop against asyncio's own loop
(`bench/ab.py --only proactive,reactive`, 6 alternating fresh stacks each, medians):
proactive p50 / p99 10.35 / 24.2 -> 9.3 / 21.0 ms, reactive p50 / p99 6.65 / 20.7 -> 5.8 /
18.5 ms.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)`, on uvloop's event loop where it is installed."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
