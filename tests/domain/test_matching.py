"""docs/semantics.md "Matching": label globs, resource and related specs, names, for_each keys."""

from __future__ import annotations

import pytest

from temporal_automations.domain.evaluation import bucket_key
from temporal_automations.domain.events import RESOURCE_ID, RESOURCE_ROLE
from temporal_automations.domain.matching import (
    label_matches,
    name_matches,
    related_matches,
    resource_matches,
)
from tests.domain.builders import event, related, trigger

# --------------------------------------------------------------------------- one label


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        # exact
        ("prefect.flow-run.abc", "prefect.flow-run.abc", True),
        ("prefect.flow-run.abc", "prefect.flow-run.abcd", False),
        # * any run of characters, including none and dots
        ("prefect.flow-run.*", "prefect.flow-run.abc", True),
        ("prefect.flow-run.*", "prefect.flow-run.", True),
        ("*", "", True),
        ("*", "anything at all", True),
        ("prefect.flow-run.*", "prefect.deployment.abc", False),
        # Prefect knows only a trailing * and a leading !: ?, [..] and an inner * are literal
        ("run-?", "run-7", False),
        ("run-?", "run-?", True),
        ("run-[ab]", "run-a", False),
        ("run-[ab]", "run-[ab]", True),
        ("run-[!0-9]", "run-x", False),
        ("prefect.*.abc", "prefect.flow-run.abc", False),
        ("prefect.*.abc", "prefect.*.abc", True),
        # case-sensitive, pattern and value alike
        ("Prefect.*", "prefect.flow-run.x", False),
        ("prefect.*", "PREFECT.flow-run.x", False),
        ("PROD", "prod", False),
        ("prod", "prod", True),
        # a leading ! negates the whole glob
        ("!prod", "dev", True),
        ("!prod", "prod", False),
        ("!prefect.flow-run.*", "prefect.deployment.1", True),
        ("!prefect.flow-run.*", "prefect.flow-run.1", False),
        ("!run-?", "run-1", True),
        ("!run-?", "run-?", False),
        # a label the resource does not have never matches, negated or not
        ("*", None, False),
        ("", None, False),
        ("!anything", None, False),
        ("!*", None, False),
    ],
)
def test_label_matches(pattern: str, value: str | None, expected: bool) -> None:
    assert label_matches(pattern, value) is expected


def test_an_empty_label_value_is_present_not_missing() -> None:
    assert label_matches("", "")
    assert label_matches("!x", "")
    assert not label_matches("?", "")
    assert label_matches("*", "")  # a trailing * on a label value is a prefix match


# --------------------------------------------------------------------------- resource specs

LABELS = {RESOURCE_ID: "prefect.flow-run.1", "env": "prod", "team": "data"}


def test_empty_spec_matches_everything() -> None:
    assert resource_matches({}, LABELS)
    assert resource_matches({}, {})


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"env": "prod"}, True),
        ({"env": "dev"}, False),
        # AND over labels
        ({"env": "prod", "team": "data"}, True),
        ({"env": "prod", "team": "web"}, False),
        ({"env": "dev", "team": "data"}, False),
        ({"env": "prod", RESOURCE_ID: "prefect.flow-run.*"}, True),
        ({"env": "prod", RESOURCE_ID: "prefect.work-queue.*"}, False),
        # OR over the values of one label
        ({"env": ["dev", "prod"]}, True),
        ({"env": ["dev", "test"]}, False),
        ({"env": ["d*", "p*"]}, True),
        ({"env": []}, False),  # no value can match
        # negation inside the spec
        ({"env": "!dev"}, True),
        ({"env": "!prod"}, False),
        ({"env": "!prod", "team": "data"}, False),
        # a list is an OR even of negations: "not prod OR not dev" holds for any value
        ({"env": ["!prod", "!dev"]}, True),
        # a label the resource lacks fails the spec, negated or not
        ({"owner": "*"}, False),
        ({"owner": "!alice"}, False),
        ({"owner": ["!alice", "*"]}, False),
        ({"env": "prod", "owner": "!alice"}, False),
    ],
)
def test_resource_spec(spec: dict[str, str | list[str]], expected: bool) -> None:
    assert resource_matches(spec, LABELS) is expected


# --------------------------------------------------------------------------- related specs

DEPLOYMENT = related("prefect.deployment.d1", "deployment", **{"prefect.resource.name": "etl"})
NIGHTLY = related("prefect.tag.nightly", "tag")
PROD_TAG = related("prefect.tag.prod", "tag")
RELATED = [DEPLOYMENT, NIGHTLY, PROD_TAG]


