"""The sandbox's bounds: a template cannot build a huge value, in memory or in output.

Each refusal is checked to happen before the value exists: tracemalloc's peak stays in the
kilobytes where building it would take gigabytes (and, for the powers, minutes).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from temporal_automations.domain.templates import (
    MAX_INT_BITS,
    MAX_OUTPUT,
    TemplateRenderError,
    has_template_syntax,
    render,
    template_variables,
)

# Far below any of the refused values, far above what the checks themselves allocate.
SMALL = 8 * 2**20


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """Yields a list that holds, afterwards, the peak bytes allocated inside the block."""
    peak: list[int] = []
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def refused(template: str, context: dict[str, object] | None = None) -> str:
    """The reason `template` is refused, checking the refusal built nothing big."""
    with peak_memory() as peak, pytest.raises(TemplateRenderError) as error:
        render(template, context or {})
    assert peak[0] < SMALL, f"{template!r} allocated {peak[0]} bytes before it was refused"
    return str(error.value)


# --------------------------------------------------------------------------- operators


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("{{ 'a' * 10**9 }}", f"'*' in the template would build a value over {MAX_OUTPUT} char"),
        ("{{ 'x' * 100001 }}", f"'*' in the template would build a value over {MAX_OUTPUT} char"),
        ("{{ 10**9 * 'a' }}", f"'*' in the template would build a value over {MAX_OUTPUT} char"),
        ("{{ [0] * 10**9 }}", f"'*' in the template would build a value over {MAX_OUTPUT} items"),
        ("{{ (1, 2) * 10**9 }}", "'*' in the template would build a value over"),
        ("{{ 'a'.encode() * 10**9 }}", "'*' in the template would build a value over"),
    ],
)
def test_repetition_cannot_build_a_huge_string_or_list(template: str, reason: str) -> None:
    assert reason in refused(template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ 10 ** (10 ** 10) }}",  # Python's reading of `10 ** 10 ** 10`
        "{{ (10 ** 10) ** (10 ** 10) }}",
        "{{ 2 ** 100000 }}",
        "{{ 10 ** 10 ** 10 ** 10 ** 10 }}",  # Jinja's `**` is left-associative: 10 ** 10000
    ],
)
def test_integer_powers_are_bounded(template: str) -> None:
    assert refused(template) == (
        f"'**' in the template would build a number over {MAX_INT_BITS} bits"
    )


def test_jinja_reads_a_power_tower_left_to_right_so_10_10_10_is_small() -> None:
    # Jinja parses `a ** b ** c` as `(a ** b) ** c`, unlike Python: 10 ** 100, not 10 ** 10**10.
    assert render("{{ 10 ** 10 ** 10 }}", {}) == str(10**100)


def test_repeated_squaring_and_doubling_in_a_loop_are_stopped() -> None:
    squaring = (
        "{% set ns = namespace(x=3) %}"
        "{% for i in range(100) %}{% set ns.x = ns.x * ns.x %}{% endfor %}{{ ns.x }}"
    )
    assert "'*' in the template would build a number over" in refused(squaring)
    doubling = (
        "{% set ns = namespace(s='ab') %}"
        "{% for i in range(100) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}"
    )
    assert "'+' in the template would build a value over" in refused(doubling)
    appending = (
        "{% set ns = namespace(l=[0]) %}"
        "{% for i in range(100) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l }}"
    )
    assert "'+' in the template would build a value over" in refused(appending)


@pytest.mark.parametrize(
    "template",
    [
        "{{ '%999999999s' % 'x' }}",
        "{{ '%.999999999f' % 1.5 }}",
        "{{ '%(a)999999999s' % {'a': 1} }}",
        "{{ '%*s' % (999999999, 'x') }}",
        "{{ '%0999999999999999999999999d' % 1 }}",
    ],
)
def test_printf_widths_are_bounded(template: str) -> None:
    assert "a '%' format width in the template would build a value over" in refused(template)


# --------------------------------------------------------------------------- ranges and joins


def test_a_join_over_the_bound_is_refused_before_it_is_built() -> None:
    reason = refused("{{ range(1000) | join('x' * 1000) }}")
    assert reason == f"'join' in the template would build a value over {MAX_OUTPUT} characters"
    assert "'join'" in refused("{{ (['y' * 100000] * 1000) | join }}")
    assert "'join'" in refused(
        "{{ items | join(',', attribute='name') }}", {"items": [{"name": "n" * 60_000}] * 2}
    )


def test_long_joined_ranges_stop_at_the_output_bound() -> None:
    template = "{% for i in range(1000) %}{{ range(1000) | join(',') }}{% endfor %}"
    assert refused(template) == f"rendered template is over {MAX_OUTPUT} characters"


# --------------------------------------------------------------------------- streamed output


class Counted:
    """A value that counts how often the template turned it into text."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.rendered = 0

    def __str__(self) -> str:
        self.rendered += 1
        return self.text


