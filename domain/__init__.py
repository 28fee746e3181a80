"""The pure domain: events, automations, matching, trigger evaluation and templates.

Nothing here imports Temporal, FastAPI or the network; everything else depends on it.
"""