def test_empty_related_spec_matches_with_or_without_related_resources() -> None:
    assert related_matches({}, RELATED)
    assert related_matches({}, [])
    assert related_matches([], [])
    assert related_matches([], RELATED)


def test_one_spec_is_met_by_any_related_resource() -> None:
    assert related_matches({RESOURCE_ROLE: "deployment"}, RELATED)
    assert related_matches({RESOURCE_ID: "prefect.tag.prod"}, RELATED)  # the last one
    assert related_matches({RESOURCE_ID: "prefect.tag.*", RESOURCE_ROLE: "tag"}, RELATED)
    assert not related_matches({RESOURCE_ID: "prefect.tag.weekly"}, RELATED)
    assert not related_matches({RESOURCE_ROLE: "deployment"}, [])


def test_one_spec_must_be_met_by_a_single_related_resource() -> None:
    # role "tag" is on the tags, the deployment id on the deployment: no single resource has both.
    assert not related_matches({RESOURCE_ROLE: "tag", RESOURCE_ID: "prefect.deployment.*"}, RELATED)
    assert related_matches({RESOURCE_ROLE: "deployment", "prefect.resource.name": "etl"}, RELATED)


def test_a_list_of_specs_needs_every_spec_met() -> None:
    deployment = {RESOURCE_ROLE: "deployment"}
    nightly = {RESOURCE_ID: "prefect.tag.nightly"}
    prod = {RESOURCE_ID: "prefect.tag.prod"}
    weekly = {RESOURCE_ID: "prefect.tag.weekly"}
    assert related_matches([deployment], RELATED)
    assert related_matches([deployment, nightly], RELATED)
    assert related_matches([deployment, nightly, prod], RELATED)
    assert not related_matches([deployment, weekly], RELATED)
    assert not related_matches([weekly, deployment], RELATED)
    assert not related_matches([deployment, nightly], [DEPLOYMENT])
    # the same resource may satisfy several specs
    assert related_matches([nightly, {RESOURCE_ROLE: "tag"}], [NIGHTLY])


def test_related_negation_is_per_resource() -> None:
    # "some related resource is not the nightly tag": the deployment is one.
    assert related_matches({RESOURCE_ID: "!prefect.tag.nightly"}, RELATED)
    assert not related_matches({RESOURCE_ID: "!prefect.tag.nightly"}, [NIGHTLY])
    # a missing label never matches, so no related resource means no match
    assert not related_matches({RESOURCE_ID: "!prefect.tag.nightly"}, [])


# --------------------------------------------------------------------------- event names


def test_event_name_globs() -> None:
    assert name_matches(["prefect.flow-run.*"], "prefect.flow-run.Failed")
    assert not name_matches(["x", "prefect.flow-run.Fail??"], "prefect.flow-run.Failed")
    assert name_matches(["prefect.flow-run.Fail??"], "prefect.flow-run.Fail??")
    # a trailing * on an event name needs one or more further characters
    assert not name_matches(["prefect.flow-run.*"], "prefect.flow-run.")
    assert not name_matches(["prefect.*.Failed"], "prefect.flow-run.Failed")
    # a leading ! negates
    assert name_matches(["!prefect.flow-run.Completed"], "prefect.flow-run.Failed")
    assert not name_matches(["!prefect.flow-run.*"], "prefect.flow-run.Failed")
    assert not name_matches(["prefect.flow-run.failed"], "prefect.flow-run.Failed")
    assert not name_matches([], "anything")


def test_covers_uses_names_resource_and_related() -> None:
    failed = event(
        "prefect.flow-run.Failed",
        resource="prefect.flow-run.1",
        related=[DEPLOYMENT, NIGHTLY],
        env="prod",
    )
    assert trigger(posture="Reactive").covers(failed)
    assert trigger(posture="Reactive", expect=["prefect.flow-run.*"]).covers(failed)
    assert trigger(posture="Reactive", after=["prefect.flow-run.Failed"], expect=["z"]).covers(
        failed
    )
    assert not trigger(posture="Reactive", expect=["prefect.flow-run.Completed"]).covers(failed)
    assert trigger(posture="Reactive", match={"env": "prod"}).covers(failed)
    assert not trigger(posture="Reactive", match={"env": "dev"}).covers(failed)
    assert not trigger(posture="Reactive", match={"missing": "!x"}).covers(failed)
    assert trigger(posture="Reactive", match_related={RESOURCE_ROLE: "deployment"}).covers(failed)
    assert not trigger(posture="Reactive", match_related={RESOURCE_ROLE: "work-queue"}).covers(
        failed
    )
    assert trigger(
        posture="Reactive",
        match_related=[{RESOURCE_ROLE: "deployment"}, {RESOURCE_ID: "prefect.tag.nightly"}],
    ).covers(failed)
    assert not trigger(
        posture="Reactive",
        match_related=[{RESOURCE_ROLE: "deployment"}, {RESOURCE_ID: "prefect.tag.weekly"}],
    ).covers(failed)


