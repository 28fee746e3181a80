"""Temporal actions in the Automations page (real headless Chromium against the real stack),
with pickers read from the cluster through GET /api/temporal/catalog."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)

from tests.stack import Stack, running_stack

SCHEDULE = f"nightly-{uuid.uuid4().hex[:6]}"


async def _users_things(address: str) -> None:
    """A run of a user's workflow type on a task queue, and a schedule, on the cluster."""
    client = await Client.connect(address)
    handle = await client.start_workflow(
        "ShipOrder", id=f"ship-{uuid.uuid4()}", task_queue="orders"
    )
    await handle.terminate()
    await client.create_schedule(
        SCHEDULE,
        Schedule(
            action=ScheduleActionStartWorkflow("ShipOrder", id="ship-nightly", task_queue="orders"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        ),
    )


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as running:
        asyncio.run(_users_things(running.temporal_address))
        yield running


def test_the_catalog_lists_the_users_workflow_types_task_queues_and_schedules(
    api: httpx.Client,
) -> None:
    catalog = api.get("/temporal/catalog").json()
    assert catalog["namespace"] == "default"
    assert "ShipOrder" in catalog["workflow_types"]
    assert "AutomationWorkflow" not in catalog["workflow_types"]  # the engine's own
    assert "orders" in catalog["task_queues"]
    assert {"id": SCHEDULE, "paused": False, "workflow_type": "ShipOrder"} in catalog["schedules"]
    assert api.get("/temporal/catalog", params={"namespace": "nope"}).status_code == 404


def test_temporal_actions_are_chosen_with_pickers_and_saved_as_the_api_takes_them(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("temporal-workflow-closed")
    page.get_by_label("When a Temporal workflow is").select_option("timed-out")
    page.get_by_label("Only these workflow types (optional)").fill("ShipOrder")
    page.get_by_role("button", name="Next").click()

    page.get_by_label("Type", exact=True).select_option("temporal-terminate-workflow")
    expect(page.get_by_label("Which workflow")).to_have_value("inferred")
    page.get_by_label("Reason (template, optional)").fill("{{ event.payload.failure.message }}")
    page.get_by_role("button", name="Add action", exact=True).click()
    second = page.locator("fieldset", has=page.get_by_text("Action 2"))
    second.get_by_label("Type", exact=True).select_option("temporal-start-workflow")
    # The pickers offer what the cluster has.
    expect(page.locator("#temporal-workflow-types option[value='ShipOrder']")).to_have_count(1)
    expect(page.locator("#temporal-task-queues option[value='orders']")).to_have_count(1)
    second.get_by_label("Workflow type").fill("ShipOrder")
    second.get_by_label("Task queue").fill("orders")
    second.get_by_label("Arguments (JSON list)").fill('["{{ event.resource.id }}"]')
    page.get_by_role("button", name="Add action", exact=True).click()
    third = page.locator("fieldset", has=page.get_by_text("Action 3"))
    third.get_by_label("Type", exact=True).select_option("temporal-pause-schedule")
    third.get_by_label("Which schedule").select_option("selected")
    expect(page.locator(f"#temporal-schedules option[value='{SCHEDULE}']")).to_have_count(1)
    third.get_by_label("Schedule ID").fill(f"temporal.schedule.{SCHEDULE}")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name", exact=True).fill("Failed orders")
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="Failed orders")).to_be_visible()

    saved = api.get(f"/automations/{page.url.rsplit('/', 1)[-1]}").json()
    assert saved["trigger"]["posture"] == "Reactive"
    assert saved["trigger"]["expect"] == ["temporal.workflow.timed-out"]
    assert saved["trigger"]["match"] == {
        "prefect.resource.id": "temporal.workflow.*",
        "temporal.workflow-type": "ShipOrder",
    }
    terminate, start, pause = saved["actions"]
    assert terminate["type"] == "temporal-terminate-workflow"
    assert terminate["source"] == "inferred" and terminate["workflow_id"] is None
    assert terminate["reason"] == "{{ event.payload.failure.message }}"
    assert (start["workflow_type"], start["task_queue"]) == ("ShipOrder", "orders")
    assert start["args"] == ["{{ event.resource.id }}"]
    assert start["workflow_id"] == "{{ automation.id }}-{{ firing.id }}"
    assert (pause["source"], pause["schedule_id"]) == ("selected", SCHEDULE)
    definition = page.locator("dl.definition")
    expect(definition).to_contain_text("Terminate the Temporal workflow of the event")
    expect(definition).to_contain_text("Start Temporal workflow ShipOrder on orders")
    expect(definition).to_contain_text(f"Pause Temporal schedule {SCHEDULE}")

    expect(definition).to_contain_text("When a Temporal workflow is timed-out (of type ShipOrder)")
    # Edit reopens the same template with the same choices.
    page.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Trigger template")).to_have_value("temporal-workflow-closed")
    expect(page.get_by_label("When a Temporal workflow is")).to_have_value("timed-out")


def test_temporal_trigger_templates_build_the_recipes_triggers(
    page: Page, api: httpx.Client
) -> None:
    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("temporal-schedule-failing")
    page.get_by_label("Failed runs").fill("3")
    page.get_by_label("Within (minutes)").fill("10")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type", exact=True).select_option("temporal-pause-schedule")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name", exact=True).fill("Failing schedules")
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="Failing schedules")).to_be_visible()
    saved = api.get(f"/automations/{page.url.rsplit('/', 1)[-1]}").json()
    assert saved["trigger"]["expect"] == ["temporal.workflow.failed"]
    assert saved["trigger"]["match_related"] == {
        "prefect.resource.role": "schedule",
        "prefect.resource.id": "temporal.schedule.*",
    }
    assert saved["trigger"]["for_each"] == ["related:schedule:prefect.resource.id"]
    assert (saved["trigger"]["threshold"], saved["trigger"]["within"]) == (3, 600)
    assert saved["actions"] == [
        {"type": "temporal-pause-schedule", "source": "inferred", "schedule_id": None,
         "namespace": None, "note": "by automation {{ automation.name }}"}
    ]  # fmt: skip
    expect(page.locator("dl.definition")).to_contain_text(
        "When a Temporal schedule's runs fail 3 times within 10 min"
    )

    page.goto("/automations#/new")
    page.get_by_label("Trigger template").select_option("temporal-workflow-stuck")
    page.get_by_label("Still running after (minutes)").fill("45")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Type", exact=True).select_option("temporal-cancel-workflow")
    page.get_by_role("button", name="Next").click()
    page.get_by_label("Name", exact=True).fill("Stuck workflows")
    page.get_by_role("button", name="Create automation").click()
    expect(page.get_by_role("heading", name="Stuck workflows")).to_be_visible()
    saved = api.get(f"/automations/{page.url.rsplit('/', 1)[-1]}").json()
    assert saved["trigger"]["posture"] == "Proactive"
    assert saved["trigger"]["after"] == ["temporal.workflow.started"]
    assert saved["trigger"]["within"] == 2700
    expect(page.locator("dl.definition")).to_contain_text(
        "When a Temporal workflow runs longer than 45 min"
    )
