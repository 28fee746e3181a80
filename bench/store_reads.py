"""The events store's read times on a large SQLite table, printed as JSON (never asserted).

    python bench/store_reads.py [--events 1000000] [--old-store MODULE]

Fills a fresh SQLite file with `--events` events over the last day (1% named
`bench.ingest.m0`, the rest `prefect.flow-run.Running`, a fresh id and resource each, batches of
500 as the writer gets them), then times the reads the feed, count-by and backtests make, each
the best of 3: a page of 50 (with its total) unfiltered, by a rare name, by a common name, by a
name prefix and deep in the results (offset 10,000); counts by event and by hour; a backtest's
fetch of up to 10,000 events of the rare name.

`--old-store MODULE`: the same on a copy of the store of an earlier version (its module on
PYTHONPATH, e.g. `git show <rev>:api/events_store.py > /tmp/old/old_store.py`), its table
created by its own metadata: an A/B of a layout change.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporal_automations.api.events_store import INSERT_SQL  # noqa: E402
from temporal_automations.api.events_writer import _sqlite, insert_sqlite, rows_of  # noqa: E402

RARE = "bench.ingest.m0"
COMMON = "prefect.flow-run.Running"
BATCH = 500


def fill(path: str, events: int, now: datetime) -> None:
    database = _sqlite(path)
    step = timedelta(days=1) / events
    received = int(now.timestamp() * 1e6)
    for start in range(0, events, BATCH):
        body = [
            {
                "id": str(uuid.uuid4()),
                "occurred": (now - timedelta(days=1) + step * j).isoformat(),
                "event": RARE if j % 100 == 0 else COMMON,
                "resource": {"prefect.resource.id": f"prefect.flow-run.{uuid.uuid4()}"},
            }
            for j in range(start, min(start + BATCH, events))
        ]
        with database:
            insert_sqlite(
                database, INSERT_SQL["sqlite"], rows_of(json.dumps(body).encode(), received)
            )
    database.close()


async def best_of(read: Any, times: int = 3) -> float:
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        await read()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000, 1)


async def measure(module: Any, url: str, now: datetime) -> dict[str, float]:
    store = module.EventsStore(url, retention=timedelta(days=7))
    await module.create_tables(store.engine)
    day = {"since": now - timedelta(days=1, minutes=1), "until": now}

    def query(**fields: Any) -> Any:
        return module.StoredQuery(**day, **fields)

    reads = {
        "page_unfiltered": lambda: store.read(query(), limit=50),
        "page_rare_name": lambda: store.read(query(names=[RARE]), limit=50),
        "page_common_name": lambda: store.read(query(names=[COMMON]), limit=50),
        "page_name_prefix": lambda: store.read(query(name_prefixes=["bench."]), limit=50),
        "page_at_offset_10000": lambda: store.read(query(), limit=50, offset=10_000),
        "page_oldest_first": lambda: store.read(query(descending=False), limit=50),
        "count_by_event": lambda: store.count_by(query(), "event"),
        "count_by_hour": lambda: store.count_by(query(), "day", timedelta(hours=1)),
        "backtest_rare_10000": lambda: store.events(query(names=[RARE], descending=False), 10_000),
    }
    try:
        return {name: await best_of(read) for name, read in reads.items()}
    finally:
        await store.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--old-store", default=None)
    args = parser.parse_args()
    now = datetime.now(UTC)
    module_name = args.old_store or "temporal_automations.api.events_store"
    module = importlib.import_module(module_name)
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/events.db"
        url = f"sqlite+aiosqlite:///{path}"
        asyncio.run(module.create_tables(module.engine_for(url)))
        started = time.monotonic()
        fill(path, args.events, now)
        filled = time.monotonic() - started
        with sqlite3.connect(path) as database:
            indexes = [row[1] for row in database.execute("PRAGMA index_list(events)")]
        database.close()
        figures = asyncio.run(measure(module, url, now))
        size = sum(f.stat().st_size for f in Path(folder).iterdir())
    print(
        json.dumps(
            {
                "store": module_name,
                "events": args.events,
                "indexes": indexes,
                "fill_s": round(filled, 1),
                "file_mb": round(size / 2**20),
                "read_ms_best_of_3": figures,
                "load_average": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    main()
