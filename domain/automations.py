"""Automations in Prefect's JSON: a trigger and the actions it runs. Validated at the edge."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event, Labels, utcnow
from temporal_automations.domain.matching import (
    ResourceSpec,
    name_matches,
    related_matches,
    resource_matches,
)

PROACTIVE_MINIMUM_WITHIN = 10.0


class Strict(BaseModel):
    """Unknown fields are an error (422 at the API), as in Prefect."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- triggers


class Posture(StrEnum):
    Reactive = "Reactive"
    Proactive = "Proactive"


class EventTrigger(Strict):
    """Fires when `threshold` expected events arrive within `within` seconds (Reactive), or
    when fewer than `threshold` arrive (Proactive), per `for_each` key."""

    type: Literal["event"] = "event"
    id: UUID = Field(default_factory=uuid4)
    match: ResourceSpec = Field(default_factory=dict)
    match_related: ResourceSpec | list[ResourceSpec] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    for_each: list[str] = Field(default_factory=list)
    posture: Posture
    threshold: int = Field(default=1, ge=0)
    within: float = Field(default=0.0, ge=0, description="seconds", validate_default=True)

    @field_validator("after", "expect", "for_each", mode="before")
    @classmethod
    def _sorted_unique(cls, value: Any) -> Any:
        # Prefect sends these as sets; keep one canonical, ordered form.
        return sorted(set(value)) if isinstance(value, list | set | tuple) else value

    @field_validator("within", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return value.total_seconds() if isinstance(value, timedelta) else value

    @field_validator("within")
    @classmethod
    def _proactive_within(cls, within: float, info: ValidationInfo) -> float:
        # A field validator (posture is declared, so validated, before within): the 422
        # then points at trigger.within.
        if info.data.get("posture") == Posture.Proactive:
            if within == 0:
                return PROACTIVE_MINIMUM_WITHIN
            if within < PROACTIVE_MINIMUM_WITHIN:
                raise ValueError(
                    f"within must be at least {PROACTIVE_MINIMUM_WITHIN:g} seconds "
                    "for a Proactive trigger"
                )
        return within

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.within)

    def starts_after(self, name: str) -> bool:
        return bool(self.after) and name_matches(self.after, name)

    def expects(self, name: str) -> bool:
        return not self.expect or name_matches(self.expect, name)

    def covers(self, event: Event) -> bool:
        """Is this event one the trigger looks at (by name, resource and related resources)?"""
        names = [*self.after, *self.expect]
        if names and not name_matches(names, event.event):
            return False
        return resource_matches(self.match, event.resource) and related_matches(
            self.match_related, event.related
        )

    def bucket_labels(self, event: Event) -> Labels:
        """The `for_each` labels' values in this event ("" when missing), sorted by label."""
        return {label: _label_value(event, label) for label in self.for_each}


def _label_value(event: Event, label: str) -> str:
    if label.startswith("related:"):
        role, _, name = label[len("related:") :].partition(":")
        for labels in event.related_by_role(role):
            return labels.get(name, "")
        return ""
    return event.resource.get(label, "")


# --------------------------------------------------------------------------- actions


class Source(StrEnum):
    selected = "selected"
    inferred = "inferred"


class DoNothing(Strict):
    type: Literal["do-nothing"] = "do-nothing"


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class CallWebhook(Strict):
    """POST (or `method`) the rendered `payload` template to `url`, or to the URL of a
    Prefect Webhook block (`block_document_id`, with its method and headers)."""

    type: Literal["call-webhook"] = "call-webhook"
    url: str | None = Field(None, pattern=r"^https?://", max_length=2048)
    block_document_id: UUID | None = None
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    payload: str = ""

    @model_validator(mode="after")
    def _one_target(self) -> CallWebhook:
        if (self.url is None) == (self.block_document_id is None):
            raise ValueError("give either url or block_document_id")
        return self


DEFAULT_SUBJECT = "Automation {{ automation.name }} was {{ firing.state }}"
DEFAULT_BODY = (
    "Automation {{ automation.name }} was {{ firing.state }} at {{ firing.occurred }}"
    "{% if event %} by {{ event.event }} on {{ event.resource['prefect.resource.id'] }}"
    "{% endif %}."
)