def test_output_is_refused_as_soon_as_it_passes_the_bound() -> None:
    chunk = Counted("x" * 1000)
    with pytest.raises(TemplateRenderError, match=f"over {MAX_OUTPUT} characters"):
        render("{% for i in range(1000) %}{{ chunk }}{% endfor %}", {"chunk": chunk})
    # Stopped at the first chunk past 100,000 characters, not after all 1,000.
    assert chunk.rendered == MAX_OUTPUT // 1000 + 1


def test_output_of_exactly_the_bound_is_allowed() -> None:
    assert render("{{ 'x' * 100000 }}", {}) == "x" * MAX_OUTPUT
    assert len(render("{% for i in range(100) %}{{ 'y' * 1000 }}{% endfor %}", {})) == MAX_OUTPUT


# --------------------------------------------------------------------------- ordinary templates


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ 3 * 4 }}", "12"),
        ("{{ 'ab' * 3 }}", "ababab"),
        ("{{ 3 * [1] }}", "[1, 1, 1]"),
        ("{{ 2 ** 10 }}", "1024"),
        ("{{ 2 ** -1 }}", "0.5"),
        ("{{ 4 ** 0.5 }}", "2.0"),
        ("{{ 2 ** 64 }}", str(2**64)),
        ("{{ 1.5 * 2 }}", "3.0"),
        ("{{ 'a' + 'b' }}", "ab"),
        ("{{ [1] + [2] }}", "[1, 2]"),
        ("{{ 1 + 2 }}", "3"),
        ("{{ 7 % 3 }}", "1"),
        ("{{ '%05.1f|%s|%d%%' % (3.14159, 'x', 50) }}", "003.1|x|50%"),
        ("{{ '%(n)s' % {'n': 1} }}", "1"),
        ("{{ '%*d' % (4, 7) }}", "   7"),
        ("{{ range(3) | join(', ') }}", "0, 1, 2"),
        ("{{ range(3) | join }}", "012"),
        ("{{ users | join('/', attribute='name') }}", "ann/bob"),
        ("{{ n - 1 }}|{{ n / 2 }}|{{ n // 2 }}", "1|1.0|1"),
    ],
)
def test_ordinary_arithmetic_and_joins_are_unchanged(template: str, expected: str) -> None:
    assert render(template, {"users": [{"name": "ann"}, {"name": "bob"}], "n": 2}) == expected


def test_undefined_operands_render_as_before() -> None:
    assert render("{{ missing.deeper }}", {}) == ""
    with pytest.raises(TemplateRenderError):
        render("{{ missing * 2 }}", {})


# --------------------------------------------------------------------------- the cheap path


@pytest.mark.parametrize(
    ("text", "templated"),
    [
        ("plain", False),
        ('{"a": 1}', False),
        ("50% off {x}", False),
        ("{{ x }}", True),
        ("{% if x %}{% endif %}", True),
        ("{# a comment #}", True),
    ],
)
def test_template_syntax_is_recognised_by_its_markers(text: str, templated: bool) -> None:
    assert has_template_syntax(text) is templated


def test_a_string_without_template_syntax_is_returned_as_is() -> None:
    payload = '{"a": 1}\n'
    assert render(payload, {}) is payload  # not even copied, and its newline kept


def test_template_variables_can_be_mutated_by_a_caller_without_harm() -> None:
    names = template_variables("{{ event.id }}")
    names.add("flow_run")
    assert template_variables("{{ event.id }}") == {"event"}


# --------------------------------------------------------------------------- memory errors


class Hungry:
    def __str__(self) -> str:
        raise MemoryError


def test_a_memory_error_is_left_for_the_renderer_to_report() -> None:
    # In a rendering process this is the memory limit; it must not pass as a template error.
    with pytest.raises(MemoryError):
        render("{{ x }}", {"x": Hungry()})
