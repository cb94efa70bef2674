"""A deployment's client sessions and open tasks, and what joining does to the population:
a client that names its device is accounted as that device."""

from __future__ import annotations

import hmac
from collections import deque
from dataclasses import dataclass, field

import grpc

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import TransportError
from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import client_token
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


def assign_device(pop: Population, cid: int, device: str) -> None:
    """Account client ``cid`` as ``device``: the population entry with that device that keeps
    its region (and network) where the fleet has one."""
    fleet = pop.fleet
    current = fleet.population[int(pop.entry[cid])]
    if current.device == device:
        return
    options = [i for i, e in enumerate(fleet.population) if e.device == device]
    best = min(
        options,
        key=lambda i: (
            fleet.population[i].region != current.region,
            fleet.population[i].network != current.network,
        ),
    )
    e = fleet.population[best]
    pop.entry[cid] = best
    pop.device[cid] = fleet.device_index(e.device)
    pop.network[cid] = fleet.network_index(e.network)
    pop.region[cid] = fleet.region_index(e.region)


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
) -> tuple[str, int]:
    """The device a joining client is accounted as, and its declared local samples (0: it
    holds its partition); a Refusal if the request cannot be admitted."""
    cid = int(req.client_id)
    if req.protocol_version != PROTOCOL_VERSION:
        raise Refusal(
            grpc.StatusCode.FAILED_PRECONDITION,
            f"protocol version {req.protocol_version} is not supported "
            f"(server speaks {PROTOCOL_VERSION})",
            f"protocol version {req.protocol_version} (server speaks {PROTOCOL_VERSION})",
        )
    if token is not None:
        # Per client, the token names its id: another client's token does not admit it.
        expected = client_token(token, cid) if per_client else token
        if not hmac.compare_digest(req.token.encode("utf-8"), expected.encode("utf-8")):
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "invalid token", "invalid token")
    if not 0 <= cid < pop.size:
        raise Refusal(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"client id {cid} is out of range 0..{pop.size - 1} (data.num_clients = {pop.size})",
            "no such client id",
        )
    device = pop.fleet.devices[pop.device[cid]].name
    if req.device:
        known = sorted({e.device for e in pop.fleet.population})
        if req.device not in known:
            raise Refusal(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"device {req.device!r} is not in the server's fleet; "
                f"choose one of {', '.join(known)}",
                f"unknown device {req.device!r}",
            )
        device = req.device
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
    return device, local_n


def apply_joins(
    pop: Population, device_overrides: dict[int, str], sample_overrides: dict[int, int]
) -> None:
    """The joins since the last round, into the population (and cleared): a client that
    named its device is accounted as it, and one with its own data weighs (and is
    estimated) by its declared size."""
    for cid, device in device_overrides.items():
        assign_device(pop, cid, device)
    device_overrides.clear()
    for cid, n in sample_overrides.items():
        pop.num_samples[cid] = n
    sample_overrides.clear()
