"""A deployment's client sessions and open tasks, the first checks of a Join (protocol,
token, id, declared size), and what joining does to the population: a client is accounted
as its enrolled population entry (``enrolment.py``)."""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import TokenClaims, TokenError, verify_token
from greenfl.deploy.server.plausible import RoundModel
from greenfl.fleet.population import Population


@dataclass
class Session:
    session_id: str
    client_id: int
    device: str
    peer: str
    stream_gen: int = 0  # bumped by each new Tasks stream; an older stream then ends
    open: bool = False  # a Tasks stream is open: the client is connected
    queue: deque[pb.Task] = field(default_factory=deque)
    num_samples: int = 0  # > 0: the client trains on its own local data of this size
    flag: str | None = None  # what its ledger rows say of it (a self-described device)
    joined_at: float = 0.0  # Unix time of its check-in (Join)
    token_issued_at: float | None = None  # its per-client token's, to notice a revocation


@dataclass
class Pending:
    task_id: str
    session_id: str
    round_idx: int
    bytes_down: int
    num_samples: int  # the update's expected weight: partition size, or declared local size
    delivered_at: float | None = None  # monotonic time the client took the task off its stream
    answered_at: float | None = None  # monotonic time its report was settled
    model: RoundModel | None = None  # the server's model of this round, to judge its footprint
    report: ClientReport | None = None
    secagg_keys: tuple[bytes, bytes] | None = None  # secure aggregation: (c_pk, s_pk) sent
    flag: str | None = None  # the session's flag, for its ledger rows
    norm: float | None = None  # its update's L2 norm, once it passed the other checks
    held: ClientReport | None = None  # an accepted report waiting for the norm's reference
    width: float = 1.0  # the sub-model width it was asked to train (its update is that slice)


class Refusal(TransportError):
    """A Join the server turns down: the gRPC status, the message for the client, and a
    short reason for the server's log."""

    def __init__(self, code: grpc.StatusCode, message: str, why: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.why = why


def admit(
    req: pb.JoinRequest,
    pop: Population,
    token: str | None,
    max_client_samples: int | None,
    per_client: bool = True,
    run_id: str = "",
    revoked: Mapping[int, float] | None = None,
) -> tuple[TokenClaims | None, int]:
    """The claims of a joining client's token (None: no token needed, or the shared one)
    and its declared local samples (0: it holds its partition); a Refusal if the request
    cannot be admitted. Its device is its enrolment's (``enrolment.Enrolments.admit``)."""
    cid = int(req.client_id)
    if req.protocol_version != PROTOCOL_VERSION:
        raise Refusal(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"protocol version {req.protocol_version} is not supported "
            f"(server speaks {PROTOCOL_VERSION})",
            f"protocol version {req.protocol_version} (server speaks {PROTOCOL_VERSION})",
        )
    claims: TokenClaims | None = None
    if token is not None and per_client:
        # The token names its client id, its run, its expiry (and maybe the client's
        # enrolment): another client's, another run's or a revoked one admits nobody.
        try:
            claims = verify_token(token, req.token, cid, run_id, revoked or {})
        except TokenError as exc:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, str(exc), str(exc)) from None
    elif token is not None and not hmac.compare_digest(
        req.token.encode("utf-8"), token.encode("utf-8")
    ):
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid token", "invalid token")
    if not 0 <= cid < pop.size:
        raise Refusal(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"client id {cid} is out of range 0..{pop.size - 1} (data.num_clients = {pop.size})",
            "no such client id",
        )
    if req.device:
        known = sorted({e.device for e in pop.fleet.population})
        if req.device not in known:
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device {req.device!r} is not in the server's fleet; "
                f"choose one of {', '.join(known)}",
                f"unknown device {req.device!r}",
            )
    local_n = int(req.num_samples)
    cap = max_client_samples
    if local_n < 0 or (cap is not None and local_n > cap):
        raise Refusal(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{local_n} local samples is out of range 1..{cap} (deploy.max_client_samples)"
            if local_n > 0
            else f"num_samples {local_n} is negative",
            f"{local_n} local samples",
        )
    return claims, local_n


def apply_joins(
    pop: Population, entry_overrides: dict[int, int], sample_overrides: dict[int, int]
) -> None:
    """The joins since the last round, into the population (and cleared): each client is
    accounted as its enrolled (or self-described) population entry, and one with its own
    data weighs (and is estimated) by its declared size."""
    for cid, entry in entry_overrides.items():
        set_entry(pop, cid, entry)
    entry_overrides.clear()
    for cid, n in sample_overrides.items():
        pop.num_samples[cid] = n
        if pop.samples_claimed is not None:
            pop.samples_claimed[cid] = True
    sample_overrides.clear()


def set_entry(pop: Population, cid: int, entry: int) -> None:
    """Account client ``cid`` as population entry ``entry`` (device, network, region)."""
    fleet = pop.fleet
    e = fleet.population[entry]
    pop.entry[cid] = entry
    pop.device[cid] = fleet.device_index(e.device)
    pop.network[cid] = fleet.network_index(e.network)
    pop.region[cid] = fleet.region_index(e.region)
