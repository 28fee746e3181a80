"""Secrets end to end: a webhook header value and a notification URL given over HTTP never
appear in Temporal's history or in an API answer, and the target still gets the real value."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from temporal_automations.domain.automations import SECRET_MASK
from temporal_automations.temporal import workflow_id
from tests.stack import Stack
from tests.support import Receiver, event_json

SECRET = f"Bearer {uuid.uuid4().hex}"


async def history_payloads(stack: Stack, automation_id: str) -> str:
    """Every payload in the automation's history, decoded (history JSON holds them base64)."""
    client = await Client.connect(stack.temporal_address, data_converter=pydantic_data_converter)
    handle = client.get_workflow_handle(workflow_id(uuid.UUID(automation_id)))
    decoded: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "data" and isinstance(value, str):
                    decoded.append(base64.b64decode(value).decode(errors="replace"))
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(json.loads((await handle.fetch_history()).to_json()))
    return "\n".join(decoded)


def test_secrets_are_sealed_in_history_masked_in_answers_and_real_at_the_target(
    stack: Stack, receiver: Receiver
) -> None:
    name = f"secret.{uuid.uuid4()}"
    body = {
        "name": "sealed",
        "trigger": {"posture": "Reactive", "expect": [name]},
        "actions": [
            {
                "type": "call-webhook",
                "url": f"{receiver.url}/sealed",
                "headers": {"Authorization": SECRET},
            }
        ],
        "actions_on_resolve": [
            {"type": "send-notification", "url": f"json://127.0.0.1:9/{SECRET[-8:]}"}
        ],
    }
    with stack.sync_client() as api:
        created = api.post("/automations/", json=body)
        assert created.status_code == 201, created.text
        automation = created.json()
        assert automation["actions"][0]["headers"] == {"Authorization": SECRET_MASK}
        assert automation["actions_on_resolve"][0]["url"] == f"json://{SECRET_MASK}"

        # Edited as a client sees it (masks sent back): the secrets are kept.
        edited = {k: automation[k] for k in body} | {"name": "sealed, renamed"}
        assert api.put(f"/automations/{automation['id']}", json=edited).status_code == 200
        assert api.post("/events", json=[event_json(name, "prefect.flow-run.s")]).status_code == 204
        (call,) = receiver.wait_for(1, "/sealed", timeout=20)
        assert call.headers["Authorization"] == SECRET

        for answer in (
            api.get(f"/automations/{automation['id']}").text,
            api.post("/automations/filter", json={}).text,
            api.get(f"/automations/{automation['id']}/status").text,
        ):
            assert SECRET not in answer and SECRET[-8:] not in answer

        text = asyncio.run(history_payloads(stack, automation["id"]))
        assert automation["id"] in text  # the definition is there, decoded
        assert "sealed:v1:" in text
        assert SECRET not in text and SECRET[-8:] not in text
