"""`automations dev --api-key auto` turns the key on (made up, printed), and the page in
headless Chromium asks for it once per browser session: not again on reload, not in a second
tab, but again in another browser session."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from temporal_automations.devserver import free_port

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(path: Path, pattern: str, process: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(pattern, path.read_text())
        if found:
            return found.group(1)
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} never appeared:\n{path.read_text()}")


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`automations dev --api-key auto`: (base URL, the key it printed)."""
    port = free_port()
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    command = [sys.executable, "-m", "temporal_automations.cli", "dev", "--ephemeral", "--no-ui"]
    command += ["--port", str(port), "--temporal-port", str(free_port()), "--api-key", "auto"]
    env = {key: value for key, value in os.environ.items() if key != "API_KEY"}
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        key = _wait_for(log, r"API key \(made up for this run\): (\S+)", process, 60)
        _wait_for(log, r"(API key      required)", process, 60)
        yield f"http://127.0.0.1:{port}", key
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_made_up_key_guards_the_api(dev: tuple[str, str]) -> None:
    base, key = dev
    assert len(key) >= 32
    assert httpx.post(f"{base}/api/automations/count", json={}).status_code == 401
    with_key = httpx.post(
        f"{base}/api/automations/count", json={}, headers={"Authorization": f"Bearer {key}"}
    )
    assert with_key.status_code == 200
    assert httpx.get(f"{base}/api/ui-config").json()["auth_required"] is True


def test_the_page_asks_once_per_browser_session(dev: tuple[str, str], browser: Browser) -> None:
    base, key = dev
    session = browser.new_context(base_url=base)
    try:
        first = session.new_page()
        first.goto("/automations")
        expect(first.get_by_role("heading", name="API key needed")).to_be_visible()
        first.get_by_label("API key", exact=True).fill(key)
        first.get_by_role("button", name="Continue").click()
        expect(first.get_by_role("heading", name="No automations yet")).to_be_visible()

        first.reload()
        expect(first.get_by_role("heading", name="No automations yet")).to_be_visible()

        second = session.new_page()  # a new tab of the same browser session
        second.goto("/automations")
        expect(second.get_by_role("heading", name="No automations yet")).to_be_visible()
        assert second.get_by_role("heading", name="API key needed").count() == 0
        assert second.evaluate("sessionStorage.getItem('automations.apiKey')") == key
    finally:
        session.close()

    other = browser.new_context(base_url=base)  # another browser session asks again
    try:
        page = other.new_page()
        page.goto("/automations")
        expect(page.get_by_role("heading", name="API key needed")).to_be_visible()
    finally:
        other.close()
