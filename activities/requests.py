"""What the workflow hands an action activity, and the activity names it calls."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel

from domain.automations import Action, Automation
from domain.evaluation import Firing


class ActionRequest(BaseModel):
    automation: Automation
    action: Action
    action_index: int
    firing: Firing
    firing_id: UUID

    @property
    def idempotency_key(self) -> str:
        """The same for every retry of one action of one firing, so the target acts once."""
        return f"{self.automation.id}:{self.firing_id}:{self.action_index}"


# Activity names by action type; `do-nothing` needs no activity.
ACTIVITY_FOR_ACTION = {
    "call-webhook": "call_webhook",
    "send-notification": "send_notification",
    "pause-automation": "set_automation_enabled",
    "resume-automation": "set_automation_enabled",
}
EMIT_EVENTS = "emit_events"
