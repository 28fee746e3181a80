"""Automations as they are STORED: in each workflow's input, continue-as-new state and memo.

These models read what an older (or newer) version of this code wrote into workflow history, so
they never refuse: unknown fields are ignored, no rule beyond the types is checked, and no
default is computed (no uuid4(), no now()), which keeps replay deterministic. What a client
may send is checked by the strict models in `domain/inputs.py`, which subclass these.

Evolving them (every running automation must keep replaying):
- add a field only with a constant default, so that older histories still validate;
- never remove, rename or tighten a field, nor add a validator that raises: do that at the edge;
- bump `Automation.schema_version` when a change alters what stored data means.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
)

from temporal_automations.domain.events import RESOURCE_ID, Event, Labels
from temporal_automations.domain.matching import (
    ResourceSpec,
    name_matches,
    related_matches,
    resource_matches,
)

PROACTIVE_MINIMUM_WITHIN = 10.0


class Stored(BaseModel):
    """Lenient: a field written by a newer version is ignored rather than refused."""

    model_config = ConfigDict(extra="ignore")


def _seconds(value: Any) -> Any:
    # Prefect sends durations as timedeltas (or seconds); keep seconds.
    return value.total_seconds() if isinstance(value, timedelta) else value


# --------------------------------------------------------------------------- triggers


class Posture(StrEnum):
    Reactive = "Reactive"
    Proactive = "Proactive"


class EventTrigger(Stored):
    """Fires when `threshold` expected events arrive within `within` seconds (Reactive), or
    when fewer than `threshold` arrive (Proactive), per `for_each` key."""

    type: Literal["event"] = "event"
    id: UUID
    match: ResourceSpec = Field(default_factory=dict)
    match_related: ResourceSpec | list[ResourceSpec] = Field(default_factory=dict)
    after: list[str] = Field(default_factory=list)
    expect: list[str] = Field(default_factory=list)
    for_each: list[str] = Field(default_factory=list)
    posture: Posture
    threshold: int = 1
    within: float = Field(default=0.0, description="seconds", validate_default=True)

    @field_validator("after", "expect", "for_each", mode="before")
    @classmethod
    def _sorted_unique(cls, value: Any) -> Any:
        # Prefect sends these as sets; keep one canonical, ordered form.
        if isinstance(value, list | set | tuple) and all(isinstance(v, str) for v in value):
            return sorted(set(value))
        return value  # anything else is refused by the type check (a 422), not sorted (a 500)

    @field_validator("within", mode="before")
    @classmethod
    def _within_seconds(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("within")
    @classmethod
    def _proactive_default_within(cls, within: float, info: ValidationInfo) -> float:
        # Prefect's rule: a Proactive trigger without a window watches 10 s windows. Only a
        # normalisation; refusing a shorter window is the edge's job (domain/inputs.py).
        if within == 0 and info.data.get("posture") == Posture.Proactive:
            return PROACTIVE_MINIMUM_WITHIN
        return within

    @property
    def window(self) -> timedelta:
        return timedelta(seconds=self.within)

    def starts_after(self, name: str) -> bool:
        return bool(self.after) and name_matches(self.after, name)

    def expects(self, name: str) -> bool:
        return not self.expect or name_matches(self.expect, name)

    def names(self) -> list[str]:
        """The event-name patterns this trigger listens to; empty means every name (an empty
        `expect` expects every event, the `after` ones included)."""
        return [*self.after, *self.expect] if self.expect else []

    def covers(self, event: Event) -> bool:
        """Is this event one the trigger looks at (by name, resource and related resources)?"""
        names = self.names()
        if names and not name_matches(names, event.event):
            return False
        return resource_matches(self.match, event.resource) and related_matches(
            self.match_related, event.related
        )

    def leaves(self) -> Iterator[EventTrigger]:
        yield self

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


class CompositeTrigger(Stored):
    """Prefect's `compound` and `sequence`: children (event triggers or composites) report
    their firings here instead of acting; `within` seconds bounds how far apart they may be."""

    id: UUID
    triggers: list[Trigger] = Field(default_factory=list)
    within: float | None = Field(default=None, description="seconds")

    @field_validator("within", mode="before")
    @classmethod
    def _within_seconds(cls, value: Any) -> Any:
        return _seconds(value)

    def leaves(self) -> Iterator[EventTrigger]:
        for child in self.triggers:
            yield from child.leaves()

    @property
    def posture(self) -> Posture:
        """Proactive only when every event trigger below is (the `prefect.posture` label)."""
        if all(leaf.posture == Posture.Proactive for leaf in self.leaves()):
            return Posture.Proactive
        return Posture.Reactive

    def names(self) -> list[str]:
        names: list[str] = []
        for leaf in self.leaves():
            leaf_names = leaf.names()
            if not leaf_names:
                return []  # one child listens to every name
            names += leaf_names
        return names

    def covers(self, event: Event) -> bool:
        return any(leaf.covers(event) for leaf in self.leaves())

    def depth(self) -> int:
        return (
            1
            + max(
                (child.depth() if isinstance(child, CompositeTrigger) else 0)
                for child in self.triggers
            )
            if self.triggers
            else 1
        )


class CompoundTrigger(CompositeTrigger):
    """Fires when `require` of its children ("any", "all" or a number) have fired."""

    type: Literal["compound"] = "compound"
    require: int | Literal["any", "all"] = "all"

    @property
    def required(self) -> int:
        if self.require == "any":
            return 1
        if self.require == "all":
            return len(self.triggers)
        return self.require


class SequenceTrigger(CompositeTrigger):
    """Fires when all its children have fired, in the listed order (by firing time)."""

    type: Literal["sequence"] = "sequence"


def _trigger_type(value: Any) -> str:
    # Our clients have always been allowed to leave out `"type": "event"`; as Prefect's
    # client does, a trigger without a type but with `require` or `triggers` is a composite.
    if isinstance(value, dict):
        if "type" in value:
            return str(value["type"])
        if "require" in value:
            return "compound"
        return "sequence" if "triggers" in value else "event"
    return str(getattr(value, "type", "event"))


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[CompoundTrigger, Tag("compound")]
    | Annotated[SequenceTrigger, Tag("sequence")],
    Discriminator(_trigger_type),
]
CompositeTrigger.model_rebuild()
CompoundTrigger.model_rebuild()
SequenceTrigger.model_rebuild()


# --------------------------------------------------------------------------- actions


class Source(StrEnum):
    selected = "selected"
    inferred = "inferred"


class DoNothing(Stored):
    type: Literal["do-nothing"] = "do-nothing"


HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]


class CallWebhook(Stored):
    """POST (or `method`) the rendered `payload` template to `url`, or to the URL of a
    Prefect Webhook block (`block_document_id`, with its method and headers)."""

    type: Literal["call-webhook"] = "call-webhook"
    url: str | None = None
    block_document_id: UUID | None = None
    method: HttpMethod = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    payload: str = ""


DEFAULT_SUBJECT = "Automation {{ automation.name }} was {{ firing.state }}"
DEFAULT_BODY = (
    "Automation {{ automation.name }} was {{ firing.state }} at {{ firing.occurred }}"
    "{% if event %} by {{ event.event }} on {{ event.resource['prefect.resource.id'] }}"
    "{% endif %}."
)


class SendNotification(Stored):
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


class TargetedAction(Stored):
    """An action on one resource: `selected` names it in `<kind>_id`; `inferred` takes the
    first `prefect.<kind>.<id>` of the triggering event (or of a proactive firing's key)."""

    target_kind: ClassVar[str]
    source: Source = Source.selected

    @property
    def selected_field(self) -> str:
        return f"{self.target_kind.replace('-', '_')}_id"

    @property
    def selected_id(self) -> UUID | None:
        selected: UUID | None = getattr(self, self.selected_field)
        return selected


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
    schedule_after: float = Field(default=0.0, description="seconds")

    @field_validator("schedule_after", mode="before")
    @classmethod
    def _schedule_after_seconds(cls, value: Any) -> Any:
        return _seconds(value)


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


class FlowRunAction(Stored):
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


# ----------------------------------------------------------------- Temporal's resources

TEMPORAL_WORKFLOW_PREFIX = "temporal.workflow."
TEMPORAL_SCHEDULE_PREFIX = "temporal.schedule."
TEMPORAL_NAMESPACE_LABEL = "temporal.namespace"
TEMPORAL_RUN_ID_LABEL = "temporal.run-id"


class TemporalAction(Stored):
    """An action on a Temporal workflow or schedule of the *target* cluster (TARGET_TEMPORAL_*,
    by default the engine's own). `selected` names it in `<what>_id`; `inferred` takes the first
    `temporal.<what>.<id>` of the triggering event (its resource, then related ones), and its
    `temporal.namespace` label. Ids are Temporal's own strings, not UUIDs."""

    target_prefix: ClassVar[str]
    selected_field: ClassVar[str]
    source: Source = Source.selected
    namespace: str | None = None

    @property
    def selected_id(self) -> str | None:
        selected: str | None = getattr(self, self.selected_field)
        return selected


class TemporalWorkflowAction(TemporalAction):
    target_prefix: ClassVar[str] = TEMPORAL_WORKFLOW_PREFIX
    selected_field: ClassVar[str] = "workflow_id"
    workflow_id: str | None = None
    run_id: str | None = None


class TemporalCancelWorkflow(TemporalWorkflowAction):
    type: Literal["temporal-cancel-workflow"] = "temporal-cancel-workflow"


class TemporalTerminateWorkflow(TemporalWorkflowAction):
    type: Literal["temporal-terminate-workflow"] = "temporal-terminate-workflow"
    reason: str = "terminated by automation {{ automation.name }}"


class TemporalSignalWorkflow(TemporalWorkflowAction):
    """Send signal `signal` with `args`, whose string values are templates."""

    type: Literal["temporal-signal-workflow"] = "temporal-signal-workflow"
    signal: str
    args: list[Any] = Field(default_factory=list)


ResetPoint = Literal["last-workflow-task", "first-workflow-task"]


class TemporalResetWorkflow(TemporalWorkflowAction):
    """Reset the run (the triggering event's run when inferred) to its last or first completed
    workflow task: a new run replays from there, the old one is terminated."""

    type: Literal["temporal-reset-workflow"] = "temporal-reset-workflow"
    reset_to: ResetPoint = "last-workflow-task"
    reason: str = "reset by automation {{ automation.name }}"


DEFAULT_STARTED_WORKFLOW_ID = "{{ automation.id }}-{{ firing.id }}"


class TemporalStartWorkflow(Stored):
    """Start a workflow of `workflow_type` on `task_queue`; `workflow_id` and the string values
    of `args` are templates. Retries of one action start it once (the start carries a request
    id drawn from the action's idempotency key)."""

    type: Literal["temporal-start-workflow"] = "temporal-start-workflow"
    workflow_type: str
    task_queue: str
    workflow_id: str = DEFAULT_STARTED_WORKFLOW_ID
    args: list[Any] = Field(default_factory=list)
    namespace: str | None = None
    execution_timeout: float | None = Field(default=None, description="seconds")


class TemporalScheduleAction(TemporalAction):
    target_prefix: ClassVar[str] = TEMPORAL_SCHEDULE_PREFIX
    selected_field: ClassVar[str] = "schedule_id"
    schedule_id: str | None = None
    note: str = "by automation {{ automation.name }}"


class TemporalPauseSchedule(TemporalScheduleAction):
    type: Literal["temporal-pause-schedule"] = "temporal-pause-schedule"


class TemporalUnpauseSchedule(TemporalScheduleAction):
    type: Literal["temporal-unpause-schedule"] = "temporal-unpause-schedule"


class TemporalTriggerSchedule(TemporalScheduleAction):
    """Run the schedule's action now (once per firing, however often the action is retried)."""

    type: Literal["temporal-trigger-schedule"] = "temporal-trigger-schedule"


TEMPORAL_ACTIONS = (
    TemporalCancelWorkflow, TemporalTerminateWorkflow, TemporalSignalWorkflow,
    TemporalStartWorkflow, TemporalResetWorkflow, TemporalPauseSchedule,
    TemporalUnpauseSchedule, TemporalTriggerSchedule,
)  # fmt: skip


# The discriminator refuses a `type` this version does not know: a new action type reaches every
# worker before the API accepts it (and so does a new posture).
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
    | ChangeFlowRunState
    | TemporalCancelWorkflow
    | TemporalTerminateWorkflow
    | TemporalSignalWorkflow
    | TemporalStartWorkflow
    | TemporalResetWorkflow
    | TemporalPauseSchedule
    | TemporalUnpauseSchedule
    | TemporalTriggerSchedule,
    Field(discriminator="type"),
]

