"""The listening gRPC server of a deployment: its message limits, TLS, and the gate that
checks a call's session and size before its payload is read.

Memory before authentication is bounded by one small per-message limit for the whole
server (``RECEIVE_CAP_BYTES``): gRPC's Python server has one ``max_receive_message_length``
per server and no per-method limit, and its core refuses a message over it from the
message's length prefix, before the payload is buffered. The two large requests (an update,
a SecAgg submission) arrive as a stream of chunks under that limit, only from a live session
(``SessionGate``), and are reassembled up to their own caps. What a refused call may still
have sent is bounded by a pinned HTTP/2 receive window (``RECEIVE_WINDOW_BYTES``)."""

from __future__ import annotations

import datetime
import logging
import socket
from collections.abc import Callable, Iterator
from concurrent import futures

import grpc

from greenfl.core.errors import ConfigError, TransportError
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.security import TlsFiles
from greenfl.deploy.wire import SESSION_KEY

log = logging.getLogger("greenfl.serve")

# An update's cap sits above deploy.max_message_mb, so that a moderately oversized update
# still reaches validation and is rejected with a logged reason in the ledger; beyond the
# cap the server refuses it (RESOURCE_EXHAUSTED) and the client reports an error.
GRPC_CAP_FACTOR = 2
GRPC_CAP_HEADROOM_BYTES = 1 << 20

# The largest single message the server receives, on any method. A client uploads larger
# requests in chunks (greenfl.deploy.client.link.UPLOAD_CHUNK_BYTES, well under this).
# A flood of oversized Join or Tasks calls from anyone costs at most this (plus HTTP/2's
# flow-control window) per call in flight: measured in bench/preauth_flood.py.
RECEIVE_CAP_BYTES = 1 << 20

# HTTP/2 receive window a stream is granted, pinned. gRPC's default grows each window from
# the measured bandwidth-delay product; a server slowed by load measures a long delay and
# grants tens of MB a connection, which a flood of oversized calls then fills before each
# is refused (12 calls on a busy 2-core host: 22-338 MB, 11-25 MB pinned; the test suite's
# flood and bench/preauth_flood.py). 4 MiB still lets one upload run at 4 MiB per round trip:
# 30 MB/s measured at 100 ms, far above a phone's uplink (bench/upload_window.py).
RECEIVE_WINDOW_BYTES = 4 << 20


def session_of(context: grpc.ServicerContext) -> str | None:
    """The session id an RPC's metadata names, if any."""
    for key, value in context.invocation_metadata():
        if key == SESSION_KEY:
            return str(value)
    return None


# The small RPCs' own size caps, far under the update's: a Join is a token and a few
# names, a Tasks request a session id. (SecAggSubmit's cap is the model's masked vector
# plus room for the shares; see secagg_cap_bytes.)
SMALL_RPC_CAP_BYTES = 64 * 1024


def secagg_cap_bytes(numel: int) -> int:
    """A SecAggSubmit's largest plausible size: the masked uint32 vector, and 1 MiB for
    the shares, the revealed keys and the framing."""
    return 4 * numel + (1 << 20)


def _refuse_unread(requests: Iterator[bytes], context: grpc.ServicerContext) -> None:
    # Never iterates ``requests``: gRPC then never asks for the message, so a forged update
    # is not received (HTTP/2 flow control holds the sender back) before it is refused.
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown session; join again")


def _capped(handler: grpc.RpcMethodHandler, name: str, cap_bytes: int) -> grpc.RpcMethodHandler:
    """``handler`` (unary request) taking raw bytes: a request over ``cap_bytes`` is
    refused before protobuf parses it."""
    parse, behaviour = handler.request_deserializer, handler.unary_unary or handler.unary_stream

    def check(raw: bytes, context: grpc.ServicerContext) -> object:
        if len(raw) > cap_bytes:
            _too_large(context, name, len(raw), cap_bytes)
        return behaviour(parse(raw) if parse is not None else raw, context)

    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            check, response_serializer=handler.response_serializer
        )
    return grpc.unary_unary_rpc_method_handler(
        check, response_serializer=handler.response_serializer
    )


def _assembled(handler: grpc.RpcMethodHandler, name: str, cap_bytes: int) -> grpc.RpcMethodHandler:
    """``handler`` (unary-unary) served as a client stream of raw chunks, concatenated into
    its one request: a serialized protobuf split anywhere and joined is the same message.
    A plain unary call is a stream of one chunk (under ``RECEIVE_CAP_BYTES``). The chunks
    are counted as they come, and the call refused as soon as they pass ``cap_bytes``."""
    parse, behaviour = handler.request_deserializer, handler.unary_unary

    def assemble(chunks: Iterator[bytes], context: grpc.ServicerContext) -> object:
        parts: list[bytes] = []
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > cap_bytes:
                parts.clear()  # let go of what came before refusing
                _too_large(context, name, total, cap_bytes)
            parts.append(chunk)
        raw = b"".join(parts)
        parts.clear()
        return behaviour(parse(raw) if parse is not None else raw, context)

    return grpc.stream_unary_rpc_method_handler(
        assemble, response_serializer=handler.response_serializer
    )


def _too_large(context: grpc.ServicerContext, name: str, size: int, cap_bytes: int) -> None:
    context.abort(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        f"{name} request of {size}+ bytes is over its {cap_bytes}-byte limit",
    )


def update_cap_bytes(max_message_bytes: int) -> int:
    """The largest update the server receives: above deploy.max_message_mb (see
    ``GRPC_CAP_FACTOR``)."""
    return max_message_bytes * GRPC_CAP_FACTOR + GRPC_CAP_HEADROOM_BYTES


