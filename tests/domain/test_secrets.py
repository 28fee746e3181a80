"""Secrets of a definition: sealed before they go to Temporal, masked where people see them,
opened only by the activity that uses them, kept when a client sends the mask back."""

from __future__ import annotations

import json

import pytest

from temporal_automations.domain.automations import SECRET_MASK, Automation
from temporal_automations.domain.secrets import (
    SecretBox,
    SecretUnavailable,
    is_sealed,
    open_secret,
    seal_automation,
)
from tests.domain.builders import automation

WEBHOOK = {
    "type": "call-webhook",
    "url": "https://example.com/hook",
    "headers": {"Authorization": "Bearer s3cr3t"},
}
NOTIFY = {"type": "send-notification", "url": ["slack://tokA/tokB/tokC", "json://host/path"]}


def with_secrets() -> Automation:
    return automation(actions=[WEBHOOK], actions_on_resolve=[NOTIFY])


def test_sealed_definitions_hold_no_secret_in_the_clear_and_open_with_the_key() -> None:
    box = SecretBox(SecretBox.new_key())
    sealed = seal_automation(with_secrets(), box)
    text = sealed.model_dump_json()
    for secret in ("s3cr3t", "tokA", "json://host"):
        assert secret not in text
    header = sealed.actions[0].headers["Authorization"]
    assert is_sealed(header) and open_secret(header, box) == "Bearer s3cr3t"
    urls = sealed.actions_on_resolve[0].urls
    assert [open_secret(u, box) for u in urls] == NOTIFY["url"]
    # Sealing is idempotent, and what is not a secret is untouched.
    assert seal_automation(sealed, box) == sealed
    assert sealed.actions[0].url == WEBHOOK["url"]


def test_no_key_leaves_definitions_as_they_are() -> None:
    plain = with_secrets()
    assert seal_automation(plain, None) is plain
    assert open_secret("Bearer x", None) == "Bearer x"


def test_a_sealed_secret_without_the_right_key_is_a_clear_error() -> None:
    sealed = seal_automation(with_secrets(), SecretBox(SecretBox.new_key()))
    header = sealed.actions[0].headers["Authorization"]
    with pytest.raises(SecretUnavailable, match="no SECRETS_KEY"):
        open_secret(header, None)
    with pytest.raises(SecretUnavailable, match="another SECRETS_KEY"):
        open_secret(header, SecretBox(SecretBox.new_key()))
    with pytest.raises(ValueError, match="Fernet key"):
        SecretBox("not a key")


def test_people_see_masks_and_sending_them_back_keeps_the_sealed_secrets() -> None:
    box = SecretBox(SecretBox.new_key())
    sealed = seal_automation(with_secrets(), box)
    shown = sealed.without_secrets()
    assert shown["actions"][0]["headers"] == {"Authorization": SECRET_MASK}
    assert shown["actions_on_resolve"][0]["url"] == [
        f"slack://{SECRET_MASK}",
        f"json://{SECRET_MASK}",
    ]
    assert "sealed:" not in json.dumps(shown)
    edited = Automation.model_validate({**shown, "name": "renamed"})
    kept = seal_automation(edited.keeping_secrets_of(sealed), box)
    assert kept.actions == sealed.actions and kept.actions_on_resolve == sealed.actions_on_resolve
    assert kept.name == "renamed"
