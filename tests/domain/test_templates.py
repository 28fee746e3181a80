"""Action templates: what they see, and what the sandbox refuses."""

from __future__ import annotations

import pytest

from temporal_automations.domain.automations import DEFAULT_BODY, DEFAULT_SUBJECT, SECRET_MASK
from temporal_automations.domain.evaluation import Firing, bucket_key
from temporal_automations.domain.events import RESOURCE_ID, Event
from temporal_automations.domain.templates import (
    MAX_RANGE,
    TemplateRenderError,
    action_context,
    event_context,
    render,
    template_variables,
)
from tests.domain.builders import FAILED, at, automation, event, related, uid

RUN = f"prefect.flow-run.{uid(5)}"
DEPLOYMENT = f"prefect.deployment.{uid(6)}"


def failed_event() -> Event:
    return event(
        FAILED,
        10,
        RUN,
        id=uid(7),
        related=[related(DEPLOYMENT, "deployment", **{"prefect.resource.name": "etl"})],
        **{"prefect.resource.name": "brave-fox"},
    )


def firing(with_event: bool = True) -> Firing:
    labels = {RESOURCE_ID: RUN}
    return Firing(
        state="triggered",
        key=bucket_key(labels),
        labels=labels,
        event=failed_event() if with_event else None,
        occurred=at(20),
        window_start=at(0),
        window_end=at(60),
        count=3,
    )


def context(with_event: bool = True, **automation_fields: object) -> dict[str, object]:
    return action_context(automation(**automation_fields), firing(with_event), uid(8))


# --------------------------------------------------------------------------- what templates see


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ event.event }}", FAILED),
        ("{{ event.id }}", str(uid(7))),
        ("{{ event.occurred }}", at(10).isoformat().replace("+00:00", "Z")),
        ("{{ event.resource.id }}", RUN),
        ("{{ event.resource['prefect.resource.id'] }}", RUN),
        ("{{ event.resource.name }}", "brave-fox"),
        ("{{ event.related[0].id }}", DEPLOYMENT),
        ("{{ event.related[0].role }}", "deployment"),
        ("{{ event.related[0].name }}", "etl"),
        ("{{ labels['prefect.resource.id'] }}", RUN),
        ("{{ firing.id }}", str(uid(8))),
        ("{{ firing.state }}", "triggered"),
        ("{{ firing.count }}", "3"),
        ("{{ firing.occurred }}", at(20).isoformat()),
        (
            "{{ firing.window_start }}..{{ firing.window_end }}",
            f"{at(0).isoformat()}..{at(60).isoformat()}",
        ),
        ("{{ firing.key }}", bucket_key({RESOURCE_ID: RUN})),
        ("{{ automation.name }}", "watch runs"),
        ("{{ automation.id }}", str(uid(1))),
        ("{{ automation.trigger.posture }}", "Reactive"),
        ("{% for r in event.related %}{{ r.role }};{% endfor %}", "deployment;"),
        ("{{ event.resource.id | upper }}", RUN.upper()),
    ],
)
def test_renders_event_labels_firing_and_automation(template: str, expected: str) -> None:
    assert render(template, context()) == expected


@pytest.mark.parametrize(
    "template",
    [
        "{{ event.resource.id or labels['prefect.resource.id'] }}",
        "{{ firing.id }} {{ automation.name }} {% for e in events %}{{ e.id }}{% endfor %}",
        "{{ firings[0].count }} {{ resource_in_role.deployment.name }}",
    ],
)
def test_a_context_of_only_the_names_templates_use_renders_the_same(template: str) -> None:
    names = template_variables(template)
    narrow = action_context(automation(), firing(), uid(8), names)
    assert set(narrow) == names
    assert render(template, narrow) == render(template, context())


def test_event_is_empty_for_a_proactive_firing_without_one() -> None:
    ctx = context(with_event=False)
    assert ctx["event"] == {}
    assert render("{% if event %}yes{% else %}no{% endif %}", ctx) == "no"
    assert render("{{ event.resource.id }}", ctx) == ""  # undefined chains to nothing
    assert render("{{ labels['prefect.resource.id'] }}", ctx) == RUN


def test_event_context_gives_label_dicts_that_know_id_name_and_role() -> None:
    data = event_context(failed_event())
    assert data["resource"].id == RUN and data["resource"].role == ""
    assert data["related"][0].role == "deployment"
    assert event_context(None) == {}


