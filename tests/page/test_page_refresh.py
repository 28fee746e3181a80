"""How the page asks the API, in a real headless Chromium against the real stack: the list reads
every automation's counters with one request per refresh, refreshes never overlap (the next
starts only after the previous answered), and a slow answer for a view already left is never
drawn over the view now shown.

Answers are held back with Chromium's request interception (Playwright's `page.route`), and
the page's timers run on Playwright's clock (`page.clock`): "nothing more was asked during 30
seconds of refreshes" is then a fact about the page's timers, not a sleep."""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Error, Locator, Page, Request, Route, expect

from tests.support import event_json, eventually, send

pytestmark = pytest.mark.e2e

BULK = "/api/automations/statuses"
ONE_STATUS = re.compile(r"/api/automations/[0-9a-f-]{36}/status$")
LIST_REFRESH_MS = 3000  # list.js REFRESH_MS


def create(api: httpx.Client, name: str, expect_event: str) -> str:  # noqa: F811
    answer = api.post(
        "/automations/",
        json={
            "name": name,
            "trigger": {"posture": "Reactive", "expect": [expect_event], "within": 0},
            "actions": [{"type": "do-nothing"}],
        },
    )
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def card_of(page: Page, name: str) -> Locator:  # noqa: F811
    return page.get_by_role("article", name=name)


