"""The page's event feed, wizard Test and Backtest, in a real headless Chromium against the real
stack (the fixtures of tests/page/conftest.py)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from playwright.sync_api import Page, expect

from tests.support import event_json, eventually, send


def stored(api: httpx.Client, name: str, count: int) -> None:  # noqa: F811
    def enough() -> bool:
        body = {"filter": {"event": {"name": [name]}}}
        return api.post("/events/filter", json=body).json()["total"] >= count

    eventually(enough, what=f"{count} {name} events stored")


def test_feed_filters_updates_live_and_seeds_a_new_automation(
    page: Page,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    kind = f"page.feed.{uuid.uuid4().hex[:8]}"
    run = f"prefect.flow-run.{uuid.uuid4()}"
    send(api, event_json(f"{kind}.started", run), event_json("unrelated.event", run))
    stored(api, f"{kind}.started", 1)

    page.goto("/automations#/events")
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    page.get_by_label("Event name starts with").fill(kind)
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("#events tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"{kind}.started")
    expect(page.locator("#feed-status")).to_contain_text("1 events match")

    # Live: an event posted now appears without reloading; one that does not match does not.
    send(api, event_json(f"{kind}.finished", run), event_json("unrelated.event", run))
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text(f"{kind}.finished")

    # Open as JSON, then create an automation from it: expect and match pre-filled.
    rows.first.get_by_text("Open as JSON").click()
    expect(rows.first.locator("pre")).to_contain_text(f'"event": "{kind}.finished"')
    rows.first.get_by_role("button", name="Create automation from this event").click()
    expect(page.get_by_role("heading", name="New automation")).to_be_visible()
    expect(page.get_by_label("Trigger template")).to_have_value("custom")
    trigger = page.locator("textarea").first.input_value()
    assert f'"{kind}.finished"' in trigger and f'"prefect.resource.id": "{run}"' in trigger


def test_wizard_test_step_and_backtest_show_what_would_fire(
    page: Page,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    kind = f"page.test.{uuid.uuid4().hex[:8]}"
    runs = [f"prefect.flow-run.{uuid.uuid4()}" for _ in range(2)]
    earlier = datetime.now(UTC) - timedelta(minutes=30)
    events = [
        event_json(
            f"{kind}.failed", runs[i % 2], occurred=(earlier + timedelta(seconds=i)).isoformat()
        )
        for i in range(3)
    ]
    send(api, *events)
    stored(api, f"{kind}.failed", 3)

    # The wizard: a custom trigger, a webhook with a template, then Test on stored events.
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("custom")
    trigger = json.dumps(
        {"posture": "Reactive", "expect": [f"{kind}.failed"], "threshold": 2, "within": 3600,
         "for_each": ["prefect.resource.id"]}
    )  # fmt: skip
    page.locator("textarea").first.fill(trigger)
    page.get_by_role("button", name="Next").click()
    page.get_by_label("URL").fill("https://hooks.example.com/on-call")
    page.get_by_label("Payload (template)").fill("run {{ event.resource.id }}")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill(f"tested {kind}")
    page.locator("#wizard-test-run").click()
    output = page.locator("#wizard-test-output")
    expect(output).to_contain_text("It would have fired 1 time")
    expect(output).to_contain_text("not sent")
    expect(output).to_contain_text(f"run {runs[0]}")  # the rendered body
    expect(output).to_contain_text("Nothing was sent")

    # Saved, its detail view has a Backtest giving the same answer.
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name=f"tested {kind}")).to_be_visible()
    page.get_by_role("button", name="Backtest").click()
    backtest = page.locator("#backtest-output")
    expect(backtest).to_contain_text("It would have fired 1 time")
    expect(backtest).to_contain_text("https://hooks.example.com/on-call")
