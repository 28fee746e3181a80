"""The HTTP front: automations CRUD, events ingest, health, and the Automations page."""
