"""Jinja templates for action fields, rendered in a sandbox with bounded ranges and output."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from uuid import UUID

from jinja2 import ChainableUndefined, Template, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from temporal_automations.domain.automations import Automation
from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event

MAX_RANGE = 1_000
MAX_OUTPUT = 100_000


class TemplateRenderError(ValueError):
    """A template that does not parse or render; fails the one action that uses it."""


class ResourceLabels(dict[str, str]):
    """A resource's labels, with `.id`, `.name` and `.role` as in Prefect's templates."""

    @property
    def id(self) -> str:
        return self.get(RESOURCE_ID, "")

    @property
    def name(self) -> str:
        return self.get("prefect.resource.name", "")

    @property
    def role(self) -> str:
        return self.get(RESOURCE_ROLE, "")


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateRenderError(f"range() is limited to {MAX_RANGE} items in templates")
    return numbers


_environment = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_environment.globals["range"] = _bounded_range


def event_context(event: Event | None) -> dict[str, Any]:
    """The `event` a template sees: its JSON, with label dicts that know `.id`."""
    if event is None:
        return {}
    data = event.model_dump(mode="json")
    data["resource"] = ResourceLabels(data["resource"])
    data["related"] = [ResourceLabels(labels) for labels in data["related"]]
    return data


def template_variables(template: str) -> set[str]:
    """The top-level names a template uses, so costly objects are fetched only when used."""
    try:
        return meta.find_undeclared_variables(_environment.parse(template))
    except TemplateError as error:
        raise TemplateRenderError(f"template does not parse: {error}") from error


@lru_cache(maxsize=1024)
def _compiled(template: str) -> Template:
    # Compiling is most of a render's cost; an automation renders the same few templates.
    return _environment.from_string(template)


def render(template: str, context: Mapping[str, Any]) -> str:
    if "{" not in template:
        return template
    try:
        output = _compiled(template).render(context)
    except TemplateRenderError:
        raise
    except Exception as error:  # any failure inside a user's template is that template's error
        raise TemplateRenderError(f"template failed to render: {error}") from error
    if len(output) > MAX_OUTPUT:
        raise TemplateRenderError(f"rendered template is over {MAX_OUTPUT} characters")
    return output


def action_context(automation: Automation, firing: Firing, firing_id: UUID) -> dict[str, Any]:
    """What an action's templates see: `automation`, `event`, `labels` and `firing`."""
    return {
        "automation": automation.without_secrets(),
        "event": event_context(firing.event),
        "labels": dict(firing.labels),
        "firing": {
            "id": str(firing_id),
            "state": firing.state,
            "key": firing.key,
            "occurred": firing.occurred.isoformat(),
            "window_start": firing.window_start.isoformat() if firing.window_start else None,
            "window_end": firing.window_end.isoformat() if firing.window_end else None,
            "count": firing.count,
        },
    }
