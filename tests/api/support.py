"""Stand-ins the in-process API tests give the app in place of what its lifespan would connect
(each named for what it replaces; they record what they were asked, so tests can check it)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RecordingLag:
    """Forwards nothing; remembers each (source, seconds) reported, as LagForwarder.report."""

    reports: list[tuple[str, float]] = field(default_factory=list)

    def report(self, source: str, seconds: float) -> None:
        self.reports.append((source, seconds))
