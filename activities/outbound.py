"""The one guard for every request an action makes to a target the user named: webhooks
(aiohttp) and every apprise notification (requests, smtplib and other sockets).

- The address checked is the address connected to: a name is resolved once, each address is
  checked, and the connection goes to that checked address (the name is kept for the Host
  header and TLS's SNI and certificate check). A name that answers a public address at the
  check and loopback at the connect (DNS rebinding) never gets its second answer asked for.
- Loopback, private, link-local, shared (CGNAT), reserved and multicast addresses are refused
  unless the `allow_private_webhooks` setting allows them (one setting for every action).
- Redirects are not followed: a 3xx fails the action, so custom headers (tokens) never travel
  to a host the user did not name.
- A failure reason carries the status and at most a short, scrubbed excerpt of the answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import aiohttp
import apprise
import requests.sessions
import urllib3.util.connection
from yarl import URL

from temporal_automations.activities.errors import ActionErrorType
from temporal_automations.activities.http import RETRYABLE_STATUS, RefusedAnswer, fail

EXCERPT_CHARS = 120
_READ_BYTES = 4096  # of an answer's body, for the excerpt; the rest is never read


class OutboundRefused(OSError):
    """The guard refused to connect (an OSError, so HTTP clients report it as a connection
    failure and stop; the guard keeps the reason to name it in the action's failure)."""


class Resolver(Protocol):
    """Names to addresses; blocking (the guard calls it off the event loop)."""

    def resolve(self, host: str, port: int) -> list[str]: ...


class SystemResolver:
    def resolve(self, host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as error:
            raise OutboundRefused(f"{host!r} does not resolve: {error}") from error
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


# Both pure, and asked for on every webhook: parsing the address each time was ~3% of the
# worker's CPU in a burst (py-spy).
@lru_cache(maxsize=1024)
def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


@lru_cache(maxsize=1024)
def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class OutboundPolicy:
    allow_private: bool = False
    resolver: Resolver = field(default_factory=SystemResolver)

    def addresses(self, host: str, port: int) -> list[str]:
        """`host`'s addresses, resolved once; every one is checked, or none is returned."""
        literal = _ip_literal(host)
        addresses = [literal] if literal else self.resolver.resolve(host, port)
        if not addresses:
            raise OutboundRefused(f"{host!r} has no address")
        if not self.allow_private:
            for address in addresses:
                if not is_public(address):
                    raise OutboundRefused(
                        f"{host} ({address}) is a private or loopback address, not a public one; "
                        "set ALLOW_PRIVATE_WEBHOOKS=true to allow actions to reach it"
                    )
        return addresses


# ---------------------------------------------------------------------------- reasons


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")
# Runs that look like tokens, keys or hashes (24+ characters of base64/hex/url-safe alphabets).
_TOKENISH = re.compile(r"[A-Za-z0-9+=_\-]{24,}")  # no "." or "/": hosts and paths stay readable


def excerpt(raw: bytes | str, limit: int = EXCERPT_CHARS) -> str:
    """At most `limit` characters of an answer, one line, token-like runs replaced."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = " ".join(_CONTROL.sub(" ", text).split())
    text = _TOKENISH.sub("[…]", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def where(url: str) -> str:
    """A URL as a reason shows it: no user, password, query or fragment (they carry tokens)."""
    try:
        parsed = URL(url)
        host = parsed.host_port_subcomponent or ""
        path = _TOKENISH.sub("[…]", parsed.raw_path)  # e.g. /services/T000/B000/<token>
        shown = f"{parsed.scheme}://{host}{path}"
    except (ValueError, TypeError):
        return "(an unparseable URL)"
    return shown if len(shown) <= 100 else shown[:99] + "…"


# ---------------------------------------------------------------------------- webhooks


async def request(
    http: aiohttp.ClientSession,
    policy: OutboundPolicy,
    method: str,
    url: str,
    *,
    headers: dict[str, str],
    data: str | None = None,
    json: Any = None,
) -> int:
    """One guarded request; its status. 3xx and 4xx (but 408/425/429) fail permanently, 5xx,
    timeouts and refused connections raise a plain error (retried)."""
    try:
        target = URL(url)
        host, port = target.host, target.port
    except (ValueError, TypeError) as error:
        raise fail(f"not a URL: {where(url)}") from error
    if target.scheme not in ("http", "https") or not host or port is None:
        raise fail(f"not an http(s) URL: {where(url)}")
    try:
        if _ip_literal(host):  # nothing to look up: no thread (the hot path of a burst)
            addresses = policy.addresses(host, port)
        else:
            addresses = await asyncio.to_thread(policy.addresses, host, port)
    except OutboundRefused as error:
        refused = f"{method} {where(url)} refused: {error}"
        raise fail(refused, ActionErrorType.OUTBOUND_REFUSED) from None
    headers = {**headers, "Host": target.host_port_subcomponent or host}
    tls: dict[str, Any] = {"server_hostname": host} if target.scheme == "https" else {}
    status, body = await _first_answer(
        http, method, url, [target.with_host(ip) for ip in addresses], headers, data, json, tls
    )
    if status < 300:
        return status
    reason = f"{method} {where(url)} answered {status}"
    if 300 <= status < 400:
        raise fail(f"{reason}; redirects are not followed", ActionErrorType.OUTBOUND_REFUSED)
    if body:
        reason += f": {excerpt(body)}"
    if status < 500 and status not in RETRYABLE_STATUS:
        raise RefusedAnswer(reason, status)
    raise RuntimeError(reason)  # retried


async def _first_answer(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    pinned: list[URL],
    headers: dict[str, str],
    data: str | None,
    json: Any,
    tls: dict[str, Any],
) -> tuple[int, bytes]:
    """The answer from the first checked address that takes the connection (a dual-stack
    name's IPv6 address may be unreachable from here); nothing is sent twice, as a connection
    error comes before the request is written."""
    failure: Exception | None = None
    for address in pinned:
        try:
            async with http.request(
                method, address, headers=headers, data=data, json=json, allow_redirects=False, **tls
            ) as response:
                body = await response.content.read(_READ_BYTES) if response.status >= 300 else b""
                return response.status, body
        except aiohttp.ClientConnectorError as error:
            failure = error
        except (aiohttp.ClientError, TimeoutError) as error:
            failure = error
            break
    assert failure is not None
    raise RuntimeError(f"{method} {where(url)} failed: {type(failure).__name__}") from None


# ---------------------------------------------------------------------------- notifications


class _GuardedCall:
    """One notification's guard: every connection it opens, through any library, goes through
    `connect`; what was refused is kept for the failure reason."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy
        self.refusals: list[str] = []

    def refuse(self, reason: str) -> OutboundRefused:
        self.refusals.append(reason)
        return OutboundRefused(reason)

    def connect(
        self,
        original: Callable[..., socket.socket],
        address: tuple[str, int],
        *args: Any,
        **kw: Any,
    ) -> socket.socket:
        host, port = address
        try:
            addresses = self.policy.addresses(str(host).strip("[]"), int(port))
        except OutboundRefused as error:
            raise self.refuse(str(error)) from None
        last: OSError | None = None
        for ip in addresses:
            try:
                return original((ip, port), *args, **kw)
            except OSError as error:
                last = error
        assert last is not None
        raise last


_active: ContextVar[_GuardedCall | None] = ContextVar("outbound_guard", default=None)
# Notifications block a thread for as long as the service takes (seconds, at worst apprise's
# timeouts): threads of their own, so they never queue the default executor's name lookups.
_NOTIFIERS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="notify")
_install_lock = threading.Lock()
_installed = False


def _install() -> None:
    """Route the blocking clients apprise uses through the guard of the calling notification
    (a context variable, so nothing else in the process is affected): urllib3 (requests, so
    every HTTP scheme), `socket.create_connection` (smtplib and the other socket schemes),
    and requests' redirects (not followed)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        urllib3_connect = urllib3.util.connection.create_connection
        socket_connect = socket.create_connection
        redirect_target = requests.sessions.Session.get_redirect_target

        def guarded_urllib3(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
            call = _active.get()
            if call is None:
                return urllib3_connect(address, *args, **kw)
            return call.connect(urllib3_connect, address, *args, **kw)

        def guarded_socket(address: tuple[str, int], *args: Any, **kw: Any) -> socket.socket:
            call = _active.get()
            if call is None:
                return socket_connect(address, *args, **kw)
            return call.connect(socket_connect, address, *args, **kw)

        def no_redirects(self: requests.sessions.Session, response: Any) -> str | None:
            target = redirect_target(self, response)
            call = _active.get()
            if call is None or target is None:
                return target
            call.refusals.append(
                f"{where(response.url)} answered {response.status_code}; redirects are not followed"
            )
            return None

        urllib3.util.connection.create_connection = guarded_urllib3
        # Patched process-wide: each guard wraps the call it replaces, with a looser signature.
        socket.create_connection = guarded_socket  # type: ignore[assignment]
        requests.sessions.Session.get_redirect_target = no_redirects  # type: ignore[method-assign,assignment]
        _installed = True


def _notify_one(call: _GuardedCall, plugin: Any, title: str, body: str) -> bool:
    token = _active.set(call)  # this thread's, for this call only
    try:
        return bool(plugin.notify(body=body, title=title))
    finally:
        _active.reset(token)


def scheme(url: str) -> str:
    # Apprise URLs carry tokens; a reason names only the scheme.
    return url.split("://", 1)[0][:40]


async def notify(policy: OutboundPolicy, urls: list[str], title: str, body: str) -> None:
    """Send through apprise, every connection guarded. A refused connection or redirect fails
    permanently with its reason; a service that did not take the message raises a plain error
    (retried)."""
    _install()
    plugins = []
    for url in urls:
        plugin = apprise.Apprise.instantiate(url)
        if plugin is None:
            raise fail(f"not a notification URL apprise understands: {scheme(url)}://…")
        plugins.append((url, plugin))
    calls = [_GuardedCall(policy) for _ in plugins]
    loop = asyncio.get_running_loop()
    results = await asyncio.gather(
        *(
            loop.run_in_executor(_NOTIFIERS, _notify_one, call, plugin, title, body)
            for call, (_, plugin) in zip(calls, plugins, strict=True)
        )
    )
    for call, (url, _), sent in zip(calls, plugins, results, strict=True):
        if call.refusals:
            refused = f"{scheme(url)}:// notification refused: {call.refusals[0][:300]}"
            raise fail(refused, ActionErrorType.OUTBOUND_REFUSED)
        if not sent:
            raise RuntimeError(f"the {scheme(url)}:// service did not accept the message")


def is_notification_url(url: str) -> bool:
    return apprise.Apprise.instantiate(url) is not None
