"""The Automations page in a real headless Chromium (Debian's), driven by Playwright, against
the real stack (Temporal dev server, worker, API) of tests/stack.py."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Locator, Page, Request, expect

from tests.page.support import UI_URL
from tests.stack import Stack, running_stack
from tests.support import Receiver, event_json

# Screenshots for the README: refreshed into docs/ with UPDATE_SCREENSHOTS=1, else kept aside
# so that a test run leaves the work tree as it found it.
DOCS = (
    Path(__file__).resolve().parents[2] / "docs"
    if os.environ.get("UPDATE_SCREENSHOTS")
    else Path(tempfile.mkdtemp(prefix="page-screenshots-"))
)


def card_of(page: Page, name: str) -> Locator:
    return page.get_by_role("article", name=name)


def test_create_list_toggle_copy_fire_and_delete(page: Page, api: httpx.Client) -> None:
    name = f"Failed runs {uuid.uuid4().hex[:6]}"
    with Receiver() as receiver:
        page.goto("/")
        assert page.url.endswith("/automations")  # / redirects to the page
        expect(page.get_by_role("heading", name="Automations", exact=True)).to_be_visible()

        # Create through the wizard: Trigger -> Actions -> Details.
        page.get_by_role("link", name="Create automation").click()
        expect(page.get_by_label("Trigger template")).to_have_value("flow-run-state")
        page.get_by_label("Completed").check()
        page.get_by_role("button", name="Next").click()
        expect(page.get_by_label("Type")).to_have_value("call-webhook")
        page.get_by_label("URL").fill(f"{receiver.url}/page-hook")
        page.get_by_label("Payload (template)").fill("{{ event.event }}")
        page.get_by_role("button", name="Next").click()
        page.get_by_label("Name").fill(name)
        page.get_by_label("Description").fill("Tell the on-call webhook")
        page.get_by_role("button", name="Create automation").click()

        # It opens the new automation's detail view.
        expect(page.get_by_role("heading", name=name)).to_be_visible()
        automation_id = page.url.rsplit("/", 1)[-1]
        created = api.get(f"/automations/{automation_id}").json()
        assert created["trigger"]["expect"] == [
            "prefect.flow-run.Completed",
            "prefect.flow-run.Crashed",
            "prefect.flow-run.Failed",
        ]
        assert created["trigger"]["for_each"] == ["prefect.resource.id"]
        assert created["actions"] == [
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/page-hook",
                "block_document_id": None,
                "method": "POST",
                "headers": {},
                "payload": "{{ event.event }}",
            }
        ]
        expect(page.locator("#no-firings")).to_be_visible()

        # Listed, with its trigger and actions in words and its counters.
        page.get_by_role("link", name="← All automations").click()
        card = card_of(page, name)
        expect(card).to_contain_text("Tell the on-call webhook")
        expect(card).to_contain_text("When a flow run enters Completed or Crashed or Failed")
        expect(card).to_contain_text("Call webhook POST 127.0.0.1")
        expect(card).to_contain_text("Last fired: never · Fired 0 times")

        # Toggle: the API agrees at once.
        switch = card.get_by_role("switch")
        switch.uncheck()
        expect(card).to_contain_text("Paused")
        assert api.get(f"/automations/{automation_id}").json()["enabled"] is False
        switch.check()
        expect(card).to_contain_text("On")
        assert api.get(f"/automations/{automation_id}").json()["enabled"] is True

        # Copy ID puts the id on the clipboard.
        card.get_by_role("button", name=f"More actions for {name}").click()
        page.get_by_role("menuitem", name="Copy ID").click()
        expect(page.get_by_role("status")).to_contain_text("ID copied")
        assert page.evaluate("navigator.clipboard.readText()") == automation_id

        # With its detail view open, fire it: the firing appears there with the action's result.
        card.get_by_role("link", name=name).click()
        expect(page.locator("#no-firings")).to_be_visible()
        run = f"prefect.flow-run.{uuid.uuid4()}"
        response = api.post("/events", json=[event_json("prefect.flow-run.Failed", run)])
        assert response.status_code == 204
        assert [r.body for r in receiver.wait_for(1, "/page-hook")] == [b"prefect.flow-run.Failed"]
        firings = page.locator("#firings")
        expect(firings).to_contain_text("prefect.flow-run.Failed", timeout=10_000)
        expect(firings.locator("td.key")).to_have_text(run)  # the for_each key
        expect(firings.locator(".pill.executed")).to_have_text("executed", timeout=10_000)
        expect(firings).to_contain_text("answered 200")
        expect(page.locator("#counters")).to_contain_text("Fired 1 time ·")
        link = page.get_by_role("link", name="Open in Temporal Web UI")
        expect(link).to_have_attribute(
            "href", f"{UI_URL}/namespaces/default/workflows/automation-{automation_id}"
        )
        page.screenshot(path=str(DOCS / "page-detail.png"), full_page=True)

        # The list counts it too.
        page.get_by_role("link", name="← All automations").click()
        card = card_of(page, name)
        expect(card).to_contain_text("Last fired: just now · Fired 1 time")

        # Delete asks first; Cancel (or Escape) keeps it, Delete removes it.
        menu = card.get_by_role("button", name=f"More actions for {name}")
        menu.click()
        page.get_by_role("menuitem", name="Delete").click()
        dialog = page.get_by_role("dialog")
        expect(dialog).to_contain_text(name)
        dialog.get_by_role("button", name="Cancel").click()
        expect(dialog).to_be_hidden()
        menu.click()
        page.get_by_role("menuitem", name="Delete").click()
        expect(dialog).to_be_visible()
        page.keyboard.press("Escape")
        expect(dialog).to_be_hidden()
        assert api.get(f"/automations/{automation_id}").status_code == 200
        menu.click()
        page.get_by_role("menuitem", name="Delete").click()
        dialog.get_by_role("button", name="Delete").click()
        expect(page.get_by_role("link", name=name)).to_have_count(0)
        assert api.get(f"/automations/{automation_id}").status_code == 404


def test_prefect_actions_with_inferred_targets_and_actions_on_resolve(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("work-queue")
    page.get_by_label("And stays so for (minutes)").fill("5")
    page.get_by_role("button", name="Next").click()

    # The work queue is inferred from the event; it can also be chosen by its ID.
    page.get_by_label("Type").select_option("pause-work-queue")
    expect(page.get_by_label("Which work queue")).to_have_value("inferred")
    expect(page.get_by_label("Work queue ID")).to_have_count(0)
    page.get_by_role("button", name="Add action for when it resolves").click()
    resolve = page.locator("fieldset", has=page.get_by_text("On resolve 1"))
    resolve.get_by_label("Type").select_option("resume-work-queue")
    page.get_by_role("button", name="Add action", exact=True).click()
    second = page.locator("fieldset", has=page.get_by_text("Action 2"))
    second.get_by_label("Type").select_option("run-deployment")
    second.get_by_label("Which deployment").select_option("selected")
    deployment = str(uuid.uuid4())
    second.get_by_label("Deployment ID").fill(f"prefect.deployment.{deployment}")
    second.get_by_label("Parameters (JSON, optional)").fill(
        '{"queue": "{{ event.resource[\'prefect.resource.id\'] }}"}'
    )
    page.screenshot(path=str(DOCS / "page-wizard.png"), full_page=True)
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("Unhealthy queues")
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="Unhealthy queues")).to_be_visible()

    saved = api.get(f"/automations/{page.url.rsplit('/', 1)[-1]}").json()
    assert saved["trigger"]["posture"] == "Proactive"
    assert saved["trigger"]["after"] == ["prefect.work-queue.not-ready"]
    assert saved["trigger"]["within"] == 300
    assert saved["actions"][0] == {
        "type": "pause-work-queue",
        "source": "inferred",
        "work_queue_id": None,
    }
    assert saved["actions"][1]["deployment_id"] == deployment
    assert saved["actions"][1]["source"] == "selected"
    assert saved["actions"][1]["parameters"] == {
        "queue": "{{ event.resource['prefect.resource.id'] }}"
    }
    assert saved["actions_on_resolve"] == [
        {"type": "resume-work-queue", "source": "inferred", "work_queue_id": None}
    ]
    definition = page.locator("dl.definition")
    expect(definition).to_contain_text("When a work queue stays not-ready for 5 min")
    expect(definition).to_contain_text("Pause the work queue of the event")
    expect(definition).to_contain_text(f"Run deployment {deployment[:8]}")
    expect(definition).to_contain_text("Resume the work queue of the event")

    # Edit reopens the same template with the same choices.
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Trigger template")).to_have_value("work-queue")
    expect(page.get_by_label("And stays so for (minutes)")).to_have_value("5")


def test_a_compound_of_two_template_triggers_is_built_in_the_wizard(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("compound")
    page.get_by_label("Fires when").select_option("any")
    page.get_by_label("Within (minutes)").fill("5")
    second = page.locator("fieldset.child-trigger", has=page.get_by_text("Trigger 2", exact=True))
    second.get_by_label("Trigger 2 template").select_option("deployment")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type").select_option("do-nothing")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("Failures or a sick deployment")
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="Failures or a sick deployment")).to_be_visible()

    saved = api.get(f"/automations/{page.url.rsplit('/', 1)[-1]}").json()["trigger"]
    assert (saved["type"], saved["require"], saved["within"]) == ("compound", "any", 300)
    assert saved["triggers"][0]["expect"] == ["prefect.flow-run.Crashed", "prefect.flow-run.Failed"]
    assert saved["triggers"][1]["expect"] == ["prefect.deployment.not-ready"]
    expect(page.locator("dl.definition")).to_contain_text("Any of within 5 min")

    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Trigger template")).to_have_value("compound")
    expect(page.get_by_label("Trigger 2 template")).to_have_value("deployment")


def test_errors_appear_next_to_their_field_and_edit_reuses_the_form(page: Page) -> None:
    page.goto("/automations#/new")

    # The form's own check: a state change template needs a state.
    for state in ("Crashed", "Failed"):
        page.get_by_label(state).uncheck()
    page.get_by_role("button", name="Next").click()
    expect(page.locator("#states-error")).to_contain_text("choose at least one state")
    page.get_by_label("Trigger template").select_option("flow-run-stuck")
    page.get_by_label("For (minutes)").fill("0.05")  # 3 s: under the 10 s a Proactive needs
    page.get_by_role("button", name="Next").click()

    # JSON that does not parse is caught next to its field.
    page.get_by_label("Headers (JSON)").fill("{not json")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("too quick")
    page.get_by_role("button", name="Create automation").click()
    headers = page.get_by_label("Headers (JSON)")
    expect(headers).to_be_visible()
    expect(headers).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{headers.get_attribute('id')}-error")).to_contain_text("not valid JSON")

    # The API's 422s name trigger.within and the action's missing deployment_id: the form
    # goes back to the first step with an error and shows each next to its field.
    page.get_by_label("Type").select_option("pause-deployment")
    page.get_by_label("Which deployment").select_option("selected")
    page.get_by_role("button", name="3. Details").click()
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Create automation").click()
    minutes = page.get_by_label("For (minutes)")
    expect(minutes).to_be_visible()
    expect(minutes).to_be_focused()
    expect(minutes).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{minutes.get_attribute('id')}-error")).to_contain_text("10 seconds")
    page.get_by_role("button", name="2. Actions").click()
    target = page.get_by_label("Deployment ID")
    expect(target).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{target.get_attribute('id')}-error")).to_contain_text(
        "deployment_id is required"
    )

    page.get_by_role("button", name="3. Details").click()
    expect(page.get_by_label("Name")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("Name").fill("too quick")

    page.get_by_role("button", name="1. Trigger").click()
    minutes.fill("30")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type").select_option("cancel-flow-run")
    page.get_by_role("button", name="Next").click()
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="too quick")).to_be_visible()
    expect(page.locator(".sentence")).to_contain_text(
        "When a flow run stays Running for 30 min → Cancel the flow run"
    )

    # Edit: the template is recognised; an empty name is refused next to the Name field.
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Trigger template")).to_have_value("flow-run-stuck")
    expect(page.get_by_label("For (minutes)")).to_have_value("30")
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_label("Type")).to_have_value("cancel-flow-run")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name").fill("")
    page.get_by_role("button", name="Save changes").click()
    name = page.get_by_label("Name")
    expect(name).to_have_attribute("aria-invalid", "true")
    expect(page.locator(f"#{name.get_attribute('id')}-error")).to_contain_text("is required")
    name.fill("Stuck runs")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("heading", name="Stuck runs")).to_be_visible()


def test_keyboard_focus_is_visible_and_in_order(page: Page) -> None:
    page.goto("/automations")
    expect(page.get_by_role("heading", name="Automations", exact=True)).to_be_visible()
    # The view takes focus when it opens, so Tab goes to its first control, "+"; Shift+Tab
    # goes back to the header.
    page.keyboard.press("Tab")
    create = page.get_by_role("link", name="Create automation")
    expect(create).to_be_focused()
    assert create.evaluate("e => getComputedStyle(e).outlineStyle") == "solid"
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Automations", exact=True)).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Trigger template")).to_be_focused()
    # Every control of the form has a label.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('form input, form select, form textarea')]
              .filter((e) => !e.labels?.length && !e.getAttribute('aria-label'))
              .map((e) => e.outerHTML)"""
    )
    assert unlabelled == []


