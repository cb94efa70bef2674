"""Reading the secrets of a deployment: the shared token and the TLS files."""

from __future__ import annotations

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
