"""The firing rate limit: a token bucket on the caller's clock, carried as plain data."""

from __future__ import annotations

from datetime import timedelta

from temporal_automations.domain.ratelimit import FiringBudget
from tests.domain.builders import at


def test_a_full_budget_allows_a_burst_then_refuses() -> None:
    budget = FiringBudget(per_minute=60)
    allowed = [budget.take(at(0)) for _ in range(100)]
    assert allowed.count(True) == 60 and allowed[60:] == [False] * 40


def test_the_budget_refills_with_time_at_its_rate() -> None:
    budget = FiringBudget(per_minute=60)
    for _ in range(60):
        budget.take(at(0))
    assert not budget.take(at(0))
    assert budget.take(at(1))  # one a second comes back
    assert not budget.take(at(1))
    later = at(0) + timedelta(hours=1)
    assert sum(budget.take(later) for _ in range(100)) == 60  # never more than the burst


def test_a_clock_going_backwards_does_not_mint_firings() -> None:
    budget = FiringBudget(per_minute=60)
    for _ in range(60):
        budget.take(at(10))
    assert not budget.take(at(5))
    assert not budget.take(at(10))


def test_zero_means_no_limit_and_the_state_round_trips() -> None:
    unlimited = FiringBudget(per_minute=0)
    assert all(unlimited.take(at(0)) for _ in range(10_000))
    budget = FiringBudget(per_minute=10)
    for _ in range(10):
        budget.take(at(0))
    copy = FiringBudget.model_validate_json(budget.model_dump_json())
    assert not copy.take(at(0)) and copy.take(at(6))
