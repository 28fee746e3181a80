"""The catalog of automations at scale, on a real Temporal dev server (no worker needed: an
automation's definition is read from its workflow's memo through the visibility index).

- the catalog loads a page of automations per visibility call, from memos, not a query each;
- until it is loaded, events are refused with 503 and Retry-After, and /api/health says so;
- a second API process's catalog follows creations and deletions made through the first.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from temporal_automations.api import store as store_module
from temporal_automations.api.app import create_app
from temporal_automations.api.routing import AutomationIndex, CatalogNotReady, EventRouter
from temporal_automations.api.store import AutomationStore
from temporal_automations.devserver import DevServer
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.settings import Settings
from temporal_automations.temporal import automation_id_of, connect, ensure_search_attributes
from temporal_automations.worker import cache_workflow_bytecode
from temporal_automations.workflows import automation as workflow_module
from tests.support import make_automation, make_event


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[DevServer]:
    with DevServer() as running:
        yield running


def settings_for(server: DevServer, task_queue: str) -> Settings:
    return Settings(
        _env_file=None,
        temporal_address=server.address,
        task_queue=task_queue,
        events_store_url=None,
        data_dir=None,
        health_probe_timeout=0.5,
    )


async def new_store(server: DevServer, task_queue: str) -> AutomationStore:
    settings = settings_for(server, task_queue)
    client = await connect(settings)
    await ensure_search_attributes(client, settings.temporal_namespace)
    return AutomationStore(client, settings)


def core(name: str, event: str, **fields: Any) -> AutomationCore:
    return AutomationCore.model_validate(
        {
            "name": name,
            "trigger": {"posture": "Reactive", "expect": [event], "threshold": 1, "within": 0},
            "actions": [
                {
                    "type": "call-webhook",
                    "url": "https://example.com/hook",
                    "headers": {"Authorization": "Bearer very-secret"},
                }
            ],
            **fields,
        }
    )


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Await `check()` being true; fail past `timeout` (never a fixed sleep)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.05)


async def test_catalog_loads_in_pages_from_memos(
    server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = await new_store(server, "scale-load")
    made = [await writer.create(core(f"load {i}", f"scale.load.{i}")) for i in range(12)]
    paused = await writer.create(core("paused", "scale.load.paused", enabled=False))
    # Several pages: 13 automations (and whatever other tests left running) at 5 a page.
    monkeypatch.setattr(store_module, "CATALOG_PAGE_SIZE", 5)
    reader = await new_store(server, "scale-load")
    assert not reader.ready
    with pytest.raises(CatalogNotReady):
        reader.all()
    # No worker runs: each definition comes from the memo, never from a query (which would
    # wait for a worker that is not there).
    await reader.load()
    assert reader.ready
    for automation in [*made, paused]:
        loaded = reader.get(automation.id)
        assert loaded.name == automation.name
        assert loaded.trigger == automation.trigger
        assert loaded.enabled == automation.enabled
        assert loaded.updated == automation.updated
        # The memo holds no secret: the catalog never needs one (answers mask them anyway).
        assert "very-secret" not in loaded.model_dump_json()
    index = AutomationIndex(reader.all())
    assert [a.id for a in index.interested(make_event("scale.load.3"))] == [made[3].id]
    assert index.interested(make_event("scale.load.paused")) == []
    health = reader.catalog_health()
    assert health["loaded"] is True and health["automations"] >= 13


async def test_change_feed_follows_another_process(server: DevServer) -> None:
    """Two stores on one Temporal (two API processes): what one creates or deletes, the other
    routes or stops routing after its next polls of the visibility index."""
    first = await new_store(server, "scale-feed")
    second = await new_store(server, "scale-feed")
    router = EventRouter(second.client, ready=lambda: second.ready)
    second.on_change(router.catalog_changed)
    await first.load()
    await second.load()

    created = await first.create(core("followed", "scale.feed.created"))

    async def routed() -> bool:
        await second.poll_changes()
        return bool(router.index.interested(make_event("scale.feed.created")))

    await until(routed)
    assert second.get(created.id).trigger == created.trigger

    await first.delete(created.id)

    async def gone() -> bool:
        await second.poll_changes()
        return created.id not in second.catalog

    await until(gone)
    assert router.index.interested(make_event("scale.feed.created")) == []


async def test_resync_puts_right_what_the_feed_missed(server: DevServer) -> None:
    """The periodic full read: a creation and a deletion the change feed never saw (no poll
    here) are put right in one resync."""
    first = await new_store(server, "scale-resync")
    second = await new_store(server, "scale-resync")
    kept = await first.create(core("kept", "scale.resync.kept"))
    removed = await first.create(core("removed", "scale.resync.removed"))

    async def loaded_both() -> bool:  # visibility indexes a new workflow a moment later
        await second.load()
        return kept.id in second.catalog and removed.id in second.catalog

    await until(loaded_both)
    await first.delete(removed.id)
    added = await first.create(core("added", "scale.resync.added"))

    async def put_right() -> bool:
        await second.resync()
        return added.id in second.catalog and removed.id not in second.catalog

    await until(put_right)
    assert kept.id in second.catalog


async def test_a_resync_does_not_undo_what_the_feed_saw_while_it_ran(
    server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A resync reads small pages with pauses (a minute at 10,000 automations), beside the
    feed. A page read before a deletion made elsewhere, and looked at after the feed dropped
    that automation, does not bring it back; one created elsewhere after the pass began,
    which no page of it lists (newest first), is not dropped at its end."""
    monkeypatch.setattr(store_module, "RESYNC_PAGE_SIZE", 2)
    monkeypatch.setattr(store_module, "RESYNC_PAUSE_SECONDS", 0.0)
    first = await new_store(server, "scale-race")
    second = await new_store(server, "scale-race")
    doomed = await first.create(core("doomed", "scale.race.doomed"))
    newer = [await first.create(core(f"newer {i}", f"scale.race.{i}")) for i in range(2)]

    async def loaded() -> bool:
        await second.load()
        return all(a.id in second.catalog for a in [doomed, *newer])

    await until(loaded)
    # The pass's second page (the newest-but-one and `doomed`) is read, then held until the
    # feed has seen the deletion and the creation.
    gate = asyncio.Event()
    held: list[str] = []
    read_page = second._list_page

    async def second_page_held(query: str, size: int, token: bytes = b"") -> Any:
        page = await read_page(query, size, token)
        if "StartTime" in query and not held:
            held.append(query)
            assert doomed.id in {automation_id_of(r.execution.workflow_id) for r in page.executions}
            await gate.wait()
        return page

    monkeypatch.setattr(second, "_list_page", second_page_held)
    resync = asyncio.create_task(second.resync())

    async def page_held() -> bool:
        return bool(held)

    await until(page_held)
    await first.delete(doomed.id)
    added = await first.create(core("added", "scale.race.added"))

    async def feed_saw_both() -> bool:
        await second.poll_changes()
        return doomed.id not in second.catalog and added.id in second.catalog

    await until(feed_saw_both)
    assert not resync.done()
    gate.set()
    await resync
    assert doomed.id not in second.catalog
    assert added.id in second.catalog
    assert all(a.id in second.catalog for a in newer)


