"""Automations kept in Temporal: each is the workflow `automation-<id>`; this process keeps a
catalog of them (loaded at start, updated on every write here) so reads see writes at once and
the event router knows who is interested in what."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from temporal_automations.domain.automations import Automation
from temporal_automations.domain.events import utcnow
from temporal_automations.domain.inputs import AutomationCore
from temporal_automations.domain.secrets import seal_automation
from temporal_automations.settings import Settings, secret_box
from temporal_automations.temporal import WORKFLOW_TYPE, workflow_id
from temporal_automations.workflows.automation import (
    AutomationRun,
    AutomationStats,
    AutomationStatus,
    AutomationWorkflow,
    RunLimits,
    memo_for,
    search_attributes_for,
)

log = logging.getLogger("automations.api")

STATUS_TIMEOUT = timedelta(seconds=5)
BUSY_STATUS_TIMEOUT = timedelta(seconds=2)


class AutomationNotFound(LookupError):
    pass


class AutomationStore:
    def __init__(self, client: Client, settings: Settings) -> None:
        self.client = client
        self.settings = settings
        self.secrets = secret_box(settings)
        self.catalog: dict[UUID, Automation] = {}
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    # ------------------------------------------------------------------ loading

    async def load(self) -> None:
        """Read every running automation workflow: its definition from a query (full), or,
        when no worker answers in time, from its memo (secrets masked)."""
        query = f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
        executions = [execution async for execution in self.client.list_workflows(query)]

        async def definition(
            execution_id: str, memo_loader: Callable[[], Awaitable[Mapping[str, Any]]]
        ) -> Automation | None:
            try:
                status = await asyncio.wait_for(self._status(execution_id), timeout=5)
                return status.automation
            except Exception:  # no worker yet: fall back to what the memo says
                memo = await memo_loader()
                data = memo.get("automation")
                return Automation.model_validate(data) if data else None

        results = await asyncio.gather(
            *(definition(e.id, e.memo) for e in executions), return_exceptions=True
        )
        for execution, result in zip(executions, results, strict=True):
            if isinstance(result, Automation):
                self.catalog[result.id] = result
            else:
                log.warning("could not read automation workflow %s: %r", execution.id, result)
        self._changed()
        log.info("loaded %d automations", len(self.catalog))

    # ------------------------------------------------------------------ reads

    def get(self, automation_id: UUID) -> Automation:
        try:
            return self.catalog[automation_id]
        except KeyError:
            raise AutomationNotFound(automation_id) from None

    def all(self) -> list[Automation]:
        return list(self.catalog.values())

    async def status(self, automation_id: UUID) -> AutomationStatus:
        """The status query; when the workflow is too busy to answer in time (a burst of
        actions holds its workflow task), the counters its memo had at its last task."""
        automation = self.get(automation_id)
        try:
            return await self._status(workflow_id(automation_id), BUSY_STATUS_TIMEOUT)
        except RPCError as error:
            if error.status not in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                raise
        description = await self._handle(workflow_id(automation_id)).describe()
        memo = await description.memo()
        return AutomationStatus(
            automation=automation,
            # The memo's counters are AutomationStats' own fields (workflows.counters_memo).
            stats=AutomationStats.model_validate(memo),
            next_deadline=None,
            open_windows=0,
            triggered_keys=0,
            held_events=0,
            live=False,
        )

    async def _status(self, id_: str, timeout: timedelta = STATUS_TIMEOUT) -> AutomationStatus:
        # Bounded: with no worker a query would wait for one until the client gives up.
        return await self._handle(id_).query(AutomationWorkflow.status, rpc_timeout=timeout)

    # ------------------------------------------------------------------ writes

    async def create(self, core: AutomationCore) -> Automation:
        # The id and times are drawn here, once, and travel in the workflow's input: the
        # stored model has no defaults of its own that a replay could draw differently.
        now = utcnow()
        automation = seal_automation(core.to_automation(uuid4(), now, now), self.secrets)
        await self.client.start_workflow(
            AutomationWorkflow.run,
            AutomationRun(
                automation=automation,
                limits=RunLimits(
                    firings_per_minute=self.settings.max_firings_per_minute,
                    chained_firings_per_minute=self.settings.max_chained_firings_per_minute,
                ),
            ),
            id=workflow_id(automation.id),
            task_queue=self.settings.task_queue,
            memo=memo_for(automation, AutomationStats()),
            search_attributes=search_attributes_for(automation),
            static_summary=f"Automation: {automation.name}",
            # Continue-as-new keeps it: the runs that follow inherit their first run's timeout.
            task_timeout=self.settings.workflow_task_timeout,
        )
        self.catalog[automation.id] = automation
        self._changed()
        return automation

    async def replace(self, automation_id: UUID, core: AutomationCore) -> Automation:
        current = self.get(automation_id)
        # A mask sent back is sealed as is; the workflow swaps it for the secret it holds.
        automation = seal_automation(
            core.to_automation(automation_id, current.created, utcnow()), self.secrets
        )
        result = await self._update(automation_id, AutomationWorkflow.replace, automation)
        self.catalog[automation_id] = result
        self._changed()
        return result

    async def set_enabled(self, automation_id: UUID, enabled: bool) -> Automation:
        self.get(automation_id)
        result = await self._update(automation_id, AutomationWorkflow.set_enabled, enabled)
        self.catalog[automation_id] = result
        self._changed()
        return result

    async def delete(self, automation_id: UUID) -> None:
        self.get(automation_id)
        try:
            await self._handle(workflow_id(automation_id)).terminate(reason="automation deleted")
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:
                raise
        self.catalog.pop(automation_id, None)
        self._changed()

    async def _update(self, automation_id: UUID, update: Any, argument: Any) -> Automation:
        handle = self._handle(workflow_id(automation_id))
        try:
            return await handle.execute_update(update, argument)
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                self.catalog.pop(automation_id, None)
                self._changed()
                raise AutomationNotFound(automation_id) from error
            raise

    def _handle(self, id_: str) -> WorkflowHandle:
        return self.client.get_workflow_handle(id_)