class SendNotification(Strict):
    """Send `subject` and `body` (templates) to one or more apprise URLs, or through a
    Prefect notification block (`block_document_id`)."""

    type: Literal["send-notification"] = "send-notification"
    url: str | list[str] | None = None
    block_document_id: UUID | None = None
    subject: str = DEFAULT_SUBJECT
    body: str = DEFAULT_BODY

    @property
    def urls(self) -> list[str]:
        if self.url is None:
            return []
        return [self.url] if isinstance(self.url, str) else list(self.url)

    @field_validator("url")
    @classmethod
    def _some_url(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and not value:
            raise ValueError("at least one notification URL is needed")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> SendNotification:
        if (self.url is None) == (self.block_document_id is None):
            raise ValueError("give either url or block_document_id")
        return self


class TargetedAction(Strict):
    """An action on one resource: `selected` names it in `<kind>_id`; `inferred` takes the
    first `prefect.<kind>.<id>` of the triggering event (or of a proactive firing's key)."""

    target_kind: ClassVar[str]
    source: Source = Source.selected

    @property
    def selected_id(self) -> UUID | None:
        return getattr(self, f"{self.target_kind.replace('-', '_')}_id")

    @model_validator(mode="after")
    def _target(self) -> TargetedAction:
        name = f"{self.target_kind.replace('-', '_')}_id"
        if self.source == Source.selected and self.selected_id is None:
            raise ValueError(f"{name} is required when source is 'selected'")
        if self.source == Source.inferred and self.selected_id is not None:
            raise ValueError(f"{name} is not allowed when source is 'inferred'")
        return self


class AutomationAction(TargetedAction):
    target_kind: ClassVar[str] = "automation"
    automation_id: UUID | None = None


class PauseAutomation(AutomationAction):
    type: Literal["pause-automation"] = "pause-automation"


class ResumeAutomation(AutomationAction):
    type: Literal["resume-automation"] = "resume-automation"


# ----------------------------------------------------------------- Prefect's resources


class DeploymentAction(TargetedAction):
    target_kind: ClassVar[str] = "deployment"
    deployment_id: UUID | None = None


class RunDeployment(DeploymentAction):
    """Create a flow run of the deployment; string parameter values are templates."""

    type: Literal["run-deployment"] = "run-deployment"
    parameters: dict[str, Any] | None = None
    job_variables: dict[str, Any] | None = None
    schedule_after: float = Field(default=0.0, ge=0, description="seconds")

    @field_validator("schedule_after", mode="before")
    @classmethod
    def _seconds(cls, value: Any) -> Any:
        return value.total_seconds() if isinstance(value, timedelta) else value


class PauseDeployment(DeploymentAction):
    type: Literal["pause-deployment"] = "pause-deployment"


class ResumeDeployment(DeploymentAction):
    type: Literal["resume-deployment"] = "resume-deployment"


class WorkQueueAction(TargetedAction):
    target_kind: ClassVar[str] = "work-queue"
    work_queue_id: UUID | None = None


class PauseWorkQueue(WorkQueueAction):
    type: Literal["pause-work-queue"] = "pause-work-queue"


class ResumeWorkQueue(WorkQueueAction):
    type: Literal["resume-work-queue"] = "resume-work-queue"


class WorkPoolAction(TargetedAction):
    target_kind: ClassVar[str] = "work-pool"
    work_pool_id: UUID | None = None


class PauseWorkPool(WorkPoolAction):
    type: Literal["pause-work-pool"] = "pause-work-pool"


class ResumeWorkPool(WorkPoolAction):
    type: Literal["resume-work-pool"] = "resume-work-pool"


class FlowRunAction(Strict):
    """Acts on the flow run of the firing: always inferred, as in Prefect."""

    target_kind: ClassVar[str] = "flow-run"


class CancelFlowRun(FlowRunAction):
    type: Literal["cancel-flow-run"] = "cancel-flow-run"


class SuspendFlowRun(FlowRunAction):
    type: Literal["suspend-flow-run"] = "suspend-flow-run"


class ResumeFlowRun(FlowRunAction):
    type: Literal["resume-flow-run"] = "resume-flow-run"


StateType = Literal[
    "SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED",
    "CANCELLED", "CRASHED", "PAUSED", "CANCELLING",
]  # fmt: skip


class ChangeFlowRunState(FlowRunAction):
    type: Literal["change-flow-run-state"] = "change-flow-run-state"
    state: StateType
    name: str | None = None
    message: str | None = None
    force: bool = False


PREFECT_ACTIONS = (
    RunDeployment, PauseDeployment, ResumeDeployment, PauseWorkQueue, ResumeWorkQueue,
    PauseWorkPool, ResumeWorkPool, CancelFlowRun, SuspendFlowRun, ResumeFlowRun,
    ChangeFlowRunState,
)  # fmt: skip


Action = Annotated[
    DoNothing
    | CallWebhook
    | SendNotification
    | PauseAutomation
    | ResumeAutomation
    | RunDeployment
    | PauseDeployment
    | ResumeDeployment
    | PauseWorkQueue
    | ResumeWorkQueue
    | PauseWorkPool
    | ResumeWorkPool
    | CancelFlowRun
    | SuspendFlowRun
    | ResumeFlowRun
    | ChangeFlowRunState,
    Field(discriminator="type"),
]

SECRET_MASK = "********"


# --------------------------------------------------------------------------- automations


class AutomationCore(Strict):
    """What a user writes: POST /api/automations/ and PUT /api/automations/{id}."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    trigger: EventTrigger
    actions: list[Action] = Field(default_factory=list)
    actions_on_trigger: list[Action] = Field(default_factory=list)
    actions_on_resolve: list[Action] = Field(default_factory=list)
    owner_resource: str | None = None

    @model_validator(mode="after")
    def _no_endless_run_deployment(self) -> AutomationCore:
        """Refuse a Reactive automation that runs a deployment whose new run's own events
        (Scheduled, Pending, Running) would trigger it again, forever."""
        if not self.enabled or self.trigger.posture != Posture.Reactive:
            return self
        for action in [*self.actions, *self.actions_on_trigger]:
            if not isinstance(action, RunDeployment):
                continue
            deployment = action.deployment_id or "00000000-0000-4000-8000-000000000000"
            for state in ("Scheduled", "Pending", "Running"):
                probe = Event(
                    event=f"prefect.flow-run.{state}",
                    resource={RESOURCE_ID: "prefect.flow-run.00000000-0000-4000-8000-000000000001"},
                    related=[
                        {
                            RESOURCE_ID: f"prefect.deployment.{deployment}",
                            RESOURCE_ROLE: "deployment",
                        }
                    ],
                )
                if self.trigger.covers(probe):
                    which = (
                        "the inferred deployment"
                        if action.deployment_id is None
                        else (f"deployment {deployment}")
                    )
                    raise ValueError(
                        f"this automation would trigger itself forever: each run of {which} "
                        f"emits prefect.flow-run.{state}, which its Reactive trigger matches. "
                        "Narrow match/match_related so that runs of that deployment do not "
                        "match, or choose the deployment instead of inferring it."
                    )
        return self


class Automation(AutomationCore):
    id: UUID
    created: datetime = Field(default_factory=utcnow)
    updated: datetime = Field(default_factory=utcnow)

    @property
    def resource_id(self) -> str:
        return automation_resource_id(self.id)

    def without_secrets(self) -> dict[str, Any]:
        """JSON for places that must not hold secrets (memo, logs): header values masked."""
        data = self.model_dump(mode="json")
        for group in ("actions", "actions_on_trigger", "actions_on_resolve"):
            for action in data[group]:
                if action.get("headers"):
                    action["headers"] = {name: SECRET_MASK for name in action["headers"]}
        return data


def automation_resource_id(automation_id: UUID | str) -> str:
    return f"prefect.automation.{automation_id}"


def automation_id_from_resource(labels: Labels) -> UUID | None:
    """The automation a resource names, if it is `prefect.automation.<uuid>`."""
    prefix = "prefect.automation."
    resource_id = labels.get(RESOURCE_ID, "")
    if not resource_id.startswith(prefix):
        return None
    try:
        return UUID(resource_id[len(prefix) :])
    except ValueError:
        return None
