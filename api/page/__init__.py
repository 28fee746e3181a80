"""The Automations page: list, create/edit wizard and detail view, served from the API."""