def test_list_screenshot(page: Page, api: httpx.Client) -> None:
    """A list with a few typical automations, for docs/page-list.png."""
    examples = [
        {
            "name": "Cancel runs stuck in Running",
            "description": "No flow run should run for more than 30 minutes",
            "trigger": {
                "posture": "Proactive",
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
                "after": ["prefect.flow-run.Running"],
                "expect": ["prefect.flow-run.Completed", "prefect.flow-run.Failed"],
                "for_each": ["prefect.resource.id"],
                "within": 1800,
            },
            "actions": [{"type": "cancel-flow-run"}],
        },
        {
            "name": "Deployment went unhealthy",
            "trigger": {
                "posture": "Reactive",
                "match": {"prefect.resource.id": "prefect.deployment.*"},
                "expect": ["prefect.deployment.not-ready"],
                "for_each": ["prefect.resource.id"],
            },
            "actions": [{"type": "send-notification", "url": "json://127.0.0.1:9/notify"}],
            "enabled": False,
        },
    ]
    with Receiver() as receiver:
        examples.append(
            {
                "name": "Tell on-call about failed runs",
                "description": "Posts each failed or crashed run to the on-call webhook",
                "trigger": {
                    "posture": "Reactive",
                    "match": {"prefect.resource.id": "prefect.flow-run.*"},
                    "expect": ["prefect.flow-run.Failed", "prefect.flow-run.Crashed"],
                    "for_each": ["prefect.resource.id"],
                },
                "actions": [{"type": "call-webhook", "url": f"{receiver.url}/on-call"}],
            }
        )
        ids = [api.post("/automations/", json=e).json()["id"] for e in examples]
        run = f"prefect.flow-run.{uuid.uuid4()}"
        assert api.post("/events", json=[event_json("prefect.flow-run.Crashed", run)]).is_success
        receiver.wait_for(1, "/on-call")
        deadline = time.monotonic() + 10
        while api.get(f"/automations/{ids[-1]}/status").json()["stats"]["firings"] < 1:
            assert time.monotonic() < deadline, "the firing was not recorded"
            time.sleep(0.1)
    page.goto("/automations")
    expect(card_of(page, "Tell on-call about failed runs")).to_contain_text("Fired 1 time")
    for example in examples:
        expect(card_of(page, example["name"])).to_be_visible()
    expect(card_of(page, "Cancel runs stuck in Running")).to_contain_text(
        "When a flow run stays Running for 30 min → Cancel the flow run"
    )
    unhealthy = card_of(page, "Deployment went unhealthy")
    expect(unhealthy).to_contain_text("Paused")
    expect(unhealthy).to_contain_text("Send a notification to json://********")  # masked
    page.screenshot(path=str(DOCS / "page-list.png"), full_page=True)