def test_secret_headers_are_masked_in_the_context() -> None:
    ctx = context(
        actions=[
            {
                "type": "call-webhook",
                "url": "https://hooks.test/x",
                "headers": {"Authorization": "Bearer s3cret"},
            }
        ]
    )
    rendered = render("{{ automation.actions[0].headers }}", ctx)
    assert "s3cret" not in rendered and SECRET_MASK in rendered


def test_default_notification_templates_render_with_and_without_an_event() -> None:
    assert render(DEFAULT_SUBJECT, context()) == "Automation watch runs was triggered"
    with_event = render(DEFAULT_BODY, context())
    assert with_event.startswith("Automation watch runs was triggered at ")
    assert with_event.endswith(f" by {FAILED} on {RUN}.")
    without = render(DEFAULT_BODY, context(with_event=False))
    assert without == f"Automation watch runs was triggered at {at(20).isoformat()}."


def test_plain_text_is_returned_as_is() -> None:
    assert render("no braces here %}", {}) == "no braces here %}"


def test_output_is_not_html_escaped() -> None:
    assert render("{{ x }}", {"x": "<b>&</b>"}) == "<b>&</b>"


# --------------------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__name__ }}",
        "{{ event.__init__ }}",
        "{{ x|attr('__class__') }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ range.__globals__ }}",
        "{{ '{0.__class__}'.format('') }}",
        "{{ self._TemplateReference__context }}",
    ],
)
def test_unsafe_attributes_render_nothing(template: str) -> None:
    assert render(template, {"event": {}, "x": "a"}) == ""


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ ().__class__.__bases__[0].__subclasses__() }}",
        "{{ {}.__class__.__base__.__subclasses__() }}",
        "{{ x.__class__.__init__.__globals__['os'].system('true') }}",
        "{{ nothing() }}",
    ],
)
def test_unsafe_calls_raise_template_render_error(template: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(template, {"x": "a"})


def test_range_is_bounded() -> None:
    assert MAX_RANGE == 1000
    assert render("{{ range(1000) | list | length }}", {}) == "1000"
    assert render("{{ range(0, 2000, 2) | list | length }}", {}) == "1000"
    for template in (
        "{{ range(1001) | list | length }}",
        "{% for i in range(5000) %}{% endfor %}",
        "{{ range(0, 2002, 2) | list | length }}",
        "{{ range(10**9) | join }}",
    ):
        with pytest.raises(TemplateRenderError, match=r"range\(\) is limited to 1000 items"):
            render(template, {})


@pytest.mark.parametrize(
    "template",
    ["{{ unclosed", "{% for %}", "{% if x %}no endif", "{{ x | no_such_filter }}"],
)
def test_a_template_that_does_not_parse_raises_template_render_error(template: str) -> None:
    with pytest.raises(TemplateRenderError):
        render(template, {"x": 1})


def test_runtime_errors_raise_template_render_error() -> None:
    with pytest.raises(TemplateRenderError):
        render("{{ 1 / 0 }}", {})
    with pytest.raises(TemplateRenderError):
        render("{{ x + 1 }}", {"x": "a"})


def test_a_failed_render_does_not_poison_the_next() -> None:
    with pytest.raises(TemplateRenderError):
        render("{{ range(2000) | list }}", {})
    assert render("{{ n }}", {"n": 1}) == "1"


# --------------------------------------------------------------------------- variables


@pytest.mark.parametrize(
    ("template", "names"),
    [
        ("plain", set()),
        ("{{ event.resource.id }}", {"event"}),
        ("{{ flow_run.name }} on {{ deployment.name }}", {"flow_run", "deployment"}),
        ("{% set x = 1 %}{{ x }}{{ labels.y }}", {"labels"}),
        ("{% for t in flow_run.tags %}{{ t }}{{ loop.index }}{% endfor %}", {"flow_run"}),
        ("{% if work_pool %}{{ work_pool.name }}{% endif %}", {"work_pool"}),
        ("{{ range(3) | list }}", set()),  # a global, not something to fetch
    ],
)
def test_template_variables_finds_top_level_names(template: str, names: set[str]) -> None:
    assert template_variables(template) == names


def test_template_variables_of_a_broken_template_raise_template_render_error() -> None:
    with pytest.raises(TemplateRenderError):
        template_variables("{{ flow_run.name ")