def advance_until(page: Page, done: Callable[[], bool], timeout: float = 15.0) -> None:  # noqa: F811
    """Run the page's clock a quarter second at a time until `done()`; between steps the page
    gets a moment of real time to take the answers that came (they schedule the next
    refresh). Fails after `timeout` real seconds."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "not done in time"
        page.clock.run_for(250)
        page.wait_for_timeout(20)


def is_bulk(request: Request) -> bool:
    return request.url.endswith(BULK) and request.method == "POST"


class InFlight:
    """The page's requests matching `wanted`, as Chromium sent them, and the most that were
    ever in flight at once (sent, neither answered nor failed yet)."""

    def __init__(self, page: Page, wanted: Callable[[Request], bool]) -> None:  # noqa: F811
        self.sent: list[Request] = []
        self.open: set[int] = set()
        self.most = 0
        self.wanted = wanted
        page.on("request", self._sent)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _sent(self, request: Request) -> None:
        if self.wanted(request):
            self.sent.append(request)
            self.open.add(id(request))
            self.most = max(self.most, len(self.open))

    def _ended(self, request: Request) -> None:
        self.open.discard(id(request))


def test_the_list_asks_every_counter_in_one_request_per_refresh(
    page: Page,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    kind = f"page.bulk.{uuid.uuid4().hex[:8]}"
    ids = [create(api, f"Bulk {kind} {n}", f"{kind}.{n}") for n in range(6)]
    page.clock.install()
    bulk = InFlight(page, is_bulk)
    one_by_one = InFlight(page, lambda r: bool(ONE_STATUS.search(r.url)))

    page.goto("/automations")
    first = card_of(page, f"Bulk {kind} 0")
    expect(first).to_contain_text("Last fired: never · Fired 0 times")
    rows = page.locator("article.automation")
    listed = rows.evaluate_all("(rows) => rows.map((r) => r.dataset.id)")
    assert set(ids) <= set(listed)

    # It fires; the list shows it at a following refresh, without being opened again.
    send(api, event_json(f"{kind}.0", "page.bulk.resource"))
    eventually(
        lambda: (
            api.post("/automations/statuses", json={"ids": ids[:1]}).json()["statuses"][0][
                "firings"
            ]
            == 1
        ),
        what="the firing in the automation's memo",
    )
    for _ in range(3):
        before = len(bulk.sent)
        advance_until(page, lambda: len(bulk.sent) > before and not bulk.open)  # noqa: B023
    expect(first).to_contain_text("Fired 1 time")

    # Every request asked for every listed automation: one request per refresh, not one per row.
    assert len(bulk.sent) == 4  # the first read and three refreshes
    for request in bulk.sent:
        assert sorted(json.loads(request.post_data or "{}")["ids"]) == sorted(listed)
    assert one_by_one.sent == []


def test_list_refreshes_never_overlap_and_stop_when_the_list_is_left(
    page: Page,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    name = f"Overlap {uuid.uuid4().hex[:8]}"
    create(api, name, f"page.overlap.{uuid.uuid4()}")
    held: list[Route] = []
    page.route(f"**{BULK}", lambda route: held.append(route))
    page.clock.install()
    bulk = InFlight(page, is_bulk)

    with page.expect_request(is_bulk):
        page.goto("/automations")
    # The list shows without its counters once it has waited long enough for them…
    page.clock.run_for(3000)
    card = card_of(page, name)
    expect(card).to_contain_text("Loading counters…")
    # …and while that answer is held, 30 s of refreshes ask nothing more.
    page.clock.run_for(30_000)
    expect(card).to_contain_text("Loading counters…")
    assert len(bulk.sent) == 1 and len(held) == 1

    # Answered: the next refresh comes one period after it, and is held in turn.
    held.pop().continue_()
    expect(card).to_contain_text("Fired 0 times")
    advance_until(page, lambda: len(held) == 1)
    page.clock.run_for(30_000)
    assert len(bulk.sent) == 2
    held.pop().continue_()
    expect(page.locator("article.automation .counters[data-loading]")).to_have_count(0)
    assert bulk.most == 1

    # Leaving the list stops its refreshes.
    page.unroute(f"**{BULK}")
    page.get_by_role("link", name="Event feed").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    page.clock.run_for(30_000)
    assert len(bulk.sent) == 2


def test_detail_refreshes_never_overlap(page: Page, api: httpx.Client) -> None:  # noqa: F811
    automation_id = create(api, f"Detail {uuid.uuid4().hex[:8]}", f"page.d.{uuid.uuid4()}")
    status_url = f"**/api/automations/{automation_id}/status"
    held: list[Route] = []
    page.route(status_url, lambda route: held.append(route))
    page.clock.install()
    statuses = InFlight(page, lambda r: r.url.endswith(f"/{automation_id}/status"))

    with page.expect_request(lambda r: r.url.endswith(f"/{automation_id}/status")):
        page.goto(f"/automations#/a/{automation_id}")
    page.clock.run_for(1500)  # the view stops waiting for its first counters
    expect(page.locator("#counters")).to_contain_text("Loading counters…")
    page.clock.run_for(30_000)  # 15 periods of 2 s: the held one is not asked again
    assert len(statuses.sent) == 1
    held.pop().continue_()
    page.unroute(status_url)
    expect(page.locator("#counters")).to_contain_text("Fired 0 times")
    for _ in range(3):
        before = len(statuses.sent)
        advance_until(page, lambda: len(statuses.sent) > before and not statuses.open)  # noqa: B023
    assert len(statuses.sent) == 4 and statuses.most == 1


def test_a_slow_answer_for_a_view_already_left_is_not_drawn(
    page: Page,  # noqa: F811
    api: httpx.Client,  # noqa: F811
) -> None:
    slow = create(api, f"Slow {uuid.uuid4().hex[:8]}", f"page.slow.{uuid.uuid4()}")
    fast_name = f"Fast {uuid.uuid4().hex[:8]}"
    fast = create(api, fast_name, f"page.fast.{uuid.uuid4()}")
    held: list[Route] = []
    page.route(f"**/api/automations/{slow}", lambda route: held.append(route))

    page.goto("/automations")
    expect(page.get_by_role("heading", name="Automations", exact=True)).to_be_visible()
    slow_request = lambda r: r.url.endswith(f"/api/automations/{slow}")  # noqa: E731
    with page.expect_request(slow_request):
        page.evaluate(f"location.hash = '#/a/{slow}'")
    # While the slow view waits for its answer, the user opens another automation: the page
    # drops the slow view's request (aborted), so its answer has nowhere to go.
    with page.expect_event("requestfailed", slow_request):
        page.evaluate(f"location.hash = '#/a/{fast}'")
    expect(page.get_by_role("heading", name=fast_name)).to_be_visible()
    with contextlib.suppress(Error):  # let it through, if Chromium still holds it
        held.pop().continue_()
    expect(page.get_by_role("heading", level=1)).to_have_text(fast_name)
    assert page.url.endswith(f"#/a/{fast}")
    expect(page.get_by_text("Something went wrong")).to_have_count(0)
