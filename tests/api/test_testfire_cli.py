"""`automations test`: a test-fire from files, with no server and no side effect."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from temporal_automations.cli import app

RUN = "prefect.flow-run.6f1c4f7e-0b4a-4a63-8c67-0e8d6a1c2b11"
DEFINITION = {
    "name": "two failures",
    "trigger": {
        "posture": "Reactive",
        "expect": ["prefect.flow-run.Failed"],
        "for_each": ["prefect.resource.id"],
        "threshold": 2,
        "within": 600,
    },
    "actions": [
        {
            "type": "call-webhook",
            "url": "https://hooks.example.com/x",
            "headers": {"X-Token": "s3cret"},
            "payload": '{"run": "{{ event.resource.id }}"}',
        },
        {"type": "cancel-flow-run"},
    ],
}


def failed(resource: str, minute: int) -> dict[str, object]:
    occurred = f"2026-12-05T01:0{minute}:00Z"
    labels = {"prefect.resource.id": resource}
    return {"event": "prefect.flow-run.Failed", "occurred": occurred, "resource": labels}


def files(tmp_path: Path) -> tuple[Path, Path]:
    definition, events = tmp_path / "automation.json", tmp_path / "events.json"
    definition.write_text(json.dumps(DEFINITION))
    events.write_text(json.dumps([failed(RUN, 0), failed(RUN, 1), failed("prefect.flow-run.x", 2)]))
    return definition, events


def test_a_table_of_what_would_fire_and_be_sent(tmp_path: Path) -> None:
    definition, events = files(tmp_path)
    result = CliRunner().invoke(app, ["test", str(definition), "--events", str(events)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["#", "state", "at"]
    assert lines[2].startswith("1  triggered  2026-12-05T01:01:00")
    assert "call-webhook → https://hooks.example.com/x" in lines[2]
    assert f"cancel-flow-run → {RUN}" in lines[2]
    assert "1 firing(s); 3 events scanned" in result.output
    assert "nothing was sent" in result.output


def test_json_has_the_rendered_request_with_secrets_masked(tmp_path: Path) -> None:
    definition, events = files(tmp_path)
    result = CliRunner().invoke(app, ["test", str(definition), "--events", str(events), "--json"])
    assert result.exit_code == 0, result.output
    (firing,) = json.loads(result.output)["firings"]
    webhook, cancel = firing["actions"]
    assert webhook["request"]["body"] == json.dumps({"run": RUN}, separators=(",", ": "))
    assert webhook["request"]["headers"] == {"X-Token": "********"}
    assert webhook["status"] == cancel["status"] == "not sent"
    assert cancel["target"] == RUN


def test_one_source_of_events_is_needed(tmp_path: Path) -> None:
    definition, events = files(tmp_path)
    neither = CliRunner().invoke(app, ["test", str(definition)])
    assert neither.exit_code == 1 and "--events FILE or --from" in neither.output
    bad = CliRunner().invoke(app, ["test", str(events), "--events", str(events)])
    assert bad.exit_code == 1
