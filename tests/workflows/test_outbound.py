"""The outbound guard (activities/outbound.py) against real HTTP servers on loopback: every
apprise scheme that makes a request, webhooks, redirects, DNS rebinding, failure reasons.

Names that must resolve to chosen addresses (a public one, a private one, a public one first
and loopback second) go through `ScriptedResolverFake`: a fake of DNS, which cannot run here
(no resolver we control, no network). It is the same `Resolver` seam production uses
(`SystemResolver`, getaddrinfo); everything after it — the check, the pinned connection, the
HTTP clients, the servers — is real."""

from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import re
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import aiohttp
import pytest
from apprise.apprise import N_MGR
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.exceptions import ApplicationError

from temporal_automations.activities import outbound
from temporal_automations.activities.outbound import OutboundPolicy, OutboundRefused

# --------------------------------------------------------------------------- real servers


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 that counts connections and requests and answers every
    request with `status`, `body` and `headers` (over TLS with `tls`)."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"{}",
        headers: dict | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self.status, self.body, self.headers = status, body, headers or {}
        self.connections = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append((self.command, self.path, dict(self.headers)))
                self.send_response(server.status)
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return self._server.server_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def target() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()


class ScriptedResolverFake:
    """A FAKE of DNS: `answers[name]` is the list of answers, one per lookup (the last one
    repeats). Records every lookup. Names it does not know fail to resolve."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        script = self.answers.get(host)
        if script is None:
            raise OutboundRefused(f"{host!r} does not resolve")
        return script[min(len(self.lookups_of(host)) - 1, len(script) - 1)]

    def lookups_of(self, host: str) -> list[str]:
        return [name for name in self.lookups if name == host]


PUBLIC = "1.1.1.1"  # nothing listens for us there (no network here): a connection fails fast
REFUSED = "private or loopback"

# --------------------------------------------------------------------------- address checks


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.1.2.3",
        "::1",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata (link-local)
        "fe80::1",
        "fc00::1",
        "100.64.0.1",  # shared address space (CGNAT)
        "0.0.0.0",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_refused_unless_allowed(address: str) -> None:
    resolver = ScriptedResolverFake({"inside.test": [[address]]})
    with pytest.raises(OutboundRefused, match=REFUSED):
        OutboundPolicy(resolver=resolver).addresses("inside.test", 80)
    assert OutboundPolicy(allow_private=True, resolver=resolver).addresses("inside.test", 80) == [
        address
    ]


def test_a_name_with_one_private_address_among_public_ones_is_refused() -> None:
    resolver = ScriptedResolverFake({"mixed.test": [[PUBLIC, "10.1.1.1"]]})
    with pytest.raises(OutboundRefused, match="10.1.1.1"):
        OutboundPolicy(resolver=resolver).addresses("mixed.test", 80)
    assert OutboundPolicy().addresses("1.1.1.1", 443) == ["1.1.1.1"]  # literal, no DNS


# --------------------------------------------------------------------------- apprise


def _schemes_with_a_host() -> list[tuple[str, list[str]]]:
    """Every apprise plugin whose module makes HTTP requests (`requests.`) and whose URL names
    the host it sends to: its class name and its URL templates with `{host}`."""
    found = []
    for plugin in N_MGR.plugins():
        source = inspect.getsource(sys.modules[plugin.__module__])
        templates = [t for t in (getattr(plugin, "templates", ()) or ()) if "{host}" in t]
        if "requests." in source and templates:
            found.append((plugin, templates))
    return found


_TOKEN_VALUES = ["abcdef0123456789abcdef0123456789", "1234567890", "user", "abc123"]


def _url_for(plugin: type, templates: list[str], host_port: str) -> str | None:
    """A URL apprise accepts for `plugin`, aimed at `host_port` (token values tried in turn)."""
    names = plugin.protocol or plugin.secure_protocol  # plain HTTP where the plugin has it
    protocol = names if isinstance(names, str) else names[0]
    for template in sorted(templates):
        for value in _TOKEN_VALUES:
            url = template.replace("{schema}", protocol)
            url = url.replace("{host}:{port}", host_port).replace("{host}", host_port)
            url = re.sub(r"\{[a-z_0-9]+\}", value, url)
            if outbound.is_notification_url(url):
                return url
    return None


def _aimed_urls(host_port: str) -> dict[str, str]:
    urls = {}
    for plugin, templates in _schemes_with_a_host():
        url = _url_for(plugin, templates, host_port)
        if url is not None:
            urls[plugin.__name__] = url
    return urls


def test_enumeration_covers_the_request_making_schemes() -> None:
    urls = _aimed_urls("127.0.0.1:9")
    # 47 plugins in apprise 2.3 name their host; the ones without a URL here send to a fixed
    # API host whatever the URL says (mailgun, sparkpost, …) or need hand-made tokens.
    assert len(_schemes_with_a_host()) >= 40
    assert len(urls) >= 30
    for scheme in ("NotifyJSON", "NotifyForm", "NotifyXML", "NotifyAppriseAPI", "NotifyNtfy"):
        assert scheme in urls


async def test_every_apprise_scheme_that_makes_a_request_is_refused_toward_loopback(
    target: ScriptedServer,
) -> None:
    urls = _aimed_urls(f"127.0.0.1:{target.port}")
    # Allowed, which of them make a request to the server they name? (Some need hand-made
    # tokens to send at all; our server's `{}` is not every service's answer, reaching it is
    # what counts.)
    requesting = {}
    for name, url in urls.items():
        before = target.connections
        with contextlib.suppress(ApplicationError, RuntimeError):
            await outbound.notify(OutboundPolicy(allow_private=True), [url], "s", "b")
        if target.connections > before:
            requesting[name] = url
    assert len(requesting) >= 25, sorted(requesting)
    print(f"{len(requesting)} of {len(urls)} schemes with a host made a request")
    for name in ("NotifyJSON", "NotifyForm", "NotifyXML", "NotifyAppriseAPI", "NotifyNtfy"):
        assert name in requesting

    reached = target.connections
    for name, url in requesting.items():
        with pytest.raises(ApplicationError) as error:
            await outbound.notify(OutboundPolicy(), [url], "subject", "body")
        assert error.value.non_retryable, name
        reason = str(error.value.message)
        assert REFUSED in reason and "127.0.0.1" in reason and "ALLOW_PRIVATE_WEBHOOKS" in reason
    assert target.connections == reached, "a refused scheme reached the loopback server"


@pytest.mark.parametrize("address", ["10.0.0.8", "169.254.169.254", "192.168.7.7"])
@pytest.mark.parametrize("scheme", ["json", "form", "xml", "apprise"])
async def test_apprise_schemes_are_refused_toward_private_and_link_local_names(
    scheme: str, address: str, target: ScriptedServer
) -> None:
    resolver = ScriptedResolverFake({"inside.test": [[address]]})
    url = f"{scheme}://inside.test:{target.port}/" + ("token" if scheme == "apprise" else "")
    with pytest.raises(ApplicationError, match=f"inside.test \\({re.escape(address)}\\)"):
        await outbound.notify(OutboundPolicy(resolver=resolver), [url], "s", "b")
    assert resolver.lookups == ["inside.test"]


@pytest.mark.parametrize("scheme", ["json", "form", "xml"])
async def test_dns_rebinding_public_then_loopback_is_refused_for_notifications(
    scheme: str, target: ScriptedServer
) -> None:
    """The name answers a public address first and loopback after: the guard asks once and
    connects to the address it checked, so the loopback server is never reached."""
    resolver = ScriptedResolverFake({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    url = f"{scheme}://rebind.test:{target.port}/"
    with pytest.raises((ApplicationError, RuntimeError)):
        await outbound.notify(OutboundPolicy(resolver=resolver), [url], "s", "b")
    assert resolver.lookups == ["rebind.test"]
    assert target.connections == 0


async def test_notification_redirects_are_not_followed(target: ScriptedServer) -> None:
    redirector = ScriptedServer(302, b"", {"Location": f"{target.url}/landing"})
    try:
        url = f"json://127.0.0.1:{redirector.port}/?+X-Token=secret-token"
        with pytest.raises(ApplicationError, match="redirects are not followed"):
            await outbound.notify(OutboundPolicy(allow_private=True), [url], "s", "b")
        assert len(redirector.requests) == 1
        assert target.connections == 0  # the custom header never travelled on
    finally:
        redirector.stop()


# --------------------------------------------------------------------------- webhooks


async def test_webhook_redirect_to_loopback_is_refused_and_headers_stay(
    target: ScriptedServer,
) -> None:
    redirector = ScriptedServer(307, b"", {"Location": f"{target.url}/landing"})
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(ApplicationError, match="answered 307; redirects are not followed"):
                await outbound.request(
                    http,
                    OutboundPolicy(allow_private=True),
                    "POST",
                    f"{redirector.url}/hook",
                    headers={"X-Token": "secret-token"},
                    data="{}",
                )
        assert [path for _, path, _ in redirector.requests] == ["/hook"]
        assert target.connections == 0
    finally:
        redirector.stop()


async def test_webhook_dns_rebinding_is_refused(target: ScriptedServer) -> None:
    resolver = ScriptedResolverFake({"rebind.test": [[PUBLIC], ["127.0.0.1"]]})
    policy = OutboundPolicy(resolver=resolver)
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for _ in range(2):
            with pytest.raises((ApplicationError, RuntimeError)):
                await outbound.request(
                    http, policy, "POST", f"http://rebind.test:{target.port}/", headers={}
                )
    assert target.connections == 0
    # Each request asked once; the second request's answer (loopback) is refused, not used.
    assert resolver.lookups == ["rebind.test", "rebind.test"]


async def test_webhook_connects_to_the_checked_address_with_the_name_as_host(
    target: ScriptedServer,
) -> None:
    resolver = ScriptedResolverFake({"hooks.test": [["127.0.0.1"], [PUBLIC]]})
    async with aiohttp.ClientSession() as http:
        status = await outbound.request(
            http,
            OutboundPolicy(allow_private=True, resolver=resolver),
            "POST",
            f"http://hooks.test:{target.port}/in",
            headers={"X-Token": "t"},
            data="{}",
        )
    assert status == 200
    ((method, path, headers),) = target.requests
    assert (method, path, headers["Host"], headers["X-Token"]) == (
        "POST",
        "/in",
        f"hooks.test:{target.port}",
        "t",
    )
    assert resolver.lookups == ["hooks.test"]


async def test_webhook_to_loopback_is_refused_by_default(target: ScriptedServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ApplicationError, match=REFUSED) as error:
            await outbound.request(http, OutboundPolicy(), "POST", f"{target.url}/", headers={})
    assert error.value.non_retryable
    assert target.connections == 0


async def test_failure_reason_has_the_status_and_a_short_scrubbed_excerpt_only() -> None:
    leaked = (
        b"<html>\n<body>Internal details: api_key=sk_live_4eC39HqLyjWDarjtT1zdp7dc\n"
        + b"stack trace line\r\n" * 500
        + b"</body></html>"
    )
    server = ScriptedServer(400, leaked)
    try:
        async with aiohttp.ClientSession() as http:
            with pytest.raises(ApplicationError) as error:
                await outbound.request(
                    http,
                    OutboundPolicy(allow_private=True),
                    "POST",
                    f"http://user:pw@127.0.0.1:{server.port}/hook?token=query-secret",
                    headers={},
                )
    finally:
        server.stop()
    reason = str(error.value.message)
    assert error.value.non_retryable
    assert reason.startswith(f"POST http://127.0.0.1:{server.port}/hook answered 400: <html>")
    assert len(reason) <= 200
    for secret in ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "query-secret", "pw@", "\n", "\r"):
        assert secret not in reason
    assert reason.count("stack trace line") < 10


def test_excerpt_bounds() -> None:
    assert outbound.excerpt(b"\xff\xfe ok \x00\x1b[31m") == "�� ok [31m"
    assert len(outbound.excerpt("x " * 10_000)) == outbound.EXCERPT_CHARS
    assert outbound.where("http://a:b@h.test:8080/p?q=1#f") == "http://h.test:8080/p"
    long_host = "https://hooks.a-rather-long-subdomain.example.com/services/T0/B0/"
    assert outbound.where(long_host + "XXXXXXXXXXXXXXXXXXXXXXXXXXXX") == long_host + "[…]"


def _certificate_for(name: str, folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (its own CA): (cert file, key file)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / f"{name}.pem", folder / f"{name}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


async def test_a_pinned_https_webhook_keeps_the_name_for_sni_and_the_certificate(
    tmp_path: Path,
) -> None:
    """Connected to the checked IP, TLS still verifies the certificate against the name (and
    sends it as SNI): a certificate for another name is refused."""
    cert_file, key_file = _certificate_for("hooks.test", tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert_file, key_file)
    server = ScriptedServer(tls=server_tls)
    resolver = ScriptedResolverFake({"hooks.test": [["127.0.0.1"]], "other.test": [["127.0.0.1"]]})
    policy = OutboundPolicy(allow_private=True, resolver=resolver)
    trust = ssl.create_default_context(cafile=str(cert_file))
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trust)) as http:
            status = await outbound.request(
                http, policy, "POST", f"https://hooks.test:{server.port}/in", headers={}, data="{}"
            )
            assert status == 200
            with pytest.raises(RuntimeError, match="CertificateError"):
                await outbound.request(
                    http, policy, "POST", f"https://other.test:{server.port}/in", headers={}
                )
        assert [headers["Host"] for _, _, headers in server.requests] == [
            f"hooks.test:{server.port}"
        ]
    finally:
        server.stop()


async def test_a_webhook_tries_the_next_checked_address_when_one_refuses(
    target: ScriptedServer,
) -> None:
    # The server listens on 127.0.0.1 only: 127.0.0.2 refuses the connection.
    resolver = ScriptedResolverFake({"dual.test": [["127.0.0.2", "127.0.0.1"]]})
    async with aiohttp.ClientSession() as http:
        status = await outbound.request(
            http,
            OutboundPolicy(allow_private=True, resolver=resolver),
            "POST",
            f"http://dual.test:{target.port}/in",
            headers={},
            data="{}",
        )
    assert status == 200
    assert len(target.requests) == 1
    assert resolver.lookups == ["dual.test"]
