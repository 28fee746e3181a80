"""Scale: many automations on one worker. Figures printed as JSON (never asserted).

    python bench/scale.py [--steps 10,1000,10000] [--concurrency 32]

Runs the real stack (Temporal dev server in a SQLite file, worker process, API process) on
loopback and, growing the number of automations step by step, measures:
- create: automations created over HTTP by a concurrent client, per second, p50/p99, and how
  long after the last creation the worker had run every new automation's first task;
- rss: resident memory of the worker and of the API at each step (and what each automation
  added to the worker since the first step: at most MAX_CACHED_WORKFLOWS of them are cached);
- event latency: POST /api/events answered -> webhook received, for one automation, at the
  first and the last step (with every other automation registered and not interested);
- second API: a second API process on the same Temporal, from a creation answered by the
  first until the second's catalog has it;
- restart: the API stopped and started again, until it routes events (POST /api/events 204),
  at the last step.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from temporal_automations.devserver import (  # noqa: E402
    stop_process,
    wait_for_port,
)
from tests.stack import Stack, running_stack  # noqa: E402
from tests.support import Receiver  # noqa: E402


def summary_ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] * 1000, 1)

    return {"n": len(ordered), "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0)}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


async def backlog(stack: Stack) -> int:
    """Workflow tasks waiting on the task queue (the server's approximate count)."""
    client = await Client.connect(stack.temporal_address)
    answer = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=stack.env["TASK_QUEUE"]),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return answer.stats.approximate_backlog_count


async def caught_up(stack: Stack) -> float:
    """Seconds until the worker has run every automation's first workflow task (a burst of
    creations queues them: each builds the workflow in a fresh sandbox)."""
    started = time.perf_counter()
    while await backlog(stack) > 0:
        await asyncio.sleep(1)
    return round(time.perf_counter() - started, 1)


def definition(index: int, receiver: Receiver | None = None) -> dict[str, Any]:
    """Automation `index`: listens to an event name of its own, so none hears another's."""
    actions = [] if receiver is None else [{"type": "call-webhook", "url": f"{receiver.url}/hook"}]
    return {
        "name": f"scale {index}",
        "trigger": {
            "posture": "Reactive",
            "expect": [f"bench.scale.{index}"],
            "match": {"prefect.resource.id": "bench.*"},
            "threshold": 1,
            "within": 0,
        },
        "actions": actions or [{"type": "do-nothing"}],
    }


async def create_many(
    api: httpx.AsyncClient, first: int, count: int, concurrency: int
) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[str] = []
    next_index = first

    async def one_client() -> None:
        nonlocal next_index
        while next_index < first + count:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            response = await api.post("/automations/", json=definition(index))
            latencies.append(time.perf_counter() - started)
            if response.status_code != 201:
                failures.append(f"{response.status_code} {response.text[:200]}")

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return {
        "created": count - len(failures),
        "per_second": round(count / elapsed, 1),
        **{k: v for k, v in summary_ms(latencies).items() if k != "n"},
        "failures": failures[:3],
    }


async def event_latency(api: httpx.AsyncClient, receiver: Receiver, rounds: int) -> dict[str, Any]:
    """One automation with a webhook; each event is posted and its webhook awaited."""
    response = await api.post("/automations/", json=definition(-1, receiver))
    response.raise_for_status()
    latencies: list[float] = []
    for _ in range(rounds + 3):
        receiver.clear()
        body = [
            {
                "id": str(uuid.uuid4()),
                "occurred": datetime.now(UTC).isoformat(),
                "event": "bench.scale.-1",
                "resource": {"prefect.resource.id": "bench.latency"},
            }
        ]
        started = time.perf_counter()
        answer = await api.post("/events", json=body)
        answer.raise_for_status()
        await receiver.arrived(1, path="/hook", timeout=30)
        latencies.append(time.perf_counter() - started)
    await api.delete(f"/automations/{response.json()['id']}")
    return summary_ms(latencies[3:])  # the first few warm the caches


def second_api_sees(stack: Stack, rounds: int) -> dict[str, Any]:
    """A second API process on the same Temporal: from a creation answered by the first to
    the second routing it (its GET answers 200: its catalog has it), p50/p99."""
    delays: list[float] = []
    with (
        stack.another_api() as second,
        stack.sync_client() as first,
        httpx.Client(base_url=second, timeout=30) as other,
    ):
        while other.get("/health").json().get("catalog", {}).get("loaded") is not True:
            time.sleep(0.05)
        for index in range(rounds):
            made = first.post("/automations/", json=definition(1_000_000 + index))
            made.raise_for_status()
            answered = time.perf_counter()
            while other.get(f"/automations/{made.json()['id']}").status_code != 200:
                time.sleep(0.01)
            delays.append(time.perf_counter() - answered)
    return summary_ms(delays)


def restart_to_serving(stack: Stack) -> dict[str, float]:
    """Stop the API, start it again; seconds until it listens and until it routes events."""
    stop_process(stack.api)
    started = time.perf_counter()
    stack.api = stack._spawn("api", "-m", "temporal_automations.cli", "api")
    if not wait_for_port(stack.api_port, 120, stack.api):
        raise RuntimeError(stack.log_tails())
    listening = time.perf_counter() - started
    probe = [
        {
            "id": str(uuid.uuid4()),
            "occurred": datetime.now(UTC).isoformat(),
            "event": "bench.nobody",
            "resource": {"prefect.resource.id": "bench.restart"},
        }
    ]
    with stack.sync_client() as api:
        while api.post("/events", json=probe).status_code != 204:
            time.sleep(0.02)
        serving = time.perf_counter() - started
        catalog = api.get("/health").json()["catalog"]
    return {
        "listening_s": round(listening, 2),
        "serving_s": round(serving, 2),
        "catalog_load_s": catalog.get("load_seconds"),
        "catalog_automations": catalog["automations"],
    }


async def run(steps: list[int], concurrency: int, rounds: int) -> dict[str, Any]:
    results: dict[str, Any] = {"steps": {}}
    with Receiver() as receiver, running_stack(persistent=True) as stack:
        assert stack.worker is not None and stack.api is not None
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=stack.api_url, headers=stack.headers, timeout=60, limits=limits
        ) as api:
            made = 0
            first_rss: float | None = None
            for step in steps:
                figures: dict[str, Any] = {}
                if step > made:
                    figures["create"] = await create_many(api, made, step - made, concurrency)
                    made = step
                figures["worker_caught_up_s"] = await caught_up(stack)
                figures["worker_rss_mb"] = rss_mb(stack.worker.pid)
                figures["api_rss_mb"] = rss_mb(stack.api.pid)
                if first_rss is None:
                    first_rss = figures["worker_rss_mb"]
                else:  # what the automations since the first step added, each
                    figures["worker_kb_per_automation"] = round(
                        (figures["worker_rss_mb"] - first_rss) * 1024 / (step - steps[0]), 1
                    )
                if step in (steps[0], steps[-1]):
                    figures["event_latency"] = await event_latency(api, receiver, rounds)
                results["steps"][str(step)] = figures
                print(json.dumps({str(step): figures}), flush=True)
        results["second_api_sees_creation"] = second_api_sees(stack, min(rounds, 20))
        print(json.dumps({"second_api": results["second_api_sees_creation"]}), flush=True)
        results["restart"] = restart_to_serving(stack)
        print(json.dumps({"restart": results["restart"]}), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="10,1000,10000")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    steps = sorted(int(s) for s in args.steps.split(","))
    results = asyncio.run(run(steps, args.concurrency, args.rounds))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
