"""Secrets in automation definitions: webhook header values and notification URLs.

They are sealed (Fernet: AES with an HMAC) with a key the API and the worker share
(`SECRETS_KEY`) before a definition goes to Temporal, so workflow inputs, continue-as-new state,
updates and activity inputs hold ciphertext only; the action activity opens them just before it
uses them. Without a key they stay as they are (and are in history in the clear): the README
says so, and `automations dev` always makes a key.

Shown to people (memo, API responses, logs) they are masked; a client that sends the mask back
keeps the secret it stands for (`Automation.keeping_secrets_of`).
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken

from temporal_automations.domain.automations import (
    SECRET_MASK,
    Automation,
    actions_of,
    is_masked_url,
)

SEALED_PREFIX = "sealed:v1:"


class SecretUnavailable(ValueError):
    """A sealed value that this key cannot open (no key, or another one than the API's)."""


def is_sealed(value: str) -> bool:
    return value.startswith(SEALED_PREFIX) or f"://{SEALED_PREFIX}" in value


class SecretBox:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError) as error:
            raise ValueError(
                "SECRETS_KEY must be a Fernet key: 32 url-safe base64-encoded bytes "
                "(`automations secrets-key` makes one)"
            ) from error

    @staticmethod
    def new_key() -> str:
        return Fernet.generate_key().decode()

    def seal(self, value: str) -> str:
        if is_sealed(value) or value == SECRET_MASK or is_masked_url(value):
            return value  # already sealed, or a mask that stands for the stored secret
        return SEALED_PREFIX + self._fernet.encrypt(value.encode()).decode()

    def seal_url(self, url: str) -> str:
        """A URL sealed whole, its scheme left readable in front (`slack://sealed:v1:…`)."""
        if is_sealed(url) or is_masked_url(url):
            return url
        scheme = url.split("://", 1)[0] if "://" in url else "secret"
        return f"{scheme}://{self.seal(url)}"

    def open(self, value: str) -> str:
        if not is_sealed(value):
            return value
        token = value.split(SEALED_PREFIX, 1)[1]
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise SecretUnavailable(
                "a secret of this automation was sealed with another SECRETS_KEY than the worker's"
            ) from error


def open_secret(value: str, box: SecretBox | None) -> str:
    """`value` in the clear, for the activity that uses it."""
    if not is_sealed(value):
        return value
    if box is None:
        raise SecretUnavailable(
            "a secret of this automation is sealed, and the worker has no SECRETS_KEY"
        )
    return box.open(value)


def seal_automation(automation: Automation, box: SecretBox | None) -> Automation:
    """The definition with every secret sealed (unchanged without a key)."""
    if box is None:
        return automation
    data = automation.model_dump(mode="json")
    for action in actions_of(data):
        if action.get("headers"):
            action["headers"] = {name: box.seal(v) for name, v in action["headers"].items()}
        if action.get("type") == "send-notification" and action.get("url"):
            url = action["url"]
            sealed = box.seal_url(url) if isinstance(url, str) else [box.seal_url(u) for u in url]
            action["url"] = sealed
    return Automation.model_validate(data)