async def test_events_refused_until_catalog_loaded(
    server: DevServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app serves at once; while its catalog loads (held here by a gate on our own load),
    events get 503 with Retry-After and /api/health says the catalog is loading."""
    gate = asyncio.Event()
    real_load = AutomationStore.load

    async def held_load(self: AutomationStore) -> None:
        await gate.wait()
        await real_load(self)

    monkeypatch.setattr(AutomationStore, "load", held_load)
    app = create_app(settings_for(server, "scale-gate"))
    event = {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": "scale.gate",
        "resource": {"prefect.resource.id": "scale.gate"},
    }
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
            refused = await http.post("/api/events", json=[event])
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "1"
            assert "loading" in refused.json()["detail"]
            listing = await http.post("/api/automations/filter")
            assert listing.status_code == 503
            health = await http.get("/api/health")
            assert health.status_code == 503
            assert health.json()["catalog"]["loaded"] is False

            gate.set()

            async def accepted() -> bool:
                answer = await http.post("/api/events", json=[event])
                return answer.status_code == 204

            await until(accepted)
            health = await http.get("/api/health")
            assert health.json()["catalog"]["loaded"] is True
            assert (await http.post("/api/automations/filter")).status_code == 200


def test_index_follows_one_automation_at_a_time() -> None:
    """The router's index is updated per change (not rebuilt): a new definition replaces the
    names the old one listened to, a pause or a deletion removes it, patterns included."""
    first = make_automation({"posture": "Reactive", "expect": ["a.one"], "threshold": 1})
    index = AutomationIndex([first])
    assert [a.id for a in index.interested(make_event("a.one"))] == [first.id]

    trigger = first.trigger.model_copy(update={"expect": ["a.*"]})
    moved = first.model_copy(update={"trigger": trigger})
    index.put(moved)
    assert [a.id for a in index.interested(make_event("a.two"))] == [first.id]
    assert index.interested(make_event("b.one")) == []
    assert len(index) == 1

    index.put(moved.model_copy(update={"enabled": False}))
    assert index.interested(make_event("a.two")) == [] and len(index) == 0

    index.put(moved)
    index.remove(moved.id)
    assert index.interested(make_event("a.one")) == [] and len(index) == 0


def test_workflow_bytecode_is_cached_for_the_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox imports the workflow module afresh per workflow: its .pyc must exist, even
    with PYTHONDONTWRITEBYTECODE (set on this machine), or each import compiles the source."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    cached = importlib.util.cache_from_source(workflow_module.__file__)
    if os.path.exists(cached):
        os.remove(cached)
    cache_workflow_bytecode()
    assert os.path.getmtime(cached) >= os.path.getmtime(workflow_module.__file__)
