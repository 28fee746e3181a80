"""Shared by the page tests (and the e2e test that opens the page): Debian's Chromium, headless."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Playwright adds --headless and a fresh temporary profile; these keep Chromium off the network.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
# The Temporal Web UI the page links to (nothing listens there: only the links are checked).
UI_URL = "http://127.0.0.1:8233"
