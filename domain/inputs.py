"""What a client may send: the strict models of POST/PUT /api/automations (Prefect's JSON).

Each subclasses its stored model (`domain/automations.py`) and adds what is refused at the edge
with a 422 naming the field: unknown fields, the targets rules, URL patterns, an endless
run-deployment loop, and bounds on every number. Tightening a rule here is safe: it changes what
new requests may say, never what running automations already hold. The only computed default,
the trigger's `id`, is drawn here, once, before anything is stored.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Annotated, Any, TypeVar
from uuid import UUID, uuid4  # noqa: TID251 - the HTTP edge's default, never in a workflow

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from temporal_automations.domain.automations import (
    PROACTIVE_MINIMUM_WITHIN,
    Automation,
    AutomationFields,
    CallWebhook,
    CancelFlowRun,
    ChangeFlowRunState,
    CompositeTrigger,
    CompoundTrigger,
    DoNothing,
    EventTrigger,
    PauseAutomation,
    PauseDeployment,
    PauseWorkPool,
    PauseWorkQueue,
    Posture,
    ResumeAutomation,
    ResumeDeployment,
    ResumeFlowRun,
    ResumeWorkPool,
    ResumeWorkQueue,
    RunDeployment,
    SendNotification,
    SequenceTrigger,
    Source,
    SuspendFlowRun,
    TargetedAction,
    TemporalAction,
    TemporalCancelWorkflow,
    TemporalPauseSchedule,
    TemporalResetWorkflow,
    TemporalSignalWorkflow,
    TemporalStartWorkflow,
    TemporalTerminateWorkflow,
    TemporalTriggerSchedule,
    TemporalUnpauseSchedule,
    _trigger_type,
)
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, EventIn

# A longer window is almost surely a unit mistake (milliseconds for seconds), and such an
# automation is never seen to fire; 366 days still lets a yearly job be watched in a leap year.
MAX_WITHIN_DAYS = 366
MAX_WITHIN = timedelta(days=MAX_WITHIN_DAYS).total_seconds()
# Far beyond any real count of events in one window, far below what only a typo produces.
MAX_THRESHOLD = 100_000
# Composite triggers: children per composite, and how deep composites nest (a compound of
# sequences of event triggers is depth 2).
MAX_CHILDREN = 10
MAX_COMPOSITE_DEPTH = 4
MAX_SCHEDULE_AFTER = MAX_WITHIN
MAX_URL = 2048

FORBID = ConfigDict(extra="forbid")


def _echoable(value: Any) -> Any:
    """NaN and the infinities as the JSON tokens a client sent. They are still refused (not a
    number of the field's kind), but the 422 echoes its input, and a float NaN cannot be written
    as JSON: that error used to become a 500."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# --------------------------------------------------------------------------- trigger


class EventTriggerInput(EventTrigger):
    model_config = FORBID

    id: UUID = Field(default_factory=uuid4)
    threshold: int = Field(default=1, ge=0, le=MAX_THRESHOLD)
    # allow_inf_nan=False: "Input should be a finite number" says more than a bound would.
    within: float = Field(
        default=0.0,
        ge=0,
        le=MAX_WITHIN,
        allow_inf_nan=False,
        validate_default=True,
        description=f"seconds, at most {MAX_WITHIN_DAYS} days",
    )
    _finite = field_validator("within", "threshold", mode="before")(_echoable)

    @field_validator("within")
    @classmethod
    def _proactive_minimum(cls, within: float, info: ValidationInfo) -> float:
        # A field validator (posture is declared, so validated, before within): the 422 then
        # points at trigger.within. 0 means "the minimum" (the stored model makes it 10).
        if info.data.get("posture") == Posture.Proactive and 0 < within < PROACTIVE_MINIMUM_WITHIN:
            raise ValueError(
                f"within must be at least {PROACTIVE_MINIMUM_WITHIN:g} seconds "
                "for a Proactive trigger"
            )
        return within


class _CompositeInput:
    """What a composite adds at the edge: its children, bounded in number and depth."""

    @field_validator("within", check_fields=False)
    @classmethod
    def _within_bounds(cls, within: float | None) -> float | None:
        if within is not None and not (0 <= within <= MAX_WITHIN):
            raise ValueError(f"within must be between 0 and {MAX_WITHIN:g} seconds")
        return within

    @model_validator(mode="after")
    def _children(self) -> Any:
        assert isinstance(self, CompositeTrigger)
        if not self.triggers:
            raise ValueError("a composite trigger needs at least one trigger")
        if len(self.triggers) > MAX_CHILDREN:
            raise ValueError(f"a composite trigger takes at most {MAX_CHILDREN} triggers")
        if self.depth() > MAX_COMPOSITE_DEPTH:
            raise ValueError(
                f"composite triggers nest at most {MAX_COMPOSITE_DEPTH} deep; "
                f"this one nests {self.depth()}"
            )
        return self


class CompoundTriggerInput(_CompositeInput, CompoundTrigger):
    model_config = FORBID

    id: UUID = Field(default_factory=uuid4)
    triggers: list[TriggerInput] = Field(default_factory=list)  # type: ignore[assignment]
    within: float | None = Field(default=None, allow_inf_nan=False)
    _finite = field_validator("within", "require", mode="before")(_echoable)

    @model_validator(mode="after")
    def _require(self) -> CompoundTriggerInput:
        if isinstance(self.require, int) and not 1 <= self.require <= len(self.triggers):
            raise ValueError(
                f"require must be 'any', 'all' or 1..{len(self.triggers)} (the number of triggers)"
            )
        return self


class SequenceTriggerInput(_CompositeInput, SequenceTrigger):
    model_config = FORBID

    id: UUID = Field(default_factory=uuid4)
    triggers: list[TriggerInput] = Field(default_factory=list)  # type: ignore[assignment]
    within: float | None = Field(default=None, allow_inf_nan=False)
    _finite = field_validator("within", mode="before")(_echoable)


TriggerInput = Annotated[
    Annotated[EventTriggerInput, Tag("event")]
    | Annotated[CompoundTriggerInput, Tag("compound")]
    | Annotated[SequenceTriggerInput, Tag("sequence")],
    Discriminator(_trigger_type),
]
CompoundTriggerInput.model_rebuild()
SequenceTriggerInput.model_rebuild()


# --------------------------------------------------------------------------- actions

Targeted = TypeVar("Targeted", bound=TargetedAction)
WithUrl = TypeVar("WithUrl", CallWebhook, SendNotification)


def _one_target(action: WithUrl) -> WithUrl:
    if (action.url is None) == (action.block_document_id is None):
        raise ValueError("give either url or block_document_id")
    return action


def _selected_or_inferred(action: Targeted) -> Targeted:
    """`selected` names its target in `<kind>_id`; `inferred` finds it, so must not name one."""
    name = action.selected_field
    if action.source == Source.selected and action.selected_id is None:
        raise ValueError(f"{name} is required when source is 'selected'")
    if action.source == Source.inferred and action.selected_id is not None:
        raise ValueError(f"{name} is not allowed when source is 'inferred'")
    return action


# One rule, attached to each class that needs it.
_one_target_rule = model_validator(mode="after")(_one_target)
_target_rule = model_validator(mode="after")(_selected_or_inferred)


class DoNothingInput(DoNothing):
    model_config = FORBID


class CallWebhookInput(CallWebhook):
    model_config = FORBID
    # A scheme and a host (the host may be a template); "http://" alone is refused here.
    url: str | None = Field(None, pattern=r"^https?://[^\s/?#]+", max_length=MAX_URL)
    _one_target = _one_target_rule


class SendNotificationInput(SendNotification):
    model_config = FORBID
    _one_target = _one_target_rule

    @field_validator("url")
    @classmethod
    def _some_url(cls, value: str | list[str] | None) -> str | list[str] | None:
        if value is not None and not value:
            raise ValueError("at least one notification URL is needed")
        return value


class PauseAutomationInput(PauseAutomation):
    model_config = FORBID
    _target = _target_rule


class ResumeAutomationInput(ResumeAutomation):
    model_config = FORBID
    _target = _target_rule


class RunDeploymentInput(RunDeployment):
    model_config = FORBID
    _target = _target_rule
    schedule_after: float = Field(
        default=0.0,
        ge=0,
        le=MAX_SCHEDULE_AFTER,
        allow_inf_nan=False,
        description=f"seconds, at most {MAX_WITHIN_DAYS} days",
    )
    _finite = field_validator("schedule_after", mode="before")(_echoable)


class PauseDeploymentInput(PauseDeployment):
    model_config = FORBID
    _target = _target_rule


class ResumeDeploymentInput(ResumeDeployment):
    model_config = FORBID
    _target = _target_rule


class PauseWorkQueueInput(PauseWorkQueue):
    model_config = FORBID
    _target = _target_rule


class ResumeWorkQueueInput(ResumeWorkQueue):
    model_config = FORBID
    _target = _target_rule


class PauseWorkPoolInput(PauseWorkPool):
    model_config = FORBID
    _target = _target_rule


class ResumeWorkPoolInput(ResumeWorkPool):
    model_config = FORBID
    _target = _target_rule


class CancelFlowRunInput(CancelFlowRun):
    model_config = FORBID


class SuspendFlowRunInput(SuspendFlowRun):
    model_config = FORBID


class ResumeFlowRunInput(ResumeFlowRun):
    model_config = FORBID


class ChangeFlowRunStateInput(ChangeFlowRunState):
    model_config = FORBID


# Temporal's own limits: ids up to 1,000 characters (the server's default), names shorter.
MAX_TEMPORAL_ID = 1000
MAX_TEMPORAL_NAME = 255
MAX_TEMPLATE = 10_000
MAX_ARGS_BYTES = 64_000

TemporalId = Annotated[str, Field(min_length=1, max_length=MAX_TEMPORAL_ID)]
TemporalName = Annotated[str, Field(min_length=1, max_length=MAX_TEMPORAL_NAME)]
Template = Annotated[str, Field(max_length=MAX_TEMPLATE)]
TemporalTarget = TypeVar("TemporalTarget", bound=TemporalAction)


def _selected_or_inferred_temporal(action: TemporalTarget) -> TemporalTarget:
    name = action.selected_field
    if action.source == Source.selected and action.selected_id is None:
        raise ValueError(f"{name} is required when source is 'selected'")
    if action.source == Source.inferred and action.selected_id is not None:
        raise ValueError(f"{name} is not allowed when source is 'inferred'")
    if action.source == Source.inferred and getattr(action, "run_id", None) is not None:
        raise ValueError("run_id is not allowed when source is 'inferred'")
    return action


def _bounded_args(args: list[Any]) -> list[Any]:
    if len(json.dumps(args, separators=(",", ":"))) > MAX_ARGS_BYTES:
        raise ValueError(f"args are limited to {MAX_ARGS_BYTES} bytes of JSON")
    return args


_temporal_target_rule = model_validator(mode="after")(_selected_or_inferred_temporal)
_args_rule = field_validator("args")(_bounded_args)


class TemporalCancelWorkflowInput(TemporalCancelWorkflow):
    model_config = FORBID
    workflow_id: TemporalId | None = None
    run_id: TemporalId | None = None
    namespace: TemporalName | None = None
    _target = _temporal_target_rule


class TemporalTerminateWorkflowInput(TemporalTerminateWorkflow):
    model_config = FORBID
    workflow_id: TemporalId | None = None
    run_id: TemporalId | None = None
    namespace: TemporalName | None = None
    reason: Template = TemporalTerminateWorkflow.model_fields["reason"].default
    _target = _temporal_target_rule


class TemporalSignalWorkflowInput(TemporalSignalWorkflow):
    model_config = FORBID
    workflow_id: TemporalId | None = None
    run_id: TemporalId | None = None
    namespace: TemporalName | None = None
    signal: TemporalName
    _target = _temporal_target_rule
    _args = _args_rule


class TemporalResetWorkflowInput(TemporalResetWorkflow):
    model_config = FORBID
    workflow_id: TemporalId | None = None
    run_id: TemporalId | None = None
    namespace: TemporalName | None = None
    reason: Template = TemporalResetWorkflow.model_fields["reason"].default
    _target = _temporal_target_rule


class TemporalStartWorkflowInput(TemporalStartWorkflow):
    model_config = FORBID
    workflow_type: TemporalName
    task_queue: TemporalName
    workflow_id: Template = TemporalStartWorkflow.model_fields["workflow_id"].default
    namespace: TemporalName | None = None
    execution_timeout: float | None = Field(
        default=None, gt=0, le=MAX_WITHIN, allow_inf_nan=False, description="seconds"
    )
    _args = _args_rule
    _finite = field_validator("execution_timeout", mode="before")(_echoable)


class TemporalPauseScheduleInput(TemporalPauseSchedule):
    model_config = FORBID
    schedule_id: TemporalId | None = None
    namespace: TemporalName | None = None
    note: Template = TemporalPauseSchedule.model_fields["note"].default
    _target = _temporal_target_rule


class TemporalUnpauseScheduleInput(TemporalUnpauseSchedule):
    model_config = FORBID
    schedule_id: TemporalId | None = None
    namespace: TemporalName | None = None
    note: Template = TemporalUnpauseSchedule.model_fields["note"].default
    _target = _temporal_target_rule


class TemporalTriggerScheduleInput(TemporalTriggerSchedule):
    model_config = FORBID
    schedule_id: TemporalId | None = None
    namespace: TemporalName | None = None
    note: Template = TemporalTriggerSchedule.model_fields["note"].default
    _target = _temporal_target_rule


ActionInput = Annotated[
    DoNothingInput
    | CallWebhookInput
    | SendNotificationInput
    | PauseAutomationInput
    | ResumeAutomationInput
    | RunDeploymentInput
    | PauseDeploymentInput
    | ResumeDeploymentInput
    | PauseWorkQueueInput
    | ResumeWorkQueueInput
    | PauseWorkPoolInput
    | ResumeWorkPoolInput
    | CancelFlowRunInput
    | SuspendFlowRunInput
    | ResumeFlowRunInput
    | ChangeFlowRunStateInput
    | TemporalCancelWorkflowInput
    | TemporalTerminateWorkflowInput
    | TemporalSignalWorkflowInput
    | TemporalStartWorkflowInput
    | TemporalResetWorkflowInput
    | TemporalPauseScheduleInput
    | TemporalUnpauseScheduleInput
    | TemporalTriggerScheduleInput,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- automations


class AutomationCore(AutomationFields):
    """What a user writes: POST /api/automations/ and PUT /api/automations/{id}."""

    model_config = FORBID

    name: str = Field(min_length=1, max_length=200)
    trigger: TriggerInput

    @model_validator(mode="wrap")
    @classmethod
    def _event_trigger_locations(cls, data: Any, handler: Any) -> Any:
        """An event trigger's errors name `trigger.<field>`, as before composites came (the
        page maps them onto its fields); a composite's name `trigger.<type>.…`."""
        try:
            return handler(data)
        except ValidationError as error:
            details: list[Any] = []
            for detail in error.errors():
                loc = tuple(detail["loc"])
                if loc[:2] == ("trigger", "event"):
                    loc = ("trigger", *loc[2:])
                details.append({**detail, "loc": loc})
            try:
                raised = ValidationError.from_exception_data(error.title, details)
            except Exception:  # an error type that cannot be rebuilt: keep the original
                raise error from None
            raise raised from None

    actions: list[ActionInput] = Field(default_factory=list)  # type: ignore[assignment]
    actions_on_trigger: list[ActionInput] = Field(default_factory=list)  # type: ignore[assignment]
    actions_on_resolve: list[ActionInput] = Field(default_factory=list)  # type: ignore[assignment]

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
                probe = EventIn(
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

    def to_automation(self, id: UUID, created: datetime, updated: datetime) -> Automation:
        """The stored form, with the identity and times the caller decided (once)."""
        # Through plain data, so the result holds only stored classes: what a workflow
        # receives back from history is then equal to what was started.
        data = self.model_dump()
        return Automation.model_validate({**data, "id": id, "created": created, "updated": updated})
