"""The layer rule (ARCHITECTURE.md): the domain imports nothing of Temporal, the web or the
network, nor any layer above it; workflows and activities never import the API or the CLI.
`ruff check` enforces it through each layer's own `ruff.toml` (TID251), so CI fails on a
forbidden import; these tests show it failing on one, and passing on the tree as it is."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUFF = [sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise"]


def banned_imports(path: str, source: str) -> list[str]:
    """The TID251 findings ruff reports for `source` as if it were the file at `path`."""
    answer = subprocess.run(
        [*RUFF, "--select", "TID251", "--stdin-filename", path, "-"],
        input=source,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    return [line for line in answer.stdout.splitlines() if "TID251" in line]


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("domain/probe.py", "import temporalio\n"),
        ("domain/probe.py", "from fastapi import FastAPI\n"),
        ("domain/probe.py", "import httpx\n"),
        ("domain/probe.py", "from temporal_automations.workflows import automation\n"),
        ("domain/probe.py", "from temporal_automations.settings import Settings\n"),
        ("workflows/probe.py", "from temporal_automations.api.app import create_app\n"),
        ("workflows/probe.py", "import fastapi\n"),
        ("activities/probe.py", "from temporal_automations.cli import app\n"),
    ],
)
def test_a_forbidden_import_fails_the_lint(path: str, source: str) -> None:
    assert banned_imports(path, source), f"{source!r} in {path} passed the layer rule"


@pytest.mark.parametrize(
    ("path", "source"),
    [
        ("domain/probe.py", "from temporal_automations.domain.events import Event\n"),
        ("workflows/probe.py", "from temporalio import workflow\n"),
        ("activities/probe.py", "import httpx\nfrom temporal_automations.domain import events\n"),
        ("api/probe.py", "from temporal_automations.workflows import automation\n"),
    ],
)
def test_an_allowed_import_passes(path: str, source: str) -> None:
    assert banned_imports(path, source) == []


def test_the_tree_keeps_the_layers() -> None:
    answer = subprocess.run(
        [*RUFF, "--select", "TID251,TID252", "domain", "workflows", "activities"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stdout + answer.stderr
