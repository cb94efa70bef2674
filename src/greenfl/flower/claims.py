"""What nodes said in a Flower round, checked against what the server saw: ``NodeReply``
(the server's view of one reply) and ``checked_reports``, the ClientReports the accounting
charges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from greenfl.config.deploy import DeployConfig
from greenfl.core.messages import ClientReport
from greenfl.fleet.population import Population


@dataclass(frozen=True)
class NodeReply:
    """What the server saw of one node's reply in a round: who (the fleet client its node
    id is bound to), whether it answered, the bytes each way (from the messages), and the
    node's footprint record (its counted FLOPs and examples; its own meter's joules, kept
    as a claim)."""

    client_id: int
    ok: bool
    reason: str | None
    bytes_down: int
    bytes_up: int
    flops: float
    num_examples: int
    loss: float
    compute_s: float
    metered_energy_j: float | None = None
    has_record: bool = True



def checked_reports(
    replies: Sequence[NodeReply],
    population: Population,
    local_epochs: int,
    flops_per_example: float,
    deploy: DeployConfig,
) -> tuple[list[ClientReport], float]:
    """(ClientReports from the replies, the FLOPs per example and epoch learned). The
    FLOPs charged are each node's counted FLOPs unless they stray from its examples x the
    round's median FLOPs per example by more than ``deploy.claim_tolerance``: then the
    median's figure is charged and the row is ``disputed`` (one node cannot talk its own
    carbon down). A reply without a record is charged the median's figure. Examples are
    capped at ``deploy.max_client_samples``; each node's count becomes its population's."""
    cap = deploy.max_client_samples or np.iinfo(np.int64).max
    ok = [r for r in replies if r.ok and r.has_record and r.num_examples > 0]
    if ok:
        per = [r.flops / (r.num_examples * local_epochs) for r in ok]
        flops_per_example = float(np.median(per))
    tol = deploy.claim_tolerance
    out: list[ClientReport] = []
    for r in replies:
        examples = min(max(r.num_examples, 0), cap)
        if not r.ok:
            out.append(
                ClientReport(
                    r.client_id, "failed", r.reason, None, 0, 0.0, math.nan, 0, r.bytes_down
                )
            )
            continue
        population.num_samples[r.client_id] = examples
        expected = examples * local_epochs * flops_per_example
        flops, disputed, reason = r.flops, False, r.reason
        if not r.has_record:
            flops = expected
            reason = reason or "no footprint record: FLOPs estimated from the round's median"
        elif expected > 0 and not (expected / tol <= r.flops <= expected * tol):
            disputed = True
            reason = (
                f"disputed: reported {r.flops:.4g} FLOPs, {r.flops / expected:.3g}x the "
                f"{expected:.4g} its {examples} examples take at the round's median"
            )
            flops = expected
        out.append(
            ClientReport(
                r.client_id,
                "completed",
                reason,
                None,
                examples,
                flops,
                r.loss,
                r.bytes_up,
                r.bytes_down,
                reported_energy_j=r.metered_energy_j,
                disputed=disputed,
            )
        )
    return out, flops_per_example
