"""TemplateRenderer with its real child processes: time and memory limits, a pool that heals
itself, and an event loop that keeps running while a template spins.

No mocks: every test renders in real processes, and every renderer is closed (its processes
killed) when the test ends, also on failure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from temporalio.exceptions import ApplicationError

from temporal_automations.activities.actions import ActionActivities
from temporal_automations.activities.prefect import PrefectActivities, PrefectClient
from temporal_automations.activities.rendering import TemplateRenderer
from temporal_automations.activities.requests import ActionRequest, AutomationSummary
from temporal_automations.domain.automations import DEFAULT_BODY, DEFAULT_SUBJECT
from temporal_automations.domain.templates import (
    TemplateRenderError,
    action_context,
    is_plain_lookup,
    render,
)
from temporal_automations.settings import Settings
from tests.domain.builders import automation, uid
from tests.domain.test_templates import firing
from tests.support import eventually_async

# About 10**9 loop iterations: minutes of CPU, far past the 1 s limit.
SLOW = (
    "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}"
)
# 600 MB in one string: past the 512 MB limit, and a way to use memory the sandbox allows.
HUNGRY = "{{ 'x'.center(600 * 1024 * 1024) }}"
# An expression, not a lookup: rendered in a child process.
COMPUTED = "{{ 1 + 1 }}"
PAYLOAD = '{"key": "{{ event.resource.id or labels[\'prefect.resource.id\'] }}"}'


@pytest.fixture
async def renderer() -> AsyncIterator[TemplateRenderer]:
    async with TemplateRenderer() as running:
        yield running


def context() -> dict[str, Any]:
    return action_context(automation(), firing(), uid(8))


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --------------------------------------------------------------------------- rendering


async def test_renders_as_the_sandbox_does_in_one_round_trip(renderer: TemplateRenderer) -> None:
    templates = [PAYLOAD, "plain", DEFAULT_SUBJECT, DEFAULT_BODY, "{{ automation.name }}"]
    ctx = context()
    assert await renderer.render(templates, ctx) == [render(t, ctx) for t in templates]


async def test_plain_strings_never_start_a_process(renderer: TemplateRenderer) -> None:
    assert await renderer.render(["plain", '{"a": 1}', ""], {}) == ["plain", '{"a": 1}', ""]
    assert renderer.pids == []


async def test_a_template_that_only_looks_values_up_renders_without_a_process(
    renderer: TemplateRenderer,
) -> None:
    ctx = context()
    lookups = [PAYLOAD, "id={{ labels['prefect.resource.id'] }}", "{{ x.y if z else not w }}"]
    assert await renderer.render(lookups, ctx) == [render(t, ctx) for t in lookups]
    assert renderer.pids == []
    # a filter, a call, an operator or a loop goes to a process
    for template in ["{{ event.event | upper }}", "{{ event.event.upper() }}", COMPUTED, SLOW]:
        assert not is_plain_lookup(template)
    assert await renderer.render(["{{ event.event | upper }}"], ctx) == [
        render("{{ event.event | upper }}", ctx)
    ]
    assert renderer.pids != []


async def test_template_errors_come_back_with_their_reason(renderer: TemplateRenderer) -> None:
    await renderer.render([COMPUTED], {})
    pids = renderer.pids
    with pytest.raises(TemplateRenderError, match="division by zero"):
        await renderer.render(["{{ 1 / 0 }}"], {})
    with pytest.raises(TemplateRenderError, match="'\\*' in the template would build a value"):
        await renderer.render(["{{ 'a' * 10**9 }}"], {})
    with pytest.raises(TemplateRenderError, match="does not parse"):
        await renderer.render(["{{ unclosed"], {})
    assert renderer.pids == pids  # an ordinary error costs no process


async def test_concurrent_renders_each_get_their_own_answer(renderer: TemplateRenderer) -> None:
    results = await asyncio.gather(
        *(renderer.render(["{{ n }}-{{ n * 2 }}", "plain"], {"n": n}) for n in range(300))
    )
    assert results == [[f"{n}-{n * 2}", "plain"] for n in range(300)]


# --------------------------------------------------------------------------- the time limit


async def test_a_slow_template_is_stopped_after_the_time_limit(renderer: TemplateRenderer) -> None:
    await renderer.render([COMPUTED], {})
    await eventually_async(lambda: renderer.idle == 2, 10, 0.01)  # the pool is up
    before = set(renderer.pids)
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as error:
        await renderer.render([SLOW], {})
    elapsed = time.monotonic() - started
    assert str(error.value) == "template rendering took longer than 1 s"
    assert 1.0 <= elapsed < 4.0  # the bound is generous only for a loaded machine
    # The child that spun was killed and replaced; the next template renders.
    await eventually_async(lambda: len(before - set(renderer.pids)) == 1, 10, 0.01)
    (killed,) = before - set(renderer.pids)
    await eventually_async(lambda: not alive(killed), 10, 0.01)
    assert await renderer.render(["{{ n + 1 }}"], {"n": 41}) == ["42"]


async def test_the_time_limit_is_a_constructor_argument() -> None:
    async with TemplateRenderer(time_limit=0.3) as quick:
        await quick.render([COMPUTED], {})
        started = time.monotonic()
        with pytest.raises(TemplateRenderError, match="took longer than 0.3 s"):
            await quick.render([SLOW], {})
        assert 0.3 <= time.monotonic() - started < 1.0


async def test_the_event_loop_keeps_running_while_a_template_spins(
    renderer: TemplateRenderer,
) -> None:
    await renderer.render([COMPUTED], {})
    await eventually_async(lambda: renderer.idle == 2, 10, 0.01)
    # Between consecutive ticks: wall time, and CPU time of this (the event loop's) thread. A
    # render on the loop would show up in both as the whole render; a busy machine can stretch
    # the wall gaps, but only the loop's own work adds CPU time.
    wall_gaps: list[float] = []
    cpu_gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        wall, cpu = time.monotonic(), time.thread_time()
        while not stop.is_set():
            await asyncio.sleep(0.005)
            now_wall, now_cpu = time.monotonic(), time.thread_time()
            wall_gaps.append(now_wall - wall)
            cpu_gaps.append(now_cpu - cpu)
            wall, cpu = now_wall, now_cpu

    ticking = asyncio.create_task(ticker())
    slow = asyncio.create_task(renderer.render([SLOW], {}))
    # Meanwhile another action's template renders in the other process.
    assert await renderer.render(["{{ n + 0 }}"], {"n": 7}) == ["7"]
    assert not slow.done()
    with pytest.raises(TemplateRenderError, match="took longer than 1 s"):
        await slow
    stop.set()
    await ticking
    assert len(wall_gaps) > 20
    assert max(cpu_gaps) < 0.2, f"the event loop was busy for {max(cpu_gaps):.3f} s"
    assert max(wall_gaps) < 1.0, f"the event loop stalled for {max(wall_gaps):.3f} s"


async def test_a_cancelled_render_does_not_leak_its_answer_into_the_next(
    renderer: TemplateRenderer,
) -> None:
    await renderer.render([COMPUTED], {})
    await eventually_async(lambda: renderer.idle == 2, 10, 0.01)
    slow = asyncio.create_task(renderer.render([SLOW + "late"], {}))
    await eventually_async(lambda: renderer.idle == 1, 10, 0.01)  # the slow one holds a process
    slow.cancel()
    with pytest.raises(asyncio.CancelledError):
        await slow
    answers = await asyncio.gather(*(renderer.render(["{{ n + 0 }}"], {"n": n}) for n in range(20)))
    assert answers == [[str(n)] for n in range(20)]


# --------------------------------------------------------------------------- the memory limit


async def test_a_memory_hungry_template_is_refused(renderer: TemplateRenderer) -> None:
    await renderer.render([COMPUTED], {})
    before = set(renderer.pids)
    with pytest.raises(TemplateRenderError) as error:
        await renderer.render([HUNGRY], {})
    assert str(error.value) == "template rendering ran out of memory (limit 512 MB)"
    await eventually_async(
        lambda: not any(alive(pid) for pid in before - set(renderer.pids)), 10, 0.01
    )
    assert await renderer.render(["{{ 'ok' }}"], {}) == ["ok"]


async def test_the_memory_limit_is_a_constructor_argument() -> None:
    async with TemplateRenderer(memory_limit=256 * 2**20) as small:
        with pytest.raises(TemplateRenderError, match=r"out of memory \(limit 256 MB\)"):
            await small.render(["{{ 'x'.center(300 * 1024 * 1024) }}"], {})


# --------------------------------------------------------------------------- the pool


async def test_a_process_killed_from_outside_is_replaced(renderer: TemplateRenderer) -> None:
    await renderer.render([COMPUTED], {})
    await eventually_async(lambda: renderer.idle == 2, 10, 0.01)
    victim = renderer.pids[0]
    os.kill(victim, signal.SIGKILL)
    await eventually_async(
        lambda: victim not in renderer.pids and len(renderer.pids) == 2, 10, 0.01
    )
    answers = await asyncio.gather(*(renderer.render(["{{ n + 0 }}"], {"n": n}) for n in range(10)))
    assert answers == [[str(n)] for n in range(10)]


async def test_close_kills_every_process_and_refuses_further_renders() -> None:
    renderer = TemplateRenderer()
    await renderer.render([COMPUTED], {})
    await eventually_async(lambda: len(renderer.pids) == 2, 10, 0.01)
    pids = renderer.pids
    renderer.close()
    await renderer.wait_closed()
    assert not any(alive(pid) for pid in pids)
    with pytest.raises(RuntimeError, match="closed"):
        await renderer.render([COMPUTED], {})
    assert await renderer.render(["plain"], {}) == ["plain"]  # needs no process


async def test_close_wakes_renders_waiting_for_a_process() -> None:
    renderer = TemplateRenderer(processes=1)
    try:
        await renderer.render([COMPUTED], {})
        busy = asyncio.create_task(renderer.render([SLOW], {}))
        waiting = asyncio.create_task(renderer.render(["{{ 2 + 0 }}"], {}))
        # Both tasks have run up to their first wait: `busy` holds the only process and
        # `waiting` waits for it.
        await eventually_async(lambda: renderer.idle == 0, 10, 0.01)
    finally:
        renderer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await waiting
    with pytest.raises(TemplateRenderError, match="crashed its process"):
        await busy
    await renderer.wait_closed()


async def test_renders_fail_rather_than_wait_when_no_process_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONHOME", "/nonexistent")  # the children's Python cannot start
    async with TemplateRenderer() as broken:
        with pytest.raises(RuntimeError, match="could start: the process exited with code"):
            await broken.render([COMPUTED], {})
        with pytest.raises(RuntimeError, match="no template-rendering process could start"):
            await broken.render(["{{ 2 + 0 }}"], {})
        assert await broken.render(["plain"], {}) == ["plain"]  # needs no process


# --------------------------------------------------------------------------- in the activities


def request(action: dict[str, Any]) -> ActionRequest:
    return ActionRequest(
        automation=AutomationSummary.of(automation()),
        action=action,
        action_index=0,
        firing=firing(),
        firing_id=uid(8),
    )


async def test_a_violation_fails_that_action_without_retries(renderer: TemplateRenderer) -> None:
    settings = Settings()
    async with aiohttp.ClientSession() as http:
        prefect = PrefectClient(settings, http)
        actions = ActionActivities(settings, http, prefect, renderer)
        webhook = {"type": "call-webhook", "url": "https://hooks.invalid/x", "payload": SLOW}
        with pytest.raises(ApplicationError) as error:
            await actions.call_webhook(request(webhook))
        assert error.value.non_retryable
        assert error.value.message == "template rendering took longer than 1 s"

        deployments = PrefectActivities(prefect, renderer)
        run = {
            "type": "run-deployment",
            "source": "selected",
            "deployment_id": str(uid(9)),
            "parameters": {"name": "{{ event.resource.id }}", "blob": [HUNGRY]},
        }
        with pytest.raises(ApplicationError) as error:
            await deployments.run_deployment(request(run))
        assert error.value.non_retryable
        assert error.value.message == "template rendering ran out of memory (limit 512 MB)"
