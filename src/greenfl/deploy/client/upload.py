"""The client's stub: the generated one, but updates and SecAgg submissions go up as a
stream of chunks, each under the server's per-message limit (the server receives no single
message over ``greenfl.deploy.server.listener.RECEIVE_CAP_BYTES``, 1 MiB, so that oversized
requests from unauthenticated callers cost it almost nothing; it joins the chunks of a live
session's request back into the one message)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import grpc
from google.protobuf.message import Message

from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc

# Well under the server's 1 MiB per-message limit, with room for gRPC's framing.
UPLOAD_CHUNK_BYTES = 256 * 1024
SERVICE = "/greenfl.v1.Federation/"


def chunks_of(raw: bytes, size: int = UPLOAD_CHUNK_BYTES) -> Iterator[bytes]:
    """``raw`` in pieces of at most ``size`` bytes; an empty message is one empty piece."""
    view = memoryview(raw)
    for start in range(0, max(len(raw), 1), size):
        yield bytes(view[start : start + size])


class _Chunked:
    """A unary method's call, sent as a client stream of the serialized request's chunks."""

    def __init__(self, channel: grpc.Channel, method: str) -> None:
        self._call = channel.stream_unary(
            SERVICE + method, request_serializer=None, response_deserializer=pb.Ack.FromString
        )

    def __call__(
        self,
        request: Message,
        timeout: float | None = None,
        metadata: Sequence[tuple[str, str]] | None = None,
    ) -> pb.Ack:
        return self._call(
            chunks_of(request.SerializeToString()), timeout=timeout, metadata=metadata
        )


class ChunkedStub(pb_grpc.FederationStub):
    """``FederationStub`` whose SubmitUpdate and SecAggSubmit upload in chunks."""

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(channel)
        self.SubmitUpdate = _Chunked(channel, "SubmitUpdate")  # type: ignore[method-assign]
        self.SecAggSubmit = _Chunked(channel, "SecAggSubmit")  # type: ignore[method-assign]
