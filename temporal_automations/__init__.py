"""The running product: settings, the Temporal connection, and the `automations` CLI."""
