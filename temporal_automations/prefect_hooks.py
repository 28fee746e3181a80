"""Send a Prefect flow run's state changes to temporal-automations from the flow itself.

    from temporal_automations.prefect_hooks import send_state_event

    @flow(on_failure=[send_state_event], on_completion=[send_state_event],
          on_running=[send_state_event])
    def etl(): ...

AUTOMATIONS_API_URL (default http://127.0.0.1:4200/api) and AUTOMATIONS_API_KEY configure it.
For users who want events without running the bridge. It needs only httpx, so it imports in the
flow's environment without the rest of this package; a failure to send is logged, never raised
into the flow.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx

log = logging.getLogger("automations.prefect_hooks")


def state_event(flow: Any, flow_run: Any, state: Any) -> dict[str, Any]:
    """`prefect.flow-run.<State>` in Prefect's event shape, with flow, deployment and tags."""
    related = [
        {
            "prefect.resource.id": f"prefect.flow.{flow_run.flow_id}",
            "prefect.resource.role": "flow",
            "prefect.resource.name": getattr(flow, "name", ""),
        }
    ]
    if getattr(flow_run, "deployment_id", None):
        related.append(
            {
                "prefect.resource.id": f"prefect.deployment.{flow_run.deployment_id}",
                "prefect.resource.role": "deployment",
            }
        )
    for tag in getattr(flow_run, "tags", None) or []:
        related.append(
            {"prefect.resource.id": f"prefect.tag.{tag}", "prefect.resource.role": "tag"}
        )
    return {
        "id": str(uuid.uuid4()),
        "occurred": datetime.now(UTC).isoformat(),
        "event": f"prefect.flow-run.{state.name}",
        "resource": {
            "prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
            "prefect.resource.name": flow_run.name,
            "prefect.state-name": state.name,
            "prefect.state-type": str(getattr(state.type, "value", state.type)),
        },
        "related": related,
        "payload": {"message": getattr(state, "message", None) or ""},
    }


def send_state_event(flow: Any, flow_run: Any, state: Any) -> None:
    """A Prefect state hook (flow, flow_run, state)."""
    url = os.environ.get("AUTOMATIONS_API_URL", "http://127.0.0.1:4200/api").rstrip("/")
    key = os.environ.get("AUTOMATIONS_API_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.post(
            f"{url}/events", json=[state_event(flow, flow_run, state)], headers=headers, timeout=10
        )
        response.raise_for_status()
    except httpx.HTTPError as error:
        log.warning("could not send the state event to %s: %s", url, error)
