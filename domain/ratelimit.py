"""A firing rate limit per automation: a token bucket on the workflow's clock.

Pure and deterministic (the caller passes `now`), and a plain model so it crosses
continue-as-new. A storm (automations reacting to each other, a flood of matching events) is
then recorded as suppressed firings instead of flooding every target.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class FiringBudget(BaseModel):
    """`per_minute` firings a minute on average, up to `per_minute` at once."""

    per_minute: int
    tokens: float | None = None  # None: full (a fresh automation)
    updated: datetime | None = None

    def take(self, now: datetime) -> bool:
        """Spend one firing if the budget allows it at `now`."""
        if self.per_minute <= 0:  # 0 or less: no limit
            return True
        tokens = float(self.per_minute) if self.tokens is None else self.tokens
        if self.updated is not None and now > self.updated:
            elapsed = (now - self.updated).total_seconds()
            tokens = min(float(self.per_minute), tokens + elapsed * self.per_minute / 60.0)
        self.updated = now if self.updated is None else max(now, self.updated)
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True
