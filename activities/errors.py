"""What a failed action says it was: an ApplicationError `type` per kind of failure, so the
workflow, the logs and whoever reads `prefect.automation.action.failed` tell them apart without
reading messages. Each of these is permanent (`non_retryable`): retrying cannot change the
answer. Transient failures (5xx, timeouts, refused connections) raise plain errors, retried."""

from __future__ import annotations

from enum import StrEnum

from temporalio.exceptions import ApplicationError


class ActionErrorType(StrEnum):
    FAILED = "ActionFailed"  # permanent, of no kind below (a block without a url, a bad URL)
    REFUSED_ANSWER = "RefusedAnswer"  # the target answered 4xx (not 408/425/429), or refused
    TARGET_NOT_FOUND = "TargetNotFound"  # the resource to act on does not exist (404)
    NO_TARGET = "NoTarget"  # nothing in the firing names a resource to act on
    TEMPLATE_ERROR = "TemplateError"  # a template of the action failed to render
    OUTBOUND_REFUSED = "OutboundRefused"  # the outbound policy refused the address or redirect
    NOT_CONFIGURED = "NotConfigured"  # the worker lacks settings it needs (Prefect, Temporal)
    SECRET_UNAVAILABLE = "SecretUnavailable"  # a sealed secret cannot be opened here


def fail(reason: str, type: ActionErrorType = ActionErrorType.FAILED) -> ApplicationError:
    """A permanent failure: no retry, and `reason` goes into `...action.failed`."""
    return ApplicationError(reason, type=type.value, non_retryable=True)
