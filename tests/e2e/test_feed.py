"""The event feed end to end on a real stack (SQLite store): Prefect's read API, its websockets,
and Prefect's own CLI pointed at us."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import websockets

from tests.prefect_server import PREFECT_VENV, prefect_python
from tests.stack import Stack
from tests.support import event_json, eventually, send


def filtered(api: httpx.Client, event_filter: dict[str, Any], limit: int = 50) -> dict[str, Any]:
    response = api.post("/events/filter", json={"filter": event_filter, "limit": limit})
    assert response.status_code == 200, response.text
    return response.json()


def stored(api: httpx.Client, event_filter: dict[str, Any], count: int) -> dict[str, Any]:
    """The page once `count` events match (the store writes a moment after acceptance)."""

    def page() -> dict[str, Any] | None:
        found = filtered(api, event_filter)
        return found if found["total"] >= count else None

    return eventually(page, what=f"{count} events stored")


def test_filter_by_name_resource_labels_and_related_with_paging(api: httpx.Client) -> None:
    tag = f"prefect.tag.{uuid.uuid4()}"
    run = f"prefect.flow-run.{uuid.uuid4()}"
    related = [{"prefect.resource.id": tag, "prefect.resource.role": "tag"}]
    events = [
        event_json("prefect.flow-run.Running", run, related=related),
        event_json("prefect.flow-run.Completed", run, related=related),
        event_json("prefect.flow-run.Failed", f"prefect.flow-run.{uuid.uuid4()}", related=related),
        event_json("other.thing", run),
    ]
    events[0]["resource"]["team"] = "data"
    send(api, *events)
    by_tag = {"related": {"id": [tag], "role": ["tag"]}}
    page = stored(api, by_tag, 3)
    assert [e["id"] for e in page["events"]] == [e["id"] for e in reversed(events[:3])]
    assert all(e["received"] for e in page["events"]) and page["gaps"] == []

    by_name_and_resource = {"event": {"prefix": ["prefect.flow-run."]}, "resource": {"id": [run]}}
    assert filtered(api, by_name_and_resource)["total"] == 2
    by_labels = {"resource": {"labels": {"team": "data"}}, "related": by_tag["related"]}
    assert [e["id"] for e in filtered(api, by_labels)["events"]] == [events[0]["id"]]
    excluded = {**by_tag, "event": {"exclude_name": ["prefect.flow-run.Failed"]}}
    assert filtered(api, excluded)["total"] == 2

    ascending = {**by_tag, "order": "ASC"}
    first = filtered(api, ascending, limit=2)
    assert first["total"] == 3 and first["next_page"]
    assert [e["id"] for e in first["events"]] == [events[0]["id"], events[1]["id"]]
    second = api.get(first["next_page"])
    assert second.status_code == 200, second.text
    assert [e["id"] for e in second.json()["events"]] == [events[2]["id"]]
    assert second.json()["next_page"] is None
    assert api.get("/events/filter/next", params={"page-token": "not-a-token"}).status_code == 403


def test_occurred_range_and_count_by(api: httpx.Client) -> None:
    kind = f"count.{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    old = now - timedelta(days=2)
    events = [
        event_json(f"{kind}.a", "r.1", occurred=(old + timedelta(minutes=i)).isoformat())
        for i in range(2)
    ] + [event_json(f"{kind}.b", "r.2")]
    send(api, *events)
    stored(api, {"event": {"prefix": [kind]}}, 3)
    day_ago, soon = (now - timedelta(days=1)).isoformat(), (now + timedelta(minutes=1)).isoformat()
    recent = {"event": {"prefix": [kind]}, "occurred": {"since": day_ago, "until": soon}}
    assert filtered(api, recent)["total"] == 1

    body = {"filter": {"event": {"prefix": [kind]}}}
    by_event = api.post("/events/count-by/event", json=body).json()
    assert [(c["value"], c["count"]) for c in by_event] == [(f"{kind}.a", 2), (f"{kind}.b", 1)]
    since = (now - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
    by_day = api.post(
        "/events/count-by/day",
        json={**body, "filter": {**body["filter"], "occurred": {"since": since.isoformat()}}},
    ).json()
    assert sum(c["count"] for c in by_day) == 3 and len(by_day) == 2
    assert all(c["start_time"] < c["end_time"] for c in by_day)


async def test_the_out_websocket_backfills_then_streams_events_posted_after_it_connects(
    stack: Stack,
) -> None:
    run = f"prefect.flow-run.{uuid.uuid4()}"
    before = event_json("prefect.flow-run.Pending", run)
    async with stack.client() as client:
        assert (await client.post("/events", json=[before])).status_code == 204
        url = stack.api_url.replace("http", "ws") + "/events/out"
        async with websockets.connect(url, subprotocols=["prefect"]) as socket:  # type: ignore[list-item]
            await socket.send(json.dumps({"type": "auth", "token": None}))
            assert json.loads(await socket.recv()) == {"type": "auth_success"}
            since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
            event_filter = {"resource": {"id": [run]}, "occurred": {"since": since}}
            await socket.send(json.dumps({"type": "filter", "filter": event_filter}))
            # The backfill may come a moment late: the store writes after acceptance.
            after = [event_json("prefect.flow-run.Running", run) for _ in range(3)]
            noise = event_json("prefect.flow-run.Running", f"prefect.flow-run.{uuid.uuid4()}")
            await asyncio.sleep(0)  # let the server read the filter before we post
            assert (await client.post("/events", json=[noise, *after])).status_code == 204
            seen: list[str] = []
            async with asyncio.timeout(30):
                while len(seen) < 4:
                    message = json.loads(await socket.recv())
                    assert message["type"] == "event"
                    seen.append(message["event"]["id"])
    assert set(seen) == {before["id"], *(e["id"] for e in after)}
    assert seen[1:] == [e["id"] for e in after] or seen[0] != before["id"]


def prefect_cli(stack: Stack, *args: str, timeout: float = 120) -> subprocess.Popen[str]:
    prefect_python()
    env = {
        **os.environ,
        "PREFECT_API_URL": stack.api_url,
        "PREFECT_HOME": str(stack.logs / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    return subprocess.Popen(
        [str(PREFECT_VENV / "bin" / "prefect"), *args],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def test_prefects_own_cli_emits_and_streams_against_our_api(
    stack: Stack, api: httpx.Client
) -> None:
    name = f"cli.emitted.{uuid.uuid4().hex[:8]}"
    resource = f"cli-resource-{uuid.uuid4().hex[:8]}"
    emit = prefect_cli(stack, "event", "emit", name, "--resource-id", resource)
    out, err = emit.communicate(timeout=120)
    assert emit.returncode == 0, out + err
    page = stored(api, {"event": {"name": [name]}}, 1)
    assert page["events"][0]["resource"]["prefect.resource.id"] == resource

    # `--run-once` does not end the command in Prefect 3.9 (it prints until the stream
    # closes, against Prefect's own server too): read its lines as they come, then stop it.
    stream = prefect_cli(stack, "event", "stream", "--run-once", "--format", "json")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.stdout.readline, "")))
    reader.start()
    try:
        streamed = event_json(f"cli.streamed.{uuid.uuid4().hex[:8]}", "prefect.flow-run.x")

        def printed() -> dict[str, Any] | None:
            # Posted until the subscriber has connected and prints it (it may not be up yet).
            send(api, {**streamed, "id": str(uuid.uuid4())})
            for line in list(lines):
                if line.startswith("{") and json.loads(line)["event"] == streamed["event"]:
                    return json.loads(line)
            assert stream.poll() is None, stream.stderr.read() if stream.stderr else ""
            return None

        printed_event = eventually(printed, timeout=90, interval=0.5, what="event streamed")
    finally:
        stream.kill()
        stream.wait()
        reader.join(timeout=10)
    assert printed_event["resource"]["prefect.resource.id"] == "prefect.flow-run.x"


def test_events_are_stored_as_accepted_defaults_and_naive_times_included(
    api: httpx.Client,
) -> None:
    kind = f"as.sent.{uuid.uuid4().hex[:8]}"
    naive = {**event_json(f"{kind}.naive", "r.1"), "occurred": "2026-12-01T10:00:00"}
    no_id = {"event": f"{kind}.no-id", "resource": {"prefect.resource.id": "r.2"}}
    send(api, naive)
    send(api, no_id)  # id and occurred filled in by the API: stored with those
    since = {"occurred": {"since": "2026-11-30T00:00:00Z"}, "event": {"prefix": [kind]}}
    page = stored(api, since, 2)
    by_name = {e["event"]: e for e in page["events"]}
    occurred = datetime.fromisoformat(by_name[f"{kind}.naive"]["occurred"])
    assert occurred == datetime(2026, 12, 1, 10, tzinfo=UTC)  # aware, taken as UTC
    assert uuid.UUID(by_name[f"{kind}.no-id"]["id"])
