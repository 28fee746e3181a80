"""One table of figures: our stack, and beside it Prefect's own server (`--peer prefect`).

    python bench/bench.py --peer prefect [--quick] [--big]
    python bench/bench.py --table [--quick] [--big]      # ours only

Ours: the real stack (Temporal dev server in a SQLite file, worker, API) on loopback. Prefect:
`prefect server start` (SQLite) from the venv the tests build (.prefect-venv, created on first
use). One after the other, never at once; the same client code and the same webhook receiver.
Rows: reactive latency, proactive lateness (10 automations registered; `--big`: also 10,000,
ours), a burst where every event fires a webhook (duplicates counted), ingest, and the worker's
and the API's RSS at 10, 1,000 (and with `--big` 10,000) automations. The machine (cores, load
average at the start and the end of each side) is printed with the table.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from scale import caught_up, create_many, rss_mb  # type: ignore[import-not-found]

from bench import (  # type: ignore[import-not-found]
    JSON,
    CpuMeter,
    EventBodies,
    bench_burst,
    bench_ingest,
    bench_proactive,
    bench_reactive,
    counting_automation,
    cpu_seconds,
    create,
    load,
)
from tests.stack import Stack, running_stack
from tests.support import Receiver

LAST_TABLE = Path(__file__).resolve().parent / "last-side-by-side.json"


async def ingest_all_matching(
    api: httpx.AsyncClient, automations: int, seconds: float, batch: int
) -> dict[str, Any]:
    """Every event matches one of `automations` (none fires), one client, `batch` events a
    request: events/s accepted, and that every one reached its automation."""
    ids = []
    for index in range(automations):
        ids.append(
            await create(
                api, counting_automation(f"bench ingest all {index}", f"bench.all.{index}")
            )
        )
    sent = 0
    bodies = EventBodies()
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        body = bodies.body([f"bench.all.{(sent + i) % automations}" for i in range(batch)])
        (await api.post("/events", content=body, headers=JSON)).raise_for_status()
        sent += batch
    elapsed = time.monotonic() - started
    received = 0
    for _ in range(240):  # accepted means durable; evaluation may lag a moment
        counts = await asyncio.gather(*(api.get(f"/automations/{i}/status") for i in ids))
        received = sum(answer.json()["stats"]["events_received"] for answer in counts)
        if received >= sent:
            break
        await asyncio.sleep(0.25)
    evaluated = time.monotonic() - started
    return {
        "automations": automations,
        "events_accepted": sent,
        "seconds": round(elapsed, 2),
        "events_per_s": round(sent / elapsed, 1),
        "evaluated_per_s": round(sent / evaluated, 1),
        "received": received,
        "lost": sent - received,
    }


async def settled(stack: Stack, quiet_ms_per_s: float = 100.0, limit_s: float = 300.0) -> float:
    """Seconds until the dev server's CPU stays under `quiet_ms_per_s` for 2 s in a row (at
    most `limit_s`). After 9,000 creations it still wrote their visibility records once the
    worker had caught up: a proactive run started then had the server at 373-510 ms of CPU
    a second, against 194-250 in rounds minutes later (20 idle)."""
    assert stack.server.process is not None
    pid = stack.server.process.pid
    started = time.monotonic()
    quiet = 0
    while quiet < 2 and time.monotonic() - started < limit_s:
        before = cpu_seconds(pid)
        await asyncio.sleep(1)
        quiet = quiet + 1 if (cpu_seconds(pid) - before) * 1000 < quiet_ms_per_s else 0
    return round(time.monotonic() - started, 1)


async def grow(api: httpx.AsyncClient, stack: Stack, made: int, to: int) -> dict[str, Any]:
    """Idle automations up to `to` in all (created over HTTP by 32 clients), then the worker
    caught up; the RSS of the worker, of the API and of the dev server."""
    figures: dict[str, Any] = {}
    if to > made:
        figures["create"] = await create_many(api, 10_000_000 + made, to - made, 32)
    figures["worker_caught_up_s"] = await caught_up(stack)
    assert stack.worker is not None and stack.api is not None
    figures["worker_rss_mb"] = rss_mb(stack.worker.pid)
    figures["api_rss_mb"] = rss_mb(stack.api.pid)
    figures["server_rss_mb"] = rss_mb(stack.server.pid)
    figures["load"] = load()
    return figures


def proactive_size(quick: bool) -> tuple[int, int]:
    """Deadlines a round, rounds: 500 deadlines make a p99 that one garbage collection of the
    dev server does not decide (in 100, the second-latest is the p99)."""
    return (20, 1) if quick else (100, 5)


async def run_ours(quick: bool, big: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"load_at_start": load()}
    started = time.monotonic()

    def note(name: str, value: Any) -> None:
        figures[name] = value
        print(json.dumps({f"ours {name}": value}), flush=True)

    with Receiver() as receiver, running_stack(persistent=True) as stack:
        meter = CpuMeter(stack)
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=stack.api_url, headers=stack.headers, timeout=120, limits=limits
        ) as api:
            await create_many(api, 0, 8, 8)  # with reactive and proactive: 10 automations
            await caught_up(stack)
            note("reactive", await bench_reactive(api, receiver, 50 if quick else 300))
            note("proactive_10", await bench_proactive(api, receiver, *proactive_size(quick)))
            # The proactive run deleted its automation: one idle one in its place.
            note("at_10", await grow(api, stack, 9, 10))
            meter.start()
            burst = await bench_burst(api, receiver, 500 if quick else 3000)
            cpu = meter.stop()
            burst["cpu_ms_per_action"] = {
                name: round(seconds * 1000 / max(burst["actions_received"], 1), 2)
                for name, seconds in cpu.items()
            }
            note("burst", burst)
            note(
                "ingest_all_matching",
                await ingest_all_matching(api, 100, 5 if quick else 20, 500),
            )
            note(
                "ingest_1pct_4_clients",
                await bench_ingest(api, 100, seconds=5 if quick else 20, batch=500, concurrency=4),
            )
            made = 10 + 1 + 100 + 100
            note("at_1000", await grow(api, stack, made, 1_000))
            if big:
                note("at_10000", await grow(api, stack, 1_000, 10_000))
                receiver.clear()  # fewer requests for the arrivals to be looked for in
                # Registered, not being created: the deadlines wait for the server to settle.
                note("settled_before_proactive_10000_s", await settled(stack))
                note(
                    "proactive_10000",
                    await bench_proactive(api, receiver, *proactive_size(quick)),
                )
    figures["load_at_end"] = load()
    figures["seconds"] = round(time.monotonic() - started, 1)
    return figures


# --------------------------------------------------------------------------- the table


def machine() -> dict[str, Any]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _get(figures: dict[str, Any] | None, *path: str) -> float | None:
    value: Any = figures
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value if isinstance(value, int | float) else None


def rows(ours: dict[str, Any], peer: dict[str, Any] | None) -> list[tuple[str, Any, Any, str]]:
    """(figure, ours, Prefect's, ratio: how many times better ours is)."""

    def lower_better(name: str, a: float | None, b: float | None) -> tuple[str, Any, Any, str]:
        ratio = f"{b / a:.1f}×" if a and b else "—"
        return name, a, b, ratio

    def higher_better(name: str, a: float | None, b: float | None) -> tuple[str, Any, Any, str]:
        ratio = f"{a / b:.1f}×" if a and b else "—"
        return name, a, b, ratio

    table = [
        lower_better(
            "reactive p50 (ms)", _get(ours, "reactive", "p50_ms"), _get(peer, "reactive", "p50_ms")
        ),
        lower_better(
            "reactive p99 (ms)", _get(ours, "reactive", "p99_ms"), _get(peer, "reactive", "p99_ms")
        ),
        lower_better(
            "proactive lateness p50, 10 automations (ms)",
            _get(ours, "proactive_10", "p50_ms"),
            _get(peer, "proactive", "p50_ms"),
        ),
        lower_better(
            "proactive lateness p99, 10 automations (ms)",
            _get(ours, "proactive_10", "p99_ms"),
            _get(peer, "proactive", "p99_ms"),
        ),
    ]

    def worst_round(figures: dict[str, Any] | None, key: str) -> float | None:
        rounds = (figures or {}).get(key, {}).get("round_p99_ms") or []
        known = [value for value in rounds if value is not None]
        return max(known) if len(known) > 1 else None

    def counted(figures: dict[str, Any] | None, key: str) -> str | None:
        if not figures or key not in figures:
            return None
        row = figures[key]
        early = f", {row['early']} early" if "early" in row else ""
        return f"{row['received']} of {row['sent']}{early}"

    table.append(
        lower_better(
            "  p99 of the worst round of 100 deadlines, 10 automations (ms)",
            worst_round(ours, "proactive_10"),
            None,
        )
    )
    table.append(
        (
            "  received of sent (reactive / proactive at 10)",
            f"{counted(ours, 'reactive')} / {counted(ours, 'proactive_10')}",
            f"{counted(peer, 'reactive')} / {counted(peer, 'proactive')}" if peer else None,
            "",
        )
    )
    if "proactive_10000" in ours:
        table += [
            lower_better(
                "proactive lateness p50, 10,000 automations (ms)",
                _get(ours, "proactive_10000", "p50_ms"),
                None,
            ),
            lower_better(
                "proactive lateness p99, 10,000 automations (ms)",
                _get(ours, "proactive_10000", "p99_ms"),
                None,
            ),
            lower_better(
                "  p99 of the worst round of 100 deadlines, 10,000 automations (ms)",
                worst_round(ours, "proactive_10000"),
                None,
            ),
            ("  received of sent", counted(ours, "proactive_10000"), None, ""),
        ]
    table += [
        higher_better(
            "burst actions/s (every event fires a webhook)",
            _get(ours, "burst", "actions_per_s"),
            _get(peer, "burst", "actions_per_s"),
        ),
        (
            "burst: actions received / duplicates",
            f"{_get(ours, 'burst', 'actions_received')} of {_get(ours, 'burst', 'events')}"
            f" / {_get(ours, 'burst', 'duplicates')}",
            f"{_get(peer, 'burst', 'actions_received')} of {_get(peer, 'burst', 'events')}"
            f" / {_get(peer, 'burst', 'duplicates')}"
            if peer
            else None,
            "",
        ),
        higher_better(
            "ingest events/s, all matching 1 of 100 automations, 1 client, 500/request",
            _get(ours, "ingest_all_matching", "events_per_s"),
            _get(peer, "ingest_all_matching", "events_per_s"),
        ),
        higher_better(
            "  evaluated events/s (ours: counted by the automations; Prefect: a sentinel)",
            _get(ours, "ingest_all_matching", "evaluated_per_s"),
            _get(peer, "ingest_all_matching", "evaluated_per_s"),
        ),
        (
            "  lost (ours: counted by the automations)",
            _get(ours, "ingest_all_matching", "lost"),
            "not counted",
            "",
        ),
        higher_better(
            "ingest events/s, 1% matching, 4 clients, 500/request",
            _get(ours, "ingest_1pct_4_clients", "events_per_s"),
            None,
        ),
        ("  lost", _get(ours, "ingest_1pct_4_clients", "lost"), None, ""),
    ]
    for step, label in (("at_10", "10"), ("at_1000", "1,000"), ("at_10000", "10,000")):
        if step not in ours:
            continue
        peer_rss = _get(peer, "server_rss_mb_10") if step == "at_10" else None
        table += [
            lower_better(
                f"worker RSS, {label} automations (MB) [Prefect: its server]",
                _get(ours, step, "worker_rss_mb"),
                peer_rss,
            ),
            (f"API RSS, {label} automations (MB)", _get(ours, step, "api_rss_mb"), None, ""),
            (
                f"Temporal dev server RSS, {label} automations (MB)",
                _get(ours, step, "server_rss_mb"),
                None,
                "",
            ),
        ]
    return table


def markdown(ours: dict[str, Any], peer: dict[str, Any] | None, info: dict[str, Any]) -> str:
    peer_name = f"Prefect {peer.get('version', '')}".strip() if peer else "Prefect (not run)"
    lines = [
        f"machine: {info['cores']} cores ({info['cpu']}), Python {info['python']}, {info['when']}",
        f"ours: load average {ours['load_at_start']} at start, {ours['load_at_end']} at end, "
        f"{ours['seconds']} s",
    ]
    if peer:
        lines.append(
            f"{peer_name}: load average {peer['load_at_start']} at start, "
            f"{peer['load_at_end']} at end, {peer['seconds']} s"
        )
    lines += [
        "",
        f"| figure | ours | {peer_name} | ours better by |",
        "|---|---|---|---|",
    ]
    for name, a, b, ratio in rows(ours, peer):
        shown_a = "—" if a is None else a
        shown_b = "—" if b is None else b
        lines.append(f"| {name} | {shown_a} | {shown_b} | {ratio} |")
    return "\n".join(lines)


def main(peer: str | None, quick: bool, big: bool) -> None:
    info = machine()
    ours = asyncio.run(run_ours(quick, big))
    theirs = None
    if peer == "prefect":
        from peer_prefect import measure  # type: ignore[import-not-found]

        theirs = measure(quick)
    table = markdown(ours, theirs, info)
    LAST_TABLE.write_text(
        json.dumps({"machine": info, "ours": ours, "prefect": theirs, "quick": quick}, indent=2)
        + "\n"
    )
    print(table)