def test_empty_state_and_api_key_prompt_when_auth_is_on(browser: Browser) -> None:
    with running_stack(api_key="page-key") as secured:
        config = httpx.get(f"{secured.api_url}/ui-config").json()
        assert config["auth_required"] is True
        assert "page-key" not in str(config)

        context = browser.new_context(base_url=secured.base_url)
        page = context.new_page()
        sent: list[str | None] = []

        def remember(request: Request) -> None:
            if "/api/automations" in request.url:
                sent.append(request.headers.get("authorization"))

        page.on("request", remember)
        try:
            page.goto("/automations")
            expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
            expect(page.get_by_label("API key", exact=True)).to_be_focused()
            page.get_by_label("API key", exact=True).fill("wrong")
            page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("alert")).to_contain_text("That key was not accepted")
            page.get_by_label("API key", exact=True).fill("page-key")
            page.get_by_role("button", name="Continue").click()
            expect(page.get_by_role("heading", name="No automations yet")).to_be_visible()
            expect(page.get_by_text("Create your first one")).to_be_visible()
            assert sent[-1] == "Bearer page-key"

            # Kept for the session: a reload does not ask again.
            page.reload()
            expect(page.get_by_role("heading", name="No automations yet")).to_be_visible()
            key = page.evaluate("sessionStorage.getItem('automations.apiKey')")
            assert key == "page-key"
        finally:
            context.close()


def test_assets_and_ui_config(stack: Stack) -> None:
    with httpx.Client(base_url=stack.base_url) as client:
        page = client.get("/automations")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        script = client.get("/automations/static/js/main.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["cache-control"] == "no-cache"
        for outside in ("/automations/static/../router.py", "/automations/static/%2e%2e/router.py"):
            assert client.get(outside).status_code == 404
        assert client.get("/automations/static/nothing.js").status_code == 404
        config = client.get("/api/ui-config").json()
        assert config == {"temporal_ui_url": UI_URL, "namespace": "default", "auth_required": False}
