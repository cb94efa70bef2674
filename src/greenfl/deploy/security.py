"""The secrets of a deployment: the server's token (shared, or the secret that per-client
tokens derive from) and the TLS files."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

from greenfl.core.errors import ConfigError
from greenfl.core.files import read_text
from greenfl.deploy.servicer import TlsFiles


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
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise ConfigError("TLS needs both --tls-cert and --tls-key")
    return TlsFiles(cert_pem=_read(cert, "--tls-cert"), key_pem=_read(key, "--tls-key"))


def read_ca(path: Path | None) -> bytes | None:
    return None if path is None else _read(path, "--ca-cert")


def _read(path: Path, option: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{option} {path}: {exc.strerror or exc}") from None
