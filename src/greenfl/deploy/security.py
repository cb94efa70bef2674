"""The secrets of a deployment, both sides: the server's token (shared, or the secret that
per-client tokens derive from), the server's TLS pair, and the client's CA and its reading of
a failed handshake."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from greenfl.core.errors import ConfigError, GreenflError
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


# A token (format 2): "gfl2." + base64url(JSON claims) + "." + hex HMAC-SHA256 of that
# text under the server's secret. The claims are readable by anyone who holds the token (they
# are not secret: the MAC, not obscurity, makes them binding), and the server stores
# nothing per client but the revocation list.
TOKEN_PREFIX = "gfl2."
REVOCATION_FILE = "revoked_tokens.txt"
RUN_ID_FILE = "run_id"
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True)
class TokenClaims:
    """What a per-client token binds: the client id, the run (its run id; "" for a token
    bound to no run), its life (issued, expires: Unix seconds; expires 0: never) and, when
    the operator enrolled the client with the token, its device, network and region."""

    client_id: int
    run_id: str = ""
    issued_at: float = 0.0
    expires_at: float = 0.0
    device: str = ""
    network: str = ""
    region: str = ""

    @property
    def enrolled(self) -> bool:
        return bool(self.device)


class TokenError(GreenflError):
    """A token the server does not accept; the message says why (for the client)."""


def _mac(secret: str, body: str) -> str:
    return hmac.new(secret.encode("utf-8"), body.encode("ascii"), hashlib.sha256).hexdigest()


def issue_token(secret: str, claims: TokenClaims) -> str:
    """The token that carries ``claims`` under the server's ``secret``."""
    payload = {k: v for k, v in asdict(claims).items() if v not in ("", 0.0)}
    payload["client_id"] = int(claims.client_id)
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    body = base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
    return f"{TOKEN_PREFIX}{body}.{_mac(secret, body)}"


def client_token(secret: str, client_id: int, run_id: str = "", ttl_s: float = 0.0) -> str:
    """Client ``client_id``'s own token under the server's ``secret`` (deploy.auth =
    "per_client"): it admits that id and no other, in run ``run_id`` ("" any run of this
    secret), for ``ttl_s`` seconds (0: no expiry). ``greenfl serve --issue-token ID``
    prints one, bound to its run and with an expiry."""
    now = time.time()
    claims = TokenClaims(
        client_id=int(client_id),
        run_id=run_id,
        issued_at=now,
        expires_at=now + ttl_s if ttl_s > 0 else 0.0,
    )
    return issue_token(secret, claims)


def verify_token(
    secret: str,
    token: str,
    client_id: int,
    run_id: str,
    revoked: Mapping[int, float],
    now: float | None = None,
) -> TokenClaims:
    """The claims of ``token`` if it admits ``client_id`` to run ``run_id`` now, else
    TokenError naming why. ``revoked``: client id -> time of revocation (a token issued
    before it is refused; one issued after, for the same id, admits it again)."""
    if len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        raise TokenError("invalid token")
    body, _, mac = token[len(TOKEN_PREFIX) :].rpartition(".")
    expected = _mac_or_empty(secret, body)
    if not body or not hmac.compare_digest(mac.encode("ascii", "replace"), expected):
        raise TokenError("invalid token")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        fields = json.loads(raw)
        claims = TokenClaims(**fields)
    except (ValueError, TypeError):  # only the server's own secret signs, so: a bug
        raise TokenError("invalid token (unreadable claims)") from None
    if int(claims.client_id) != int(client_id):
        raise TokenError(
            f"invalid token: this token is client {claims.client_id}'s, not client {client_id}'s"
        )
    if claims.run_id and claims.run_id != run_id:
        raise TokenError(
            f"this token admits to run {claims.run_id}, not this server's run {run_id}"
        )
    t = time.time() if now is None else now
    if claims.expires_at and t >= claims.expires_at:
        raise TokenError(
            f"this token expired at {_utc(claims.expires_at)}; ask the operator for a new one"
        )
    revoked_at = revoked.get(int(client_id))
    if revoked_at is not None and claims.issued_at <= revoked_at:
        raise TokenError(
            f"client {client_id}'s token was revoked at {_utc(revoked_at)}; "
            "ask the operator for a new one"
        )
    return claims


def _mac_or_empty(secret: str, body: str) -> bytes:
    try:
        return _mac(secret, body).encode("ascii")
    except UnicodeEncodeError:  # a non-ASCII body was never signed by the server
        return b""


def _utc(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_id_of(run_dir: Path, create: bool = True) -> str:
    """The id of the run in ``run_dir`` (its ``run_id`` file), made on first use: tokens
    issued for this folder admit to this run only."""
    path = run_dir / RUN_ID_FILE
    if path.is_file():
        text = read_text(path, f"{path}", ConfigError, max_bytes=1024).strip()
        if text:
            return text
    if not create:
        return ""
    rid = secrets.token_hex(8)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(rid + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the run id ({exc.strerror or exc})") from None
    return rid


def revoke_token(run_dir: Path, client_id: int, now: float | None = None) -> float:
    """Revoke client ``client_id``'s tokens issued until now, for the run in ``run_dir``
    (a line appended to its revocation list, which the server reads at each join)."""
    t = time.time() if now is None else now
    path = run_dir / REVOCATION_FILE
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as f:
            f.write(f"{int(client_id)} {t:.6f}\n")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return t


def read_revocations(path: Path) -> dict[int, float]:
    """client id -> its latest revocation time, from a revocation list (missing: none).
    A malformed line is skipped: the file is the operator's, written by --revoke-token."""
    if not path.is_file():
        return {}
    out: dict[int, float] = {}
    text = read_text(path, f"{path}", ConfigError, max_bytes=16 * 1024 * 1024)
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 2:
            continue
        try:
            cid, at = int(parts[0]), float(parts[1])
        except ValueError:
            continue
        out[cid] = max(at, out.get(cid, at))
    return out


class Revocations:
    """A run's revocation list, read again whenever the file changes (its mtime and
    size), so ``greenfl serve --revoke-token`` takes effect on a running server."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._revoked: dict[int, float] = {}
        self._lock = threading.Lock()

    def current(self) -> Mapping[int, float]:
        """client id -> when its tokens were last revoked (any thread)."""
        if self.path is None:
            return self._revoked
        with self._lock:
            return self._read(self.path)

    def _read(self, path: Path) -> Mapping[int, float]:
        try:
            st = path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = (0, 0)
        if stamp != self._stamp:
            self._revoked = read_revocations(path) if stamp != (0, 0) else {}
            self._stamp = stamp
        return self._revoked


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