SECRET_MASK = "********"


# --------------------------------------------------------------------------- automations


class AutomationFields(Stored):
    """What a user writes, as stored; `inputs.AutomationCore` is its strict form."""

    name: str
    description: str = ""
    enabled: bool = True
    tags: list[str] = Field(default_factory=list)
    trigger: Trigger
    actions: list[Action] = Field(default_factory=list)
    actions_on_trigger: list[Action] = Field(default_factory=list)
    actions_on_resolve: list[Action] = Field(default_factory=list)
    owner_resource: str | None = None


class Automation(AutomationFields):
    """An automation as a workflow holds it. The ids and times are given by whoever makes one
    (the API, once), never defaulted here: a default would differ on every replay."""

    id: UUID
    created: datetime
    updated: datetime
    # The shape of what was stored, for a future reader that must tell versions apart. Add
    # fields with constant defaults; never remove or tighten one (see the module docstring).
    schema_version: int = 1

    @property
    def resource_id(self) -> str:
        return automation_resource_id(self.id)

    def without_secrets(self) -> dict[str, Any]:
        """JSON for places that must not hold secrets (memo, API answers, logs): webhook header
        values and notification URLs masked."""
        data = self.model_dump(mode="json")
        for action in actions_of(data):
            if action.get("headers"):
                action["headers"] = {name: SECRET_MASK for name in action["headers"]}
            if action.get("type") == "send-notification" and action.get("url"):
                url = action["url"]
                action["url"] = (
                    masked_url(url) if isinstance(url, str) else list(map(masked_url, url))
                )
        return data

    def keeping_secrets_of(self, current: Automation) -> Automation:
        """This definition with every secret that is still the mask (a client sent back what
        it was shown) replaced by the value `current` has at the same place."""
        data = self.model_dump(mode="json")
        old = current.model_dump(mode="json")
        changed = False
        for group in ACTION_GROUPS:
            for index, action in enumerate(data[group]):
                previous = old[group][index] if index < len(old[group]) else {}
                known = previous.get("headers") or {}
                for name, value in (action.get("headers") or {}).items():
                    if value == SECRET_MASK and name in known:
                        action["headers"][name] = known[name]
                        changed = True
                url, known_url = action.get("url"), previous.get("url")
                if previous.get("type") != action.get("type") or url is None or known_url is None:
                    continue
                if isinstance(url, str) and isinstance(known_url, str) and is_masked_url(url):
                    action["url"], changed = known_url, True
                elif isinstance(url, list) and isinstance(known_url, list):
                    for position, one in enumerate(url):
                        if is_masked_url(one) and position < len(known_url):
                            url[position], changed = known_url[position], True
        return type(self).model_validate(data) if changed else self


def masked_url(url: str) -> str:
    """A notification URL as people see it: its scheme only (the rest carries tokens)."""
    scheme = url.split("://", 1)[0] if "://" in url else "secret"
    return f"{scheme}://{SECRET_MASK}"


def is_masked_url(value: str) -> bool:
    return value.endswith(f"://{SECRET_MASK}")


def actions_of(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [action for group in ACTION_GROUPS for action in data.get(group) or []]


ACTION_GROUPS = ("actions", "actions_on_trigger", "actions_on_resolve")


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
