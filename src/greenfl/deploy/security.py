"""The secrets of a deployment, both sides: the server's token (shared, or the secret that
per-client tokens derive from), the server's TLS pair, and the client's CA and its reading of
a failed handshake."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

from greenfl.core.errors import ConfigError
from greenfl.core.files import read_text


@dataclass(frozen=True)
class TlsFiles:
    """The server's certificate and private key, PEM."""

    cert_pem: bytes
    key_pem: bytes


def read_token(path: Path | None) -> str | None:
    """The token in ``path`` (surrounding whitespace stripped), or None without a file."""
    if path is None:
        return None
    text = read_text(path, f"--token-file {path}", ConfigError, max_bytes=64 * 1024).strip()
    if not text:
        raise ConfigError(f"--token-file {path}: the file is empty")
    return text


def client_token(secret: str, client_id: int) -> str:
    """Client ``client_id``'s own token under the server's ``secret`` (deploy.auth =
    "per_client"): an HMAC-SHA256 of the id, so it admits that id and no other, and the
    server stores nothing per client. ``greenfl serve --issue-token ID`` prints it."""
    mac = hmac.new(secret.encode("utf-8"), f"greenfl client {client_id}".encode(), hashlib.sha256)
    return f"gfl-{client_id}-{mac.hexdigest()}"


def read_tls(cert: Path | None, key: Path | None) -> TlsFiles | None:
    """The server's TLS pair, checked: both PEM, and the key the certificate's (gRPC would
    report a mismatch as a failure to bind the address)."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    files = TlsFiles(cert_pem=_read(cert, "--tls-cert"), key_pem=_read(key, "--tls-key"))
    check_pair(files, cert, key)
    return files


def check_pair(files: TlsFiles, cert: Path, key: Path) -> None:
    """ConfigError unless ``files`` are a PEM certificate and the private key of it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(files.cert_pem)
    except ValueError:
        raise ConfigError(f"--tls-cert {cert}: not a PEM certificate") from None
    try:
        private = serialization.load_pem_private_key(files.key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"--tls-key {key}: not an unencrypted PEM private key ({exc})") from None
    raw = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if private.public_key().public_bytes(*raw) != certificate.public_key().public_bytes(*raw):
        raise ConfigError(f"--tls-key {key} is not the private key of --tls-cert {cert}")


# What gRPC's details say on a failed handshake, and what it means for the user.
_TLS_CAUSES = (
    (
        "CERTIFICATE_VERIFY_FAILED",
        "the server's certificate is not signed by --ca-cert (unknown CA)",
    ),
    (
        "Hostname Verification",
        "the server's certificate does not name the host connected "
        "to (name mismatch; connect to a name in its subjectAltName, or --tls-server-name)",
    ),
    ("WRONG_VERSION_NUMBER", "the server does not speak TLS (started without --tls-cert?)"),
    ("handshake failed", "the TLS handshake failed"),
)


def tls_failure(details: str) -> str | None:
    """Why a TLS connection failed, from a gRPC error's details; None if it was not TLS."""
    lowered = details.lower()
    for marker, cause in _TLS_CAUSES:
        if marker.lower() in lowered:
            return f"TLS: {cause}"
    return None


def read_ca(path: Path | None) -> bytes | None:
    return None if path is None else _read(path, "--ca-cert")


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None