class SessionGate(grpc.ServerInterceptor):
    """Authenticates SubmitUpdate and SecAggSubmit from their metadata before the payload
    is even received: a call from no live session is refused with a handler that never
    reads its request. A live session's update or SecAgg submission is reassembled from
    its chunks up to its own cap. Join and Tasks get a small size cap, checked on the raw
    bytes before parsing (under the server-wide ``RECEIVE_CAP_BYTES``, which bounds what
    any of them costs before it is refused)."""

    def __init__(
        self, known: Callable[[str], bool], numel: int = 0, max_message_bytes: int = 0
    ) -> None:
        """``numel``: the model's parameters, which size a SecAggSubmit's masked vector;
        ``max_message_bytes``: deploy.max_message_mb, which sizes an update's cap."""
        self.known = known
        self.small_caps = {"Join": SMALL_RPC_CAP_BYTES, "Tasks": SMALL_RPC_CAP_BYTES}
        self.upload_caps = {
            "SubmitUpdate": update_cap_bytes(max_message_bytes),
            "SecAggSubmit": secagg_cap_bytes(numel),
        }
        # Declared unary in greenfl.proto, served as a client stream: gRPC accepts the
        # handler of another arity, and a stream handler is called before any message.
        self._refusal = grpc.stream_unary_rpc_method_handler(_refuse_unread)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        method = details.method.rsplit("/", 1)[-1]
        if method in self.upload_caps:
            sid = dict(details.invocation_metadata).get(SESSION_KEY)  # type: ignore[arg-type]
            if not isinstance(sid, str) or not self.known(sid):
                return self._refusal
        handler = continuation(details)
        if handler is None:
            return handler
        if method in self.upload_caps:
            return _assembled(handler, method, self.upload_caps[method])
        if method in self.small_caps:
            return _capped(handler, method, self.small_caps[method])
        return handler


def server_options(
    max_message_bytes: int, receive_window_bytes: int | None = RECEIVE_WINDOW_BYTES
) -> list[tuple[str, int]]:
    """The listening server's gRPC channel arguments. ``receive_window_bytes``: the pinned
    HTTP/2 receive window a stream is granted; None leaves gRPC's own window, grown from
    the bandwidth-delay product (what bench/upload_window.py compares against)."""
    options = [
        ("grpc.max_receive_message_length", RECEIVE_CAP_BYTES),
        ("grpc.max_send_message_length", update_cap_bytes(max_message_bytes)),
        ("grpc.so_reuseport", 0),  # never share a port with another server by accident
        ("grpc.keepalive_time_ms", 20_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ]
    if receive_window_bytes is not None:
        options += [
            ("grpc.http2.bdp_probe", 0),
            ("grpc.http2.lookahead_bytes", receive_window_bytes),
        ]
    return options


def listen(
    address: str,
    servicer: pb_grpc.FederationServicer,
    max_message_bytes: int,
    workers: int,
    tls: TlsFiles | None,
    gate: SessionGate,
) -> tuple[grpc.Server, int]:
    """A started gRPC server on ``address`` and its bound port (port 0: any free one).
    ``max_message_bytes`` bounds what it sends (a task carries the model); what it receives
    is bounded by ``RECEIVE_CAP_BYTES`` a message and by ``gate``'s caps a request."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        options=server_options(max_message_bytes),
        interceptors=[gate],
    )
    pb_grpc.add_FederationServicer_to_server(servicer, server)
    try:
        if tls is not None:
            creds = grpc.ssl_server_credentials([(tls.key_pem, tls.cert_pem)])
            port = server.add_secure_port(address, creds)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError as exc:
        raise TransportError(f"cannot listen on {address}: {exc}") from None
    if port == 0:
        raise TransportError(f"cannot listen on {address}")
    server.start()
    return server, port


MAX_PORT = 65_535
CERT_WARN_DAYS = 14  # a certificate this close to expiry is worth a warning at start


def check_listen_address(address: str) -> None:
    """ConfigError, before anything is written, unless ``address`` is HOST:PORT (port
    0..65535; gRPC would take 99999 modulo 65536) that resolves and is free to bind."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ConfigError(f"--address {address!r}: expected HOST:PORT")
    if not port.isdigit() or int(port) > MAX_PORT:
        raise ConfigError(f"--address {address}: invalid port {port!r} (0..{MAX_PORT})")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            bare, int(port), type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as exc:
        raise ConfigError(
            f"--address {address}: cannot resolve {bare!r} ({exc.strerror})"
        ) from None
    # gRPC binds with SO_REUSEADDR too: what fails here fails there, with a C-level log line.
    # Port 0 too: the host may be no address of this machine.
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {address}: {exc.strerror or exc}") from None


def check_certificate(tls: TlsFiles, now: datetime.datetime | None = None) -> None:
    """ConfigError if the server's certificate has expired or is not valid yet: every
    client's handshake would fail. A warning when it expires within ``CERT_WARN_DAYS``."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(tls.cert_pem)  # read_tls checked it parses
    now = now if now is not None else datetime.datetime.now(datetime.timezone.utc)
    until, since = cert.not_valid_after_utc, cert.not_valid_before_utc
    if until < now:
        raise ConfigError(
            f"--tls-cert: the certificate expired on {until:%Y-%m-%d %H:%M} UTC; clients "
            "would refuse every handshake. Renew it"
        )
    if since > now:
        raise ConfigError(
            f"--tls-cert: the certificate is not valid until {since:%Y-%m-%d %H:%M} UTC "
            "(check this machine's clock); clients would refuse every handshake"
        )
    left = until - now
    if left < datetime.timedelta(days=CERT_WARN_DAYS):
        log.warning(
            "--tls-cert expires on %s UTC, in %.1f days: renew it before then",
            f"{until:%Y-%m-%d %H:%M}",
            left.total_seconds() / 86_400,
        )
