"""Issue 29, items 5 and 9: a client that cannot join says why (TLS: which certificate
problem; the server's rate limit; an invalid port), and the server refuses a certificate
that clients would refuse. Certificates are made here with ``cryptography``; the servers are
in-process gRPC servers on loopback."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import re
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from greenfl.cli import main
from greenfl.core.errors import ConfigError, TransportError
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.client import ClientOptions, FederatedClient
from greenfl.deploy.client.diagnose import check_ca, check_server_address, tls_cause
from greenfl.deploy.security import TlsFiles
from greenfl.deploy.server.listener import check_certificate, check_listen_address
from greenfl.footprint.meters import NullMeter

DAY = datetime.timedelta(days=1)
NOW = datetime.datetime.now(datetime.timezone.utc)


def _pair(
    cn: str = "localhost",
    valid_from: datetime.datetime = NOW - DAY,
    days: float = 30,
    issuer: tuple[bytes, bytes] | None = None,
) -> tuple[bytes, bytes]:
    """A certificate (for ``cn`` and 127.0.0.1) and its key, PEM: self-signed, or signed
    by ``issuer`` (a CA's certificate and key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    sans = [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    signer, issuer_name = key, name
    if issuer is not None:
        signer = serialization.load_pem_private_key(issuer[1], None)  # type: ignore[assignment]
        issuer_name = x509.load_pem_x509_certificate(issuer[0]).subject
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid_from)
        .not_valid_after(valid_from + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


class _Refusing(pb_grpc.FederationServicer):
    """A server whose Join always refuses with ``code`` and ``details``."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self.code, self.details, self.calls = code, details, 0

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:  # noqa: N802
        self.calls += 1
        context.abort(self.code, self.details)
        raise AssertionError("abort returns no more")


def _serve(
    servicer: pb_grpc.FederationServicer, pair: tuple[bytes, bytes] | None
) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    pb_grpc.add_FederationServicer_to_server(servicer, server)
    if pair is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        creds = grpc.ssl_server_credentials([(pair[1], pair[0])])
        port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    return server, port


@pytest.fixture
def servers() -> Iterator[list[grpc.Server]]:
    started: list[grpc.Server] = []
    yield started
    for s in started:
        s.stop(None)


def _join(port: int, ca: bytes | None, retry_for_s: float = 3.0, name: str | None = None) -> str:
    """The TransportError a client joining ``localhost:port`` ends with."""
    opts = ClientOptions(
        f"localhost:{port}",
        0,
        ca_cert_pem=ca,
        tls_server_name=name,
        retry_for_s=retry_for_s,
        backoff_initial_s=0.05,
    )
    with pytest.raises(TransportError) as exc:
        FederatedClient(opts, NullMeter()).run()
    return str(exc.value)


# ---- TLS: the client names the certificate problem ----------------------------------------


def test_each_tls_failure_is_named_and_not_retried(servers: list[grpc.Server]) -> None:
    ca = _pair("greenfl test CA", days=365)
    good, stranger = _pair(), _pair()
    # Signed by a valid CA, so that only the server's own certificate is out of date.
    expired = _pair(valid_from=NOW - 30 * DAY, days=29, issuer=ca)  # expired yesterday
    future = _pair(valid_from=NOW + 5 * DAY, issuer=ca)
    ports = {}
    for tag, pair in [("good", good), ("expired", expired), ("future", future), ("plain", None)]:
        server, ports[tag] = _serve(_Refusing(grpc.StatusCode.UNAVAILABLE, "x"), pair)
        servers.append(server)
    # retry_for_s is long: each case must end at its first try, not by running out of time.
    cases = [
        (ports["expired"], ca[0], None, "TLS: the server's certificate has expired"),
        (ports["future"], ca[0], None, "TLS: the server's certificate is not valid yet"),
        (ports["good"], stranger[0], None, r"TLS: .*not signed by --ca-cert \(unknown CA\)"),
        (ports["good"], good[0], "wrong.example", r"TLS: .*\(name mismatch"),
        (ports["plain"], good[0], None, "TLS: the server does not speak TLS"),
        (ports["good"], None, None, "TLS: the server speaks TLS and this client connected "
         "without it"),
    ]  # fmt: skip
    for port, ca, name, expected in cases:
        message = _join(port, ca, retry_for_s=60, name=name)
        assert f"cannot connect to localhost:{port}: " in message
        assert "greenfl serve` running" not in message
        assert re.search(expected, message), (expected, message)


def test_an_expired_certificate_is_not_called_an_unknown_ca() -> None:
    details = (
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Tls "
        "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL "
        "routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired"
    )
    cause = tls_cause(details)
    assert cause is not None and "expired" in cause and "unknown CA" not in cause
    assert tls_cause("failed to connect to all addresses; Connection refused") is None


def test_a_ca_cert_that_is_garbage_a_key_or_expired_is_refused_before_connecting(
    tmp_path: Path,
) -> None:
    cert, key = _pair()
    old_cert, _ = _pair(valid_from=NOW - 30 * DAY, days=29)
    with pytest.raises(ConfigError, match="holds a private key, not a certificate"):
        check_ca(key, "--ca-cert k.pem")
    with pytest.raises(ConfigError, match="no PEM certificate in it"):
        check_ca(b"garbage\n", "--ca-cert g.pem")
    with pytest.raises(ConfigError, match="the certificate expired on"):
        check_ca(old_cert, "--ca-cert old.pem")
    check_ca(cert)  # a good one passes
    # Through the CLI: one line, exit 2, naming the file, before any connection is tried.
    (tmp_path / "key.pem").write_bytes(key)
    (tmp_path / "garbage.pem").write_text("garbage\n")
    for name, why in [("key.pem", "holds a private key"), ("garbage.pem", "no PEM certificate")]:
        args = ["join", "--server", "127.0.0.1:1", "--client-id", "0", "--meter", "none"]
        lines = _cli_error([*args, "--ca-cert", str(tmp_path / name), "--quiet"])
        assert why in lines[0] and name in lines[0]


def _cli_error(args: list[str]) -> list[str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    return lines


# ---- the server refuses a certificate its clients would refuse --------------------------


def test_the_server_refuses_an_expired_or_not_yet_valid_certificate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key = _pair(valid_from=NOW - 30 * DAY, days=29)
    with pytest.raises(ConfigError, match="the certificate expired on .* Renew it"):
        check_certificate(TlsFiles(cert, key))
    cert, key = _pair(valid_from=NOW + 2 * DAY)
    with pytest.raises(ConfigError, match="not valid until"):
        check_certificate(TlsFiles(cert, key))
    caplog.set_level(logging.WARNING, logger="greenfl.serve")
    cert, key = _pair(valid_from=NOW - DAY, days=4)  # 3 days left: under the 14-day warning
    check_certificate(TlsFiles(cert, key))
    assert any("expires on" in r.getMessage() for r in caplog.records)
    caplog.clear()
    cert, key = _pair(valid_from=NOW - DAY, days=100)
    check_certificate(TlsFiles(cert, key))
    assert not caplog.records


def test_serve_with_an_expired_certificate_exits_2_with_one_line(tmp_path: Path) -> None:
    cert, key = _pair(valid_from=NOW - 30 * DAY, days=29)
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    # join_timeout_s: were the certificate taken, the server would give up waiting at once.
    line = _cli_error(["serve", "--tls-cert", str(tmp_path / "c.pem"), "--tls-key",
                       str(tmp_path / "k.pem"), "--out", str(tmp_path / "run"), "--quiet",
                       "--set", "deploy.join_timeout_s=1"])[0]  # fmt: skip
    assert "expired on" in line
    assert not (tmp_path / "run" / "ledger.sqlite").exists()


# ---- addresses ----------------------------------------------------------------------------


def test_an_invalid_port_is_refused_at_once() -> None:
    for bad in ["127.0.0.1:99999", "127.0.0.1:0", "localhost", "127.0.0.1:x", ":50051"]:
        with pytest.raises(ConfigError, match="--server"):
            check_server_address(bad)
    check_server_address("127.0.0.1:50051")
    check_server_address("[::1]:50051")
    check_server_address("dns:///example.org:443")  # gRPC's own target syntax
    line = _cli_error(["join", "--server", "127.0.0.1:99999", "--client-id", "0",
                       "--meter", "none", "--quiet"])[0]  # fmt: skip
    assert "invalid port '99999'" in line
    with pytest.raises(ConfigError, match="invalid port '99999'"):
        check_listen_address("127.0.0.1:99999")
    with pytest.raises(ConfigError, match="expected HOST:PORT"):
        check_listen_address("nonsense")
    check_listen_address("127.0.0.1:0")
    with pytest.raises(ConfigError, match="cannot listen on 192.0.2.1:0: "):
        check_listen_address("192.0.2.1:0")  # TEST-NET-1: no address of this machine


def test_serve_on_a_busy_port_is_one_line_and_writes_no_ledger(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}: .*in use"):
            check_listen_address(f"127.0.0.1:{port}")
        line = _cli_error(["serve", "--address", f"127.0.0.1:{port}", "--out",
                           str(tmp_path / "run"), "--quiet",
                           "--set", "deploy.join_timeout_s=1"])[0]  # fmt: skip
    assert "in use" in line
    assert not (tmp_path / "run" / "ledger.sqlite").exists()


# ---- the server's refusals ----------------------------------------------------------------


def test_a_rate_limited_client_says_so_and_retries(
    servers: list[grpc.Server], caplog: pytest.LogCaptureFixture
) -> None:
    why = "rate-limited by the server: too many joins from ipv4:127.0.0.1 (deploy.join_rate_per_s)"
    servicer = _Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
    server, port = _serve(servicer, None)
    servers.append(server)
    caplog.set_level(logging.WARNING, logger="greenfl.join")
    message = _join(port, None, retry_for_s=0.5)
    assert message == f"the server at localhost:{port} did not admit this client for 0.5 s: {why}"
    assert servicer.calls >= 2  # retried: a rate limit passes
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings and all("rate-limited by the server" in w for w in warnings)
    assert not any("running there" in w for w in warnings)


def test_a_refusal_that_retrying_cannot_mend_ends_at_once(servers: list[grpc.Server]) -> None:
    servicer = _Refusing(grpc.StatusCode.RESOURCE_EXHAUSTED, "Join request over its limit")
    server, port = _serve(servicer, None)
    servers.append(server)
    message = _join(port, None, retry_for_s=60)
    assert message == f"server localhost:{port} refused: Join request over its limit"
    assert servicer.calls == 1
