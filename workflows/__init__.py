"""Temporal workflows: one long-lived AutomationWorkflow per automation."""
