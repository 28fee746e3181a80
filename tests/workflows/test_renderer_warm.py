"""The worker starts its template-rendering processes with itself, not on the first action
(a fresh one takes ~0.3 s, seconds on a loaded machine: the first reactions after a worker
start waited for it)."""

from __future__ import annotations

import asyncio

from temporal_automations.activities.rendering import TemplateRenderer


async def test_warm_starts_every_child_before_any_render() -> None:
    async with TemplateRenderer(processes=2) as renderer:
        assert renderer.idle == 0 and renderer.pids == []
        renderer.warm()
        async with asyncio.timeout(60):
            while renderer.idle < 2:
                await asyncio.sleep(0.01)
        pids = renderer.pids
        # the first render is served by a child already running: no new process
        assert await renderer.render(["{{ 1 + 1 }}"], {}) == ["2"]
        assert renderer.pids == pids
