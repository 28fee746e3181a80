"""The Automations page in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.stack import Stack, running_stack
from tests.support import Receiver, event_json

pytestmark = pytest.mark.e2e

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

if not Path(CHROMIUM).exists():
    if os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (scripts/test.sh does)")
    pytest.skip("Debian's chromium is not installed", allow_module_level=True)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack(extra_env={"TEMPORAL_UI_URL": "http://127.0.0.1:8233"}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright runs it headless with a fresh, temporary profile of its own.
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1200, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    opened = context.new_page()
    try:
        yield opened
    finally:
        context.close()


def test_create_list_toggle_copy_fire_and_delete(page: Page, stack: Stack) -> None:
    name = f"Failed runs {uuid.uuid4().hex[:6]}"
    with Receiver() as receiver, httpx.Client(base_url=stack.api_url) as api:
        page.goto("/automations")
        expect(page.get_by_role("heading", name="Automations", exact=True)).to_be_visible()

        # Create through the wizard: Trigger -> Actions -> Details.
        page.get_by_role("link", name="Create automation").click()
        expect(page.get_by_label("Trigger template")).to_have_value("flow-run-state")
        page.get_by_label("Completed").check()
        page.get_by_role("button", name="Next").click()
        page.get_by_label("URL").fill(f"{receiver.url}/page-hook")
        page.get_by_label("Payload (template)").fill("{{ event.event }}")
        page.screenshot(path=str(DOCS / "page-wizard.png"))
        page.get_by_role("button", name="Next").click()
        page.get_by_label("Name").fill(name)
        page.get_by_label("Description").fill("Tell the on-call webhook")
        page.get_by_role("button", name="Create automation").click()

        expect(page.get_by_role("heading", name=name)).to_be_visible()
        automation_id = page.url.rsplit("/", 1)[-1]
        created = api.get(f"/automations/{automation_id}").json()
        assert created["trigger"]["expect"] == [
            "prefect.flow-run.Completed",
            "prefect.flow-run.Crashed",
            "prefect.flow-run.Failed",
        ]
        assert created["actions"][0]["url"] == f"{receiver.url}/page-hook"

        # Listed, with its trigger in words.
        page.get_by_role("link", name="← All automations").click()
        card = page.locator("article", has=page.get_by_role("link", name=name))
        expect(card).to_contain_text("When a flow run enters Completed or Crashed or Failed")
        expect(card).to_contain_text("Fired 0 times")
        page.screenshot(path=str(DOCS / "page-list.png"))

        # Toggle: the API agrees at once.
        card.get_by_role("switch").uncheck()
        expect(card).to_contain_text("Paused")
        assert api.get(f"/automations/{automation_id}").json()["enabled"] is False
        card.get_by_role("switch").check()
        expect(card).to_contain_text("On")
        assert api.get(f"/automations/{automation_id}").json()["enabled"] is True

        # Copy ID puts the id on the clipboard.
        card.get_by_role("button", name=f"More actions for {name}").click()
        page.get_by_role("menuitem", name="Copy ID").click()
        assert page.evaluate("navigator.clipboard.readText()") == automation_id

        # Fire it, then see the firing and the action's result in the detail view.
        run = f"prefect.flow-run.{uuid.uuid4()}"
        assert (
            api.post("/events", json=[event_json("prefect.flow-run.Failed", run)]).status_code
            == 204
        )
        assert [r.body for r in receiver.wait_for(1, "/page-hook")] == [b"prefect.flow-run.Failed"]
        page.get_by_role("link", name=name).click()
        firings = page.locator("#firings")
        expect(firings).to_contain_text("prefect.flow-run.Failed", timeout=10_000)
        expect(firings).to_contain_text("executed")
        expect(firings).to_contain_text(run)
        link = page.locator("#workflow-link")
        expect(link).to_have_attribute(
            "href", f"http://127.0.0.1:8233/namespaces/default/workflows/automation-{automation_id}"
        )
        page.screenshot(path=str(DOCS / "page-detail.png"), full_page=True)

        # Delete, with a confirmation.
        page.get_by_role("link", name="← All automations").click()
        card = page.locator("article", has=page.get_by_role("link", name=name))
        card.get_by_role("button", name=f"More actions for {name}").click()
        page.get_by_role("menuitem", name="Delete").click()
        expect(page.get_by_role("dialog")).to_contain_text(name)
        page.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("link", name=name)).to_have_count(0)
        assert api.get(f"/automations/{automation_id}").status_code == 404


def test_api_errors_appear_next_to_their_field_and_edit_reuses_the_form(
    page: Page, stack: Stack
) -> None:
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("flow-run-stuck")
    page.get_by_label("For (minutes)").fill("0.05")  # 3 s: under the 10 s a Proactive needs
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type").select_option("do-nothing")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("too quick")
    page.get_by_role("button", name="Create automation").click()
    # The API's 422 names trigger.within: the form goes back to the Trigger step and says so there.
    minutes = page.get_by_label("For (minutes)")
    expect(minutes).to_be_visible()
    expect(minutes).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{minutes.get_attribute('id')}-error")).to_contain_text("10 seconds")

    minutes.fill("30")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="too quick")).to_be_visible()
    expect(page.locator(".card").first).to_contain_text("When a flow run stays Running for 30 min")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Trigger (JSON)")).to_contain_text('"within": 1800')
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Save changes").click()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    name.fill("renamed")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="renamed")).to_be_visible()


def test_the_page_asks_for_the_api_key_when_auth_is_on(browser: Browser) -> None:
    with running_stack(api_key="page-key") as secured:
        context = browser.new_context(base_url=secured.base_url)
        page = context.new_page()
        try:
            page.goto("/automations")
            expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
            page.get_by_label("API key").fill("wrong")
            page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
            page.get_by_label("API key").fill("page-key")
            page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("heading", name="No automations yet")).to_be_visible()
        finally:
            context.close()
