"""Jinja templates for action fields, rendered in a sandbox that bounds what a template can build.

The sandbox refuses the cheap ways to build a huge value (`'a' * 10**9`, `10 ** (10 ** 10)`,
`range(10**9)`, a join of a long range with a long separator) and stops streaming output once it
passes MAX_OUTPUT characters. It cannot bound time (nested loops) or every way to use memory
(`'x'.center(10**9)`), so the worker renders in child processes with a time limit and a memory
limit (activities/rendering.py); this module stays pure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Generator, Mapping
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, cast
from uuid import UUID

from jinja2 import ChainableUndefined, Template, TemplateError, meta, nodes, pass_eval_context
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from temporal_automations.domain.evaluation import Firing
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE, Event

MAX_RANGE = 1_000
MAX_OUTPUT = 100_000
# Integers up to about 3,000 decimal digits: far past any count or id a template needs, and
# cheap to compute; `10 ** (10 ** 10)` would take minutes and gigabytes.
MAX_INT_BITS = 10_000


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


def has_template_syntax(template: str) -> bool:
    """Whether `template` needs Jinja at all; most strings in an action do not. `{{`, `{%` and
    `{#` are the only ways into Jinja syntax here (no line statements are configured)."""
    return "{{" in template or "{%" in template or "{#" in template


# --------------------------------------------------------------------------- the bounds


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateRenderError(f"range() is limited to {MAX_RANGE} items in templates")
    return numbers


_SEQUENCES = (str, bytes, bytearray, list, tuple)


def _too_long(built_with: str, value: object) -> TemplateRenderError:
    unit = "characters" if isinstance(value, str) else "items"
    return TemplateRenderError(
        f"{built_with} in the template would build a value over {MAX_OUTPUT} {unit}"
    )


def _too_big(built_with: str) -> TemplateRenderError:
    return TemplateRenderError(
        f"{built_with} in the template would build a number over {MAX_INT_BITS} bits"
    )


def _check_product(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, _SEQUENCES) and isinstance(times, int):
            if len(sequence) * times > MAX_OUTPUT:
                raise _too_long("'*'", sequence)
            return
    both_int = isinstance(left, int) and isinstance(right, int)
    if both_int and left.bit_length() + right.bit_length() > MAX_INT_BITS:
        raise _too_big("'*'")


def _check_power(base: Any, exponent: Any) -> None:
    # Only integer powers grow without bound; a float power overflows at once.
    integers = isinstance(base, int) and isinstance(exponent, int)
    if integers and abs(base) > 1 and exponent * base.bit_length() > MAX_INT_BITS:
        raise _too_big("'**'")


def _check_sum(left: Any, right: Any) -> None:
    # `{% set ns.s = ns.s + ns.s %}` in a loop doubles a string a thousand times.
    sequences = isinstance(left, _SEQUENCES) and isinstance(right, _SEQUENCES)
    if sequences and len(left) + len(right) > MAX_OUTPUT:
        raise _too_long("'+'", left)


# A printf-style conversion's width and precision: `%(name)-*.*f`, `%09d`, `%.3s`.
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _check_percent_format(template: Any, arguments: Any) -> None:
    # `'%999999999s' % x` pads to a gigabyte; widths and precisions must stay under the bound.
    if not isinstance(template, str | bytes) or "%" not in str(template):
        return
    text = template if isinstance(template, str) else template.decode(errors="replace")
    starred = False
    for match in _PERCENT_SPEC.finditer(text):
        for number in match.groups():
            if number == "*":
                starred = True
            elif number and (len(number) > 6 or int(number) > MAX_OUTPUT):
                raise _too_long("a '%' format width", text)
    if starred:
        values = arguments if isinstance(arguments, tuple) else (arguments,)
        if any(isinstance(value, int) and abs(value) > MAX_OUTPUT for value in values):
            raise _too_long("a '%' format width", text)


_BINOP_CHECKS = {
    "*": _check_product,
    "**": _check_power,
    "+": _check_sum,
    "%": _check_percent_format,
}


class _BoundedEnvironment(SandboxedEnvironment):
    """The sandbox, with the operators that can build huge values checked before they run.
    (Intercepted operators are also never constant-folded, so compiling stays cheap.)"""

    intercepted_binops = frozenset(_BINOP_CHECKS)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _BINOP_CHECKS[operator](left, right)
        return super().call_binop(context, operator, left, right)


@pass_eval_context
def _bounded_join(
    eval_ctx: EvalContext, value: Any, d: str = "", attribute: str | int | None = None
) -> str:
    """Jinja's `join` (autoescape is off here), refusing a result over MAX_OUTPUT characters
    before building it: `range(1000) | join('x' * 100000)` would be 100 MB."""
    if attribute is not None:
        value = map(make_attrgetter(eval_ctx.environment, attribute), value)
    separator = str(d)
    parts: list[str] = []
    size = -len(separator)
    for item in value:
        part = str(item)
        size += len(separator) + len(part)
        if size > MAX_OUTPUT:
            raise _too_long("'join'", separator)
        parts.append(part)
    return separator.join(parts)


_environment = _BoundedEnvironment(undefined=ChainableUndefined, autoescape=False)
_environment.globals["range"] = _bounded_range
_environment.filters["join"] = _bounded_join


class TemplateDateTime(datetime):
    """A datetime that prints as ISO 8601 (`2026-03-01T12:00:10Z`), as the JSON did, while
    templates can still compare it, format it (`strftime`) or read `.year`."""

    def __str__(self) -> str:
        return self.isoformat().replace("+00:00", "Z")


def _template_time(value: datetime | None) -> TemplateDateTime | None:
    if value is None:
        return None
    return TemplateDateTime(
        value.year, value.month, value.day, value.hour, value.minute, value.second,
        value.microsecond, value.tzinfo,
    )  # fmt: skip


def event_context(event: Event | None) -> dict[str, Any]:
    """The `event` a template sees: its JSON, with label dicts that know `.id` and
    `occurred` a datetime (as in Prefect's templates)."""
    if event is None:
        return {}
    data = event.model_dump(mode="json")
    data["occurred"] = _template_time(event.occurred)
    data["received"] = _template_time(event.received)
    data["resource"] = ResourceLabels(data["resource"])
    data["related"] = [ResourceLabels(labels) for labels in data["related"]]
    return data


def resources_in_role(event: Event | None) -> dict[str, ResourceLabels]:
    """`resource_in_role["deployment"]`: the first related resource with each role."""
    roles: dict[str, ResourceLabels] = {}
    for labels in event.related if event is not None else []:
        role = labels.get(RESOURCE_ROLE)
        if role and role not in roles:
            roles[role] = ResourceLabels(labels)
    return roles


def firing_context(firing: Firing, firing_id: UUID | None = None) -> dict[str, Any]:
    """One firing as templates see it: ours and Prefect's names (`triggered`,
    `trigger_states`, `triggering_labels`, `triggering_event`)."""
    return {
        "id": str(firing_id) if firing_id is not None else None,
        "state": firing.state,
        "key": firing.key,
        "path": firing.path,
        "occurred": firing.occurred.isoformat(),
        "triggered": _template_time(firing.occurred),
        "trigger_states": ["Triggered" if firing.state == "triggered" else "Resolved"],
        "triggering_labels": dict(firing.labels),
        "triggering_event": event_context(firing.event) or None,
        "window_start": firing.window_start.isoformat() if firing.window_start else None,
        "window_end": firing.window_end.isoformat() if firing.window_end else None,
        "count": firing.count,
        "lag_seconds": firing.lag_seconds,
    }


def template_variables(template: str) -> set[str]:
    """The top-level names a template uses, so costly objects are fetched only when used."""
    return set(_variables(template))


@lru_cache(maxsize=1024)
def _variables(template: str) -> frozenset[str]:
    # Asked for on every action (which Prefect objects to fetch, which context to send to a
    # rendering process); parsing each time cost more than the render itself.
    if not has_template_syntax(template):
        return frozenset()
    try:
        return frozenset(meta.find_undeclared_variables(_environment.parse(template)))
    except TemplateError as error:
        raise TemplateRenderError(f"template does not parse: {error}") from error


# What a template made only of text and substitutions of looked-up values contains
# (`{{ event.resource.id or labels["prefect.resource.id"] }}`): names, attributes, constant
# keys, and choices between them (`or`, `and`, `not`, `a if b else c`); no filter, call, test,
# arithmetic, comparison, loop or assignment.
_LOOKUP_NODES = (
    nodes.Output,
    nodes.TemplateData,
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Const,
    nodes.And,
    nodes.Or,
    nodes.Not,
    nodes.CondExpr,
)


@lru_cache(maxsize=1024)
def is_plain_lookup(template: str) -> bool:
    """Whether `template` only prints values it looks up: its time and memory are those of the
    values printed (the context's own, bounded), so it needs no process of its own to bound
    them. Most action templates are (`{{ event.resource.id }}`, `{{ flow_run.name }}`)."""
    if not has_template_syntax(template):
        return True
    try:
        tree = _environment.parse(template)
    except TemplateError:
        return False  # rendering reports it
    return all(isinstance(node, _LOOKUP_NODES) for node in tree.find_all(nodes.Node))


@lru_cache(maxsize=1024)
def _compiled(template: str) -> Template:
    # Compiling is most of a render's cost; an automation renders the same few templates.
    return _environment.from_string(template)


def render(template: str, context: Mapping[str, Any]) -> str:
    """`template` rendered with `context`, or TemplateRenderError with the reason. Output is
    streamed and abandoned as soon as it passes MAX_OUTPUT characters. MemoryError is left to
    propagate: it is the renderer's to report (activities/rendering.py), not a template error."""
    if not has_template_syntax(template):
        return template
    try:
        # jinja2 annotates generate() as an Iterator; it is a generator, and close() is what
        # stops the template's own code when the output is abandoned.
        stream = cast(Generator[str, None, None], _compiled(template).generate(context))
        try:
            parts: list[str] = []
            size = 0
            for part in stream:
                size += len(part)
                if size > MAX_OUTPUT:
                    raise TemplateRenderError(f"rendered template is over {MAX_OUTPUT} characters")
                parts.append(part)
        finally:
            stream.close()
    except (TemplateRenderError, MemoryError):
        raise
    except Exception as error:  # any failure inside a user's template is that template's error
        raise TemplateRenderError(f"template failed to render: {error}") from error
    return "".join(parts)


class TemplateAutomation(Protocol):
    """What templates see of an automation: the whole Automation (simulation) or the summary
    an action's request carries (activities/requests.py), both without their secrets."""

    def without_secrets(self) -> dict[str, Any]: ...


def action_context(
    automation: TemplateAutomation,
    firing: Firing,
    firing_id: UUID,
    names: Collection[str] | None = None,
) -> dict[str, Any]:
    """What an action's templates see: `automation`, `event`, `labels`, `firing`, `firings`
    (a composite's children's firings; the firing itself otherwise), `events` (their
    triggering events) and `resource_in_role`. `labels` are the triggering resource's labels
    with the firing key's over them, so `labels["prefect.resource.id"]` names the resource
    whether or not the trigger has a `for_each`.

    Only `names` of them when given (`template_variables` of the templates to render): each
    dumps the triggering event again, and building all of them was ~12% of the worker's CPU
    in a burst of webhooks whose payload names only `event` and `labels`."""
    children = firing.firings or [firing]

    def labels() -> dict[str, str]:
        found = dict(firing.event.resource) if firing.event is not None else {}
        found.update(firing.labels)
        return found

    builders: dict[str, Callable[[], Any]] = {
        "automation": automation.without_secrets,
        "event": lambda: event_context(firing.event),
        "labels": labels,
        "firing": lambda: firing_context(firing, firing_id),
        "firings": lambda: [firing_context(child) for child in children],
        "events": lambda: [
            event_context(child.event) for child in children if child.event is not None
        ],
        "resource_in_role": lambda: resources_in_role(firing.event),
    }
    return {name: build() for name, build in builders.items() if names is None or name in names}
