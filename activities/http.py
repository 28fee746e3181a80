"""One way for activities to call HTTP: 4xx (but 408/425/429) is permanent and fails the
action with the answer as its reason; 5xx, timeouts and refused connections are retried."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from temporalio.exceptions import ApplicationError

from temporal_automations.activities.errors import ActionErrorType
from temporal_automations.activities.errors import fail as fail

RETRYABLE_STATUS = {408, 425, 429}


class RefusedAnswer(ApplicationError):
    """A 4xx answer (but 408/425/429): permanent, like `fail`, of type RefusedAnswer (or
    TargetNotFound for a 404); `status` says which answer it was."""

    def __init__(self, reason: str, status: int) -> None:
        kind = ActionErrorType.TARGET_NOT_FOUND if status == 404 else ActionErrorType.REFUSED_ANSWER
        super().__init__(reason, type=kind.value, non_retryable=True)
        self.status = status


async def send(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    """The answer's status and body (JSON when it is JSON)."""
    try:
        async with http.request(method, url, **kwargs) as response:
            status = response.status
            text = await response.text(errors="replace")
    except (aiohttp.ClientError, TimeoutError) as error:
        raise RuntimeError(f"{method} {url} failed: {error!r}") from error  # retried
    if status >= 400:
        reason = f"{method} {url} answered {status}: {text[:300]}"
        if status < 500 and status not in RETRYABLE_STATUS:
            raise RefusedAnswer(reason, status)
        raise RuntimeError(reason)  # retried
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text