def test_empty_expect_expects_any_event() -> None:
    t = trigger(posture="Reactive")
    assert t.expects("anything") and t.expects("prefect.flow-run.Running")
    assert not t.starts_after("anything")  # no `after`: nothing opens a window by name


# --------------------------------------------------------------------------- for_each keys


def test_no_for_each_gives_one_key_for_everything() -> None:
    t = trigger(posture="Reactive")
    a, b = event("x", resource="prefect.flow-run.a"), event("x", resource="prefect.flow-run.b")
    assert t.bucket_labels(a) == t.bucket_labels(b) == {}
    assert bucket_key(t.bucket_labels(a)) == bucket_key(t.bucket_labels(b))


def test_for_each_reads_resource_labels_and_missing_labels_give_empty_strings() -> None:
    t = trigger(posture="Reactive", for_each=[RESOURCE_ID, "env"])
    assert t.bucket_labels(event("x", resource="prefect.flow-run.a", env="prod")) == {
        RESOURCE_ID: "prefect.flow-run.a",
        "env": "prod",
    }
    assert t.bucket_labels(event("x", resource="prefect.flow-run.a")) == {
        RESOURCE_ID: "prefect.flow-run.a",
        "env": "",
    }


def test_for_each_labels_are_sorted_so_the_key_does_not_depend_on_their_order() -> None:
    e = event("x", resource="prefect.flow-run.a", env="prod")
    one = trigger(posture="Reactive", for_each=["env", RESOURCE_ID])
    other = trigger(posture="Reactive", for_each=[RESOURCE_ID, "env", "env"])
    assert one.for_each == other.for_each == sorted({"env", RESOURCE_ID})
    assert list(one.bucket_labels(e)) == sorted(one.bucket_labels(e))
    assert bucket_key(one.bucket_labels(e)) == bucket_key(other.bucket_labels(e))


def test_for_each_keys_differ_by_value() -> None:
    t = trigger(posture="Reactive", for_each=[RESOURCE_ID])
    a = bucket_key(t.bucket_labels(event("x", resource="prefect.flow-run.a")))
    b = bucket_key(t.bucket_labels(event("x", resource="prefect.flow-run.b")))
    a_again = bucket_key(t.bucket_labels(event("y", 99, resource="prefect.flow-run.a")))
    assert a != b and a == a_again


def test_related_role_label_reads_the_first_related_resource_with_that_role() -> None:
    label = "related:deployment:prefect.resource.id"
    t = trigger(posture="Reactive", for_each=[label])
    e = event(
        "x",
        related=[
            related("prefect.tag.a", "tag"),
            related("prefect.deployment.first", "deployment"),
            related("prefect.deployment.second", "deployment"),
        ],
    )
    assert t.bucket_labels(e) == {label: "prefect.deployment.first"}


def test_related_role_label_missing_role_or_label_gives_empty_string() -> None:
    t = trigger(
        posture="Reactive",
        for_each=["related:work-queue:prefect.resource.id", "related:deployment:team"],
    )
    e = event(
        "x",
        related=[
            related("prefect.deployment.first", "deployment"),  # no "team" on the first
            related("prefect.deployment.second", "deployment", team="data"),
        ],
    )
    assert t.bucket_labels(e) == {
        "related:deployment:team": "",
        "related:work-queue:prefect.resource.id": "",
    }


def test_related_role_label_reads_any_label_of_the_related_resource() -> None:
    t = trigger(posture="Reactive", for_each=["related:deployment:prefect.resource.name"])
    e = event("x", related=[DEPLOYMENT])
    assert t.bucket_labels(e) == {"related:deployment:prefect.resource.name": "etl"}


def test_related_keys_bucket_runs_of_one_deployment_together() -> None:
    t = trigger(posture="Reactive", for_each=["related:deployment:prefect.resource.id"])
    d1 = related("prefect.deployment.d1", "deployment")
    d2 = related("prefect.deployment.d2", "deployment")
    run_a = t.bucket_labels(event("x", resource="prefect.flow-run.a", related=[d1]))
    run_b = t.bucket_labels(event("x", resource="prefect.flow-run.b", related=[d1]))
    run_c = t.bucket_labels(event("x", resource="prefect.flow-run.c", related=[d2]))
    assert bucket_key(run_a) == bucket_key(run_b) != bucket_key(run_c)
