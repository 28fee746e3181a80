"""What the workflow hands an action activity, and the activity names it calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from temporal_automations.domain.automations import Action, Automation
from temporal_automations.domain.evaluation import Firing


class AutomationSummary(BaseModel):
    """The automation as one action sees it: who it is and which version (`updated`), not
    its whole definition — every action's input would otherwise repeat every other action."""

    model_config = ConfigDict(extra="ignore")

    id: UUID
    name: str
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    updated: datetime

    @classmethod
    def of(cls, automation: Automation) -> AutomationSummary:
        return cls(
            id=automation.id,
            name=automation.name,
            description=automation.description,
            tags=automation.tags,
            updated=automation.updated,
        )

    def without_secrets(self) -> dict[str, Any]:
        """The templates' `automation` (a summary holds no secret)."""
        return self.model_dump(mode="json")


class ActionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    automation: AutomationSummary
    action: Action
    action_index: int
    firing: Firing
    firing_id: UUID

    @property
    def idempotency_key(self) -> str:
        """The same for every retry of one action of one firing, so the target acts once."""
        return f"{self.automation.id}:{self.firing_id}:{self.action_index}"


class WebhookBatchItem(BaseModel):
    """One firing of a webhook batch: what differs between its items."""

    model_config = ConfigDict(extra="ignore")

    firing: Firing
    firing_id: UUID
    action_index: int = 0


class WebhookBatch(BaseModel):
    """Firings of one automation whose only action is the same `call-webhook`: the summary
    and the action once, the firings each (workflows/automation.py batches them)."""

    model_config = ConfigDict(extra="ignore")

    automation: AutomationSummary
    action: Action
    items: list[WebhookBatchItem]

    def request(self, item: WebhookBatchItem) -> ActionRequest:
        """The item as `call_webhook` takes it: same rendering, same Idempotency-Key."""
        return ActionRequest(
            automation=self.automation,
            action=self.action,
            action_index=item.action_index,
            firing=item.firing,
            firing_id=item.firing_id,
        )


class WebhookOutcome(BaseModel):
    """What became of one item of a WebhookBatch: `executed` with the call's detail, or
    `failed` with the reason, whether retrying can change it (`permanent`) and its kind (an
    ActionErrorType value, or the transient error's class name)."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["executed", "failed"]
    detail: str
    permanent: bool = False
    error_type: str | None = None


# Activity names by action type; `do-nothing` needs no activity.
ACTIVITY_FOR_ACTION = {
    "call-webhook": "call_webhook",
    "send-notification": "send_notification",
    "pause-automation": "set_automation_enabled",
    "resume-automation": "set_automation_enabled",
    "run-deployment": "run_deployment",
    "pause-deployment": "set_deployment_paused",
    "resume-deployment": "set_deployment_paused",
    "pause-work-queue": "set_work_queue_paused",
    "resume-work-queue": "set_work_queue_paused",
    "pause-work-pool": "set_work_pool_paused",
    "resume-work-pool": "set_work_pool_paused",
    "cancel-flow-run": "set_flow_run_state",
    "suspend-flow-run": "set_flow_run_state",
    "change-flow-run-state": "set_flow_run_state",
    "resume-flow-run": "resume_flow_run",
    "temporal-cancel-workflow": "cancel_temporal_workflow",
    "temporal-terminate-workflow": "terminate_temporal_workflow",
    "temporal-signal-workflow": "signal_temporal_workflow",
    "temporal-start-workflow": "start_temporal_workflow",
    "temporal-reset-workflow": "reset_temporal_workflow",
    "temporal-pause-schedule": "patch_temporal_schedule",
    "temporal-unpause-schedule": "patch_temporal_schedule",
    "temporal-trigger-schedule": "patch_temporal_schedule",
}
EMIT_EVENTS = "emit_events"
CALL_WEBHOOKS = "call_webhooks"  # a WebhookBatch
DELIVER_PARCEL = "deliver_parcel"  # an inbox round: a parcel (temporal_automations.parcels)
