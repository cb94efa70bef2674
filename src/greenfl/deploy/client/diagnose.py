"""Why a client could not join, in words that name the cause: the address, the CA file it
was given, a failed TLS handshake (expired, not yet valid, unknown CA, name mismatch, a
server that does or does not speak TLS) or the server's rate limit. Each is checked where it
can be, before connecting; the rest is read from gRPC's error after a failed call."""

from __future__ import annotations

import datetime
import socket
import ssl

from greenfl.core.errors import ConfigError

MAX_PORT = 65_535


def check_server_address(server: str) -> None:
    """ConfigError unless ``server`` is HOST:PORT with a port in 1..65535 (gRPC would
    silently take port 99999 modulo 65536). Targets with a scheme (``dns:///...``,
    ``unix:...``) are gRPC's to parse."""
    if "://" in server or server.startswith(("unix:", "unix-abstract:")):
        return
    host, sep, port = server.rpartition(":")
    if not sep or not host or host in ("[", "[]"):
        raise ConfigError(f"--server {server!r}: expected HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= MAX_PORT:
        raise ConfigError(f"--server {server}: invalid port {port!r} (1..{MAX_PORT})")


def check_ca(pem: bytes, where: str = "--ca-cert") -> None:
    """ConfigError unless ``pem`` (``where``: the option and file it came from) holds PEM
    certificates, none expired: a private key or any other file there would only fail each
    handshake, unexplained."""
    from cryptography import x509

    if b"PRIVATE KEY-----" in pem:
        raise ConfigError(
            f"{where} holds a private key, not a certificate: give the server's "
            "certificate (or its CA's), and keep the key on the server"
        )
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ConfigError(
            f"{where}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)"
        ) from None
    now = datetime.datetime.now(datetime.timezone.utc)
    for cert in certs:
        if cert.not_valid_after_utc < now:
            raise ConfigError(
                f"{where}: the certificate expired on "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; get the renewed one"
            )


# Markers in gRPC's error details after a failed handshake, most specific first (an expired
# certificate is also a CERTIFICATE_VERIFY_FAILED).
_TLS_CAUSES = (
    ("certificate has expired", "the server's certificate has expired (renew it on the server)"),
    (
        "certificate is not yet valid",
        "the server's certificate is not valid yet (check the clocks of both machines)",
    ),
    (
        "hostname verification",
        "the server's certificate does not name the host connected to (name mismatch; "
        "connect to a name in its subjectAltName, or --tls-server-name)",
    ),
    (
        "certificate_verify_failed",
        "the server's certificate is not signed by --ca-cert (unknown CA)",
    ),
    ("wrong_version_number", "the server does not speak TLS (started without --tls-cert?)"),
    (
        "failed to create security handshaker",
        "--ca-cert could not be used as a trust root",
    ),
    ("handshake failed", "the TLS handshake failed"),
)


def tls_cause(details: str) -> str | None:
    """Why a TLS connection failed, from a gRPC error's details; None if it was not TLS."""
    lowered = details.lower()
    for marker, cause in _TLS_CAUSES:
        if marker in lowered:
            return f"TLS: {cause}"
    return None


def speaks_tls(server: str, timeout_s: float = 3.0) -> bool:
    """Whether a TLS handshake with ``server`` (HOST:PORT) succeeds, certificate unchecked:
    asked once, after a plain connection was closed by the other end."""
    host, _, port = server.rpartition(":")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only whether the other end answers in TLS
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw:
            with ctx.wrap_socket(raw, server_hostname=host.strip("[]") or None):
                return True
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        return False


def plain_against_tls(details: str) -> bool:
    """Whether a plain (no TLS) call's failure looks like a TLS server hanging up on it."""
    return "socket closed" in details.lower() or "connection reset" in details.lower()
