"""The action activities. Permanent failures raise non-retryable errors with a reason the user
reads in `prefect.automation.action.failed`; transient ones raise plain errors and are retried."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from temporalio import activity
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from temporal_automations.activities import outbound
from temporal_automations.activities.errors import ActionErrorType
from temporal_automations.activities.http import RefusedAnswer, fail, send
from temporal_automations.activities.outbound import OutboundPolicy
from temporal_automations.activities.prefect import PrefectClient
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import (
    CALL_WEBHOOKS,
    ActionRequest,
    WebhookBatch,
    WebhookBatchItem,
    WebhookOutcome,
)
from temporal_automations.domain.automations import (
    CallWebhook,
    PauseAutomation,
    ResumeAutomation,
    SendNotification,
)
from temporal_automations.domain.events import Event
from temporal_automations.domain.secrets import SecretUnavailable, open_secret
from temporal_automations.domain.targets import NoTarget, target_id
from temporal_automations.domain.templates import (
    TemplateRenderError,
    action_context,
    template_variables,
)
from temporal_automations.logs import bind
from temporal_automations.settings import Settings, secret_box

log = logging.getLogger("automations.activities")
# A batch's webhooks in flight at once, and how long one may take before it counts as a
# transient failure (under the batch's own timeout, so one slow target fails alone).
WEBHOOKS_AT_ONCE = 32
BATCHED_WEBHOOK_TIMEOUT = 10.0


class ActionActivities:
    """The worker's side effects. HTTP goes through one aiohttp session: measured here, a
    request costs 0.4 ms of CPU with aiohttp against 1-3 ms with httpx, and webhooks are the
    hot path of a burst of firings."""

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        prefect: PrefectClient,
        renderer: TemplateRenderer,
    ) -> None:
        self.settings = settings
        self.http = http
        self.prefect = prefect
        self.renderer = renderer
        self.secrets = secret_box(settings)
        # Every request to a target the user named goes through this one guard.
        self.outbound = OutboundPolicy(allow_private=settings.allow_private_webhooks)

    def _open(self, value: str) -> str:
        """A sealed secret of the definition, in the clear for this one request."""
        try:
            return open_secret(value, self.secrets)
        except SecretUnavailable as error:
            raise fail(str(error), ActionErrorType.SECRET_UNAVAILABLE) from error

    async def _render(self, request: ActionRequest, *templates: str) -> list[str]:
        """Render an action's templates off the event loop, bounded in time and memory (a
        violation fails this action); Prefect objects are fetched only if they use them."""
        try:
            names = set().union(*(template_variables(template) for template in templates))
            context = action_context(request.automation, request.firing, request.firing_id, names)
            context |= await self.prefect.template_objects(request, list(templates))
            return await self.renderer.render(list(templates), context)
        except TemplateRenderError as error:
            raise fail(str(error), ActionErrorType.TEMPLATE_ERROR) from error

    # ------------------------------------------------------------------ webhooks

    @activity.defn(name="call_webhook")
    async def call_webhook(self, request: ActionRequest) -> str:
        return await self._call_webhook(request)

    @activity.defn(name=CALL_WEBHOOKS)
    async def call_webhooks(self, batch: WebhookBatch) -> list[WebhookOutcome]:
        """Each item of `batch` exactly as `call_webhook` calls it, WEBHOOKS_AT_ONCE at a time;
        an item's failure is its outcome, never this activity's: the workflow retries the
        transient ones alone, as regular activities (workflows/automation.py)."""

        async def one(item: WebhookBatchItem) -> WebhookOutcome:
            request = batch.request(item)
            with bind(firing_id=str(item.firing_id), action_index=item.action_index):
                try:
                    detail = await asyncio.wait_for(
                        self._call_webhook(request), BATCHED_WEBHOOK_TIMEOUT
                    )
                except ApplicationError as error:
                    return WebhookOutcome(
                        status="failed",
                        detail=error.message,
                        permanent=error.non_retryable,
                        error_type=error.type,
                    )
                except Exception as error:  # transient: retried (a regular activity)
                    log.info(
                        "call_webhook of a batch failed: %s",
                        error,
                        extra={"error_type": type(error).__name__},
                    )
                    return WebhookOutcome(
                        status="failed", detail=str(error), error_type=type(error).__name__
                    )
            return WebhookOutcome(status="executed", detail=detail)

        outcomes: list[WebhookOutcome] = []
        items = batch.items
        for start in range(0, len(items), WEBHOOKS_AT_ONCE):  # the workflow sends fewer
            outcomes += await asyncio.gather(
                *(one(item) for item in items[start : start + WEBHOOKS_AT_ONCE])
            )
        return outcomes

    async def _call_webhook(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, CallWebhook)
        (body,) = await self._render(request, action.payload)
        url, method = action.url, action.method
        extra_headers = {name: self._open(value) for name, value in action.headers.items()}
        if action.block_document_id is not None:
            block = await self.prefect.block_data(action.block_document_id)
            url, method = block.get("url"), block.get("method", method)
            extra_headers = {**(block.get("headers") or {}), **extra_headers}
        if not url:
            raise fail(f"block {action.block_document_id} has no url")
        headers = {
            "Idempotency-Key": request.idempotency_key,
            "User-Agent": "temporal-automations",
            **extra_headers,
        }
        if body.lstrip().startswith(("{", "[")):
            headers.setdefault("Content-Type", "application/json")
        status = await outbound.request(
            self.http, self.outbound, method, url, headers=headers, data=body
        )
        return f"{method} {outbound.where(url)} answered {status}"

    # ------------------------------------------------------------------ notifications

    @activity.defn(name="send_notification")
    async def send_notification(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, SendNotification)
        subject, body = await self._render(request, action.subject, action.body)
        urls = [self._open(url) for url in action.urls]
        if action.block_document_id is not None:
            block = await self.prefect.block_data(action.block_document_id)
            if not block.get("url"):
                raise fail(f"block {action.block_document_id} has no url to notify")
            urls = [block["url"]]
            if not outbound.is_notification_url(block["url"]):
                # A plain HTTP endpoint (Prefect's Webhook block): POST the message as JSON.
                headers = {
                    "Idempotency-Key": request.idempotency_key,
                    **(block.get("headers") or {}),
                }
                message = {"subject": subject, "body": body}
                await outbound.request(
                    self.http, self.outbound, "POST", block["url"], headers=headers, json=message
                )
                return "notified 1 target(s)"
        await outbound.notify(self.outbound, urls, subject, body)
        return f"notified {len(urls)} target(s)"

    # ------------------------------------------------------------------ automations

    @activity.defn(name="set_automation_enabled")
    async def set_automation_enabled(self, request: ActionRequest) -> str:
        action = request.action
        assert isinstance(action, PauseAutomation | ResumeAutomation)
        try:
            target = target_id(action, request.firing)
        except NoTarget as error:
            raise fail(str(error), ActionErrorType.NO_TARGET) from error
        enabled = isinstance(action, ResumeAutomation)
        url = f"{self.settings.api_url}/automations/{target}"
        try:
            await send(self.http, "PATCH", url, json={"enabled": enabled}, headers=self._api_auth())
        except RefusedAnswer as error:
            if error.status == 404:
                raise fail(
                    f"automation {target} does not exist", ActionErrorType.TARGET_NOT_FOUND
                ) from error
            raise
        return f"automation {target} {'resumed' if enabled else 'paused'}"

    # ------------------------------------------------------------------ lifecycle events

    @activity.defn(name="emit_events")
    async def emit_events(self, events: RawValue) -> int:
        """Send the automation's own events (a list of Event) into the events stream (ids
        dedupe retries); returns how many our API refused. The list goes out as the JSON it
        came in (decoding and encoding it again cost ~70 µs an action in a burst). A batch that
        is refused is sent again one event at a time, so one event the API will never take
        cannot hold back the rest forever."""
        url = f"{self.settings.api_url}/events"
        body = _json_list(events)
        headers = {"Content-Type": "application/json", **self._api_auth()}
        try:
            await send(self.http, "POST", url, data=body, headers=headers)
            return 0
        except ApplicationError as error:  # a 4xx: some event in it is refused
            refused_batch = error
        each: list[Any] = json.loads(body)
        if len(each) == 1:
            activity.logger.warning("lifecycle event refused: %s", refused_batch.message)
            return 1
        refused = 0
        for one in each:
            try:
                await send(self.http, "POST", url, json=[one], headers=self._api_auth())
            except ApplicationError as error:
                activity.logger.warning("lifecycle event %s refused: %s", one["id"], error.message)
                refused += 1
        return refused

    def _api_auth(self) -> dict[str, str]:
        key = self.settings.api_key
        return {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.call_webhook,
            self.call_webhooks,
            self.send_notification,
            self.set_automation_enabled,
            self.emit_events,
        ]


def _json_list(value: RawValue) -> bytes:
    """A payload holding a list of events, as JSON bytes (re-encoded only when the payload is
    not plain JSON, e.g. under a codec that left another encoding)."""
    if value.payload.metadata.get("encoding") == b"json/plain":
        return value.payload.data
    events = activity.payload_converter().from_payload(value.payload, list[Event])
    return json.dumps([event.model_dump(mode="json") for event in events]).encode()
