"""TimerLead: how much earlier a deadline's timer is armed (workflows/timer_lead.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporal_automations.workflows.timer_lead import FIRST_LEAD, LEAD_SAMPLES, MAX_LEAD, TimerLead

DEADLINE = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def ms(value: float) -> timedelta:
    return timedelta(milliseconds=value)


def test_no_lead_before_a_timer_has_said_how_late_it_was() -> None:
    assert TimerLead().lead_for(DEADLINE) == timedelta(0)


def test_the_lead_is_the_least_lateness_of_the_last_timers() -> None:
    lead = TimerLead()
    for lateness in (9, 7, 12, 8):
        lead.observe(ms(lateness))
    assert lead.lead_for(DEADLINE) == ms(7)


def test_only_the_last_samples_count() -> None:
    lead = TimerLead()
    lead.observe(ms(1))  # pushed out by the next LEAD_SAMPLES
    for _ in range(LEAD_SAMPLES):
        lead.observe(ms(6))
    assert lead.lead_for(DEADLINE) == ms(6)


def test_a_lead_is_at_most_max_lead() -> None:
    lead = TimerLead()
    lead.observe(ms(2_000))  # the worker was down when the timer fired
    assert lead.lead_for(DEADLINE) == MAX_LEAD


def test_a_deadline_gets_its_lead_once_so_an_early_wake_waits_for_the_deadline_itself() -> None:
    lead = TimerLead()
    lead.observe(ms(8))
    assert lead.lead_for(DEADLINE) == ms(8)
    assert lead.lead_for(DEADLINE) == timedelta(0)  # armed again after waking early
    assert lead.lead_for(DEADLINE + ms(100)) == ms(8)  # the next deadline


def test_a_negative_lateness_is_not_a_sample() -> None:
    lead = TimerLead()
    lead.observe(ms(-3))
    assert lead.lead_for(DEADLINE) == timedelta(0)


def test_with_the_patch_a_runs_first_deadline_is_led_by_first_lead_once() -> None:
    lead = TimerLead(lead_first=True)
    assert lead.lead_for(DEADLINE) == FIRST_LEAD
    assert lead.lead_for(DEADLINE) == timedelta(0)  # armed again after waking early
    lead.observe(ms(8))
    assert lead.lead_for(DEADLINE + ms(100)) == ms(8)  # then the measured lead, as before
