"""The Automations page in a real headless Chromium (Debian's), driven by Playwright, against
real processes. Every test here is marked `page` and `e2e` (so `pytest -m "not e2e"`, the fast
suite, leaves them out; `pytest -m page` runs only them)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.page.support import CHROMIUM, CHROMIUM_ARGS, UI_URL
from tests.stack import Stack, running_stack

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = not Path(CHROMIUM).exists()
    if missing and os.environ.get("CI"):
        raise RuntimeError("CI must install Debian's chromium (scripts/test.sh does)")
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.page)
            item.add_marker(pytest.mark.e2e)
            if missing:
                item.add_marker(pytest.mark.skip(reason="Debian's chromium is not installed"))


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A real stack whose page links to a Temporal Web UI; a module may override it."""
    with running_stack(extra_env={"TEMPORAL_UI_URL": UI_URL}) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    """A fresh browser context on the stack's page; fails the test on any JavaScript error."""
    context = browser.new_context(base_url=stack.base_url, viewport={"width": 1200, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.base_url)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield opened
        assert errors == [], f"JavaScript errors on the page: {errors}"
    finally:
        context.close()
