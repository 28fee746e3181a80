"""Connecting to a TLS cluster with a client certificate (mTLS), as our settings describe it.

The dev server speaks only plaintext, so a TLS terminator stands in front of it: a real TLS
server (Python's ssl, ALPN h2, client certificates required, signed by a CA made here) that
forwards the decrypted gRPC stream to the dev server. The TLS handshake, the certificate checks
and the gRPC calls over it are all real."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import ipaddress
import os
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest

from temporal_automations.devserver import DevServer, free_port, stop_process
from temporal_automations.settings import Settings, TemporalConnection
from temporal_automations.temporal import TemporalConnectionError, connect_to, tls_config
from tests.stack import Stack
from tests.support import Receiver, send


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    server: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


class Pki:
    def __init__(self, folder: Path) -> None:
        ca_key = _key()
        ca = _certificate("test CA", ca_key, None, ca=True)
        issuer = (ca.subject, ca_key)
        self.ca = folder / "ca.pem"
        self.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        server_key = _key()
        self.server_cert = folder / "server.pem"
        self.server_cert.write_bytes(
            _certificate("localhost", server_key, issuer, server=True).public_bytes(
                serialization.Encoding.PEM
            )
        )
        self.server_key = _write_key(server_key, folder / "server.key")
        client_key = _key()
        self.client_cert = folder / "client.pem"
        self.client_cert.write_bytes(
            _certificate("automations", client_key, issuer).public_bytes(serialization.Encoding.PEM)
        )
        self.client_key = _write_key(client_key, folder / "client.key")


@contextlib.asynccontextmanager
async def tls_terminator(pki: Pki, upstream: DevServer) -> AsyncIterator[str]:
    """TLS (client certificate required) in, plaintext gRPC to the dev server out."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    context.load_cert_chain(str(pki.server_cert), str(pki.server_key))
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    host, port = upstream.address.split(":")

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()


@pytest.fixture(scope="module")
def dev_server() -> Iterator[DevServer]:
    with DevServer() as server:
        yield server


async def test_mtls_with_our_settings_connects_and_without_a_client_certificate_does_not(
    dev_server: DevServer, tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    async with tls_terminator(pki, dev_server) as address:
        settings = Settings(
            temporal_address=address,
            temporal_tls_cert=pki.client_cert,
            temporal_tls_key=pki.client_key,
            temporal_tls_ca=pki.ca,
            temporal_tls_server_name="localhost",
        )
        client = await connect_to(settings.engine_connection())
        answer = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
        assert answer.namespace_info.name == "default"

        without_certificate = TemporalConnection(
            address=address, tls_ca=pki.ca, tls_server_name="localhost"
        )
        with pytest.raises(RuntimeError):
            await asyncio.wait_for(connect_to(without_certificate), 20)


def test_tls_settings_that_cannot_work_are_refused(tmp_path: Path) -> None:
    assert tls_config(TemporalConnection(address="a:1")) is False
    assert tls_config(TemporalConnection(address="a:1", tls=True)) is True
    with pytest.raises(TemporalConnectionError, match="needs its key"):
        tls_config(TemporalConnection(address="a:1", tls_cert=tmp_path / "c.pem"))
    with pytest.raises(TemporalConnectionError, match="cannot read"):
        tls_config(TemporalConnection(address="a:1", tls_ca=tmp_path / "missing.pem"))


@contextlib.contextmanager
def terminator_thread(pki: Pki, upstream: DevServer) -> Iterator[str]:
    """The TLS terminator on a loop of its own, for processes that outlive one test's loop."""
    loop = asyncio.new_event_loop()
    ready: concurrent.futures.Future[str] = concurrent.futures.Future()
    stop = asyncio.Event()

    async def serve() -> None:
        async with tls_terminator(pki, upstream) as address:
            ready.set_result(address)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    try:
        yield ready.result(timeout=10)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()


def test_worker_and_api_run_over_mtls_and_an_automation_fires(
    tmp_path: Path, receiver: Receiver
) -> None:
    pki = Pki(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    with (
        DevServer(log_file=logs / "temporal.log") as server,
        terminator_thread(pki, server) as address,
    ):
        api_port = free_port()
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TLS_CERT": str(pki.client_cert),
            "TEMPORAL_TLS_KEY": str(pki.client_key),
            "TEMPORAL_TLS_CA": str(pki.ca),
            "TEMPORAL_TLS_SERVER_NAME": "localhost",
            "TASK_QUEUE": "automations-tls",
            "API_HOST": "127.0.0.1",
            "API_PORT": str(api_port),
            "API_URL": f"http://127.0.0.1:{api_port}/api",
            "ALLOW_PRIVATE_WEBHOOKS": "true",
            "TEMPORAL_UI_URL": "",
        }
        env.pop("API_KEY", None)
        stack = Stack(server, env, logs)
        try:
            stack.start_worker()
            stack.start_api()
            stack.wait_healthy()
            with stack.sync_client() as api:
                created = api.post(
                    "/automations/",
                    json={
                        "name": "over mTLS",
                        "trigger": {"posture": "Reactive", "expect": ["tls.test"]},
                        "actions": [{"type": "call-webhook", "url": f"{receiver.url}/tls"}],
                    },
                )
                assert created.status_code == 201, created.text
                send(api, {"event": "tls.test", "resource": {"prefect.resource.id": "tls.probe"}})
            assert receiver.wait_for(1, "/tls", timeout=60)
        finally:
            for process in (stack.api, stack.worker):
                stop_process(process)
