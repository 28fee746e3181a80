"""A/B: the same scenarios on stacks that differ in one setting, alternating A, B, A, B...
on a fresh stack each round, the load average printed beside every figure.

    python bench/ab.py --only burst,proactive,reactive,ingest_all --rounds 2 \\
        --a '{}' --b '{"dynamic": {"history.timerProcessorMaxTimeShift": "\\"20ms\\""}}'

A variant is JSON: `dynamic` (the dev server's dynamic config values), `env` (the worker's and
the API's environment). A code change is measured by running this on each commit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from scale import caught_up  # type: ignore[import-not-found]

from bench import (  # type: ignore[import-not-found]
    CpuMeter,
    bench_burst,
    bench_proactive,
    bench_reactive,
    bench_reactive_fan_out,
    create,
    load,
)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from side_by_side import ingest_all_matching  # type: ignore[import-not-found]  # noqa: E402

from tests.stack import running_stack  # noqa: E402
from tests.support import Receiver  # noqa: E402


async def one_round(only: set[str], variant: dict[str, Any], quick: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {"load": load()}
    with (
        Receiver() as receiver,
        running_stack(
            persistent=True, dynamic_config=variant.get("dynamic"), extra_env=variant.get("env")
        ) as stack,
    ):
        meter = CpuMeter(stack)
        async with stack.client(timeout=120) as api:
            # one automation warmed up first: its workflow is running and cached
            await create(
                api,
                {
                    "name": "warm",
                    "trigger": {"posture": "Reactive", "expect": ["warm"]},
                    "actions": [{"type": "do-nothing"}],
                },
            )
            await caught_up(stack)
            if "reactive" in only:
                figures["reactive"] = await bench_reactive(api, receiver, 50 if quick else 200)
            if "reactive_fan_out" in only:
                figures["reactive_fan_out"] = await bench_reactive_fan_out(
                    api, receiver, 30 if quick else 100
                )
            if "proactive" in only:
                figures["proactive"] = await bench_proactive(api, receiver, 20 if quick else 60)
            if "burst" in only:
                meter.start()
                burst = await bench_burst(api, receiver, 500 if quick else 2000)
                cpu = meter.stop()
                burst["cpu_ms_per_action"] = {
                    name: round(seconds * 1000 / max(burst["actions_received"], 1), 2)
                    for name, seconds in cpu.items()
                }
                figures["burst"] = burst
            if "ingest_all" in only:
                meter.start()
                ingest = await ingest_all_matching(api, 100, 5 if quick else 20, 500)
                cpu = meter.stop()
                ingest["cpu_us_per_event"] = {
                    name: round(seconds * 1e6 / max(ingest["events_accepted"], 1), 1)
                    for name, seconds in cpu.items()
                }
                figures["ingest_all"] = ingest
    figures["load_after"] = load()
    return figures


def brief(figures: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"load": figures["load"][0]}
    for name in ("reactive", "reactive_fan_out", "proactive"):
        if name in figures:
            out[name] = f"p50 {figures[name]['p50_ms']} p99 {figures[name]['p99_ms']}"
    if "burst" in figures:
        burst = figures["burst"]
        out["burst"] = f"{burst['actions_per_s']}/s dup {burst['duplicates']}"
        out["cpu_ms"] = burst["cpu_ms_per_action"]
    if "ingest_all" in figures:
        ingest = figures["ingest_all"]
        out["ingest_all"] = (
            f"{ingest['events_per_s']}/s accepted, {ingest['evaluated_per_s']}/s evaluated, "
            f"lost {ingest['lost']}"
        )
        out["cpu_us"] = ingest["cpu_us_per_event"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="reactive,proactive,burst")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--a", default="{}")
    parser.add_argument("--b", default="{}")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--single", action="store_true", help="only --a, once per round")
    args = parser.parse_args()
    only = set(args.only.split(","))
    variants = {"A": json.loads(args.a), "B": json.loads(args.b)}
    if args.single:  # one variant: for code changes, run on each commit in turn
        del variants["B"]
    results: dict[str, list[dict[str, Any]]] = {"A": [], "B": []}
    for _ in range(args.rounds):
        for name, variant in variants.items():
            figures = asyncio.run(one_round(only, variant, args.quick))
            results[name].append(figures)
            print(json.dumps({name: brief(figures)}), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
