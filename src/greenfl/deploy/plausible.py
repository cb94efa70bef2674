"""What a deployed client may claim. Its update's footprint (compute seconds, energy, FLOPs)
is held against the server's own model of that client's round, and against what the server
saw with its own clock; its weight and its norm against the rest of the round. A claim
outside the bounds rejects the update (status ``rejected``, reason ``implausible: ...``):
its delta is not aggregated and the ledger keeps the server's modelled footprint for the
row, so no client can move the clock past the round's timeout or put an absurd figure into
the ledger's sums. See docs/deployment.md, "What the server trusts"."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from greenfl.core.errors import UpdateRejected
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.fleet.population import Population

# Wall-clock slack on the server's own measurement of a task's time: clock granularity,
# and the update's bytes still arriving when the server takes its reading.
ELAPSED_SLACK_S = 1.0
MIN_COHORT_FOR_MEDIAN = 3  # a median of fewer updates says nothing about an outlier
# A client's meter reads the machine it runs on, which need not be its device profile (a
# laptop's CPU package joined as a phone): above the profile, any power up to a multi-GPU
# workstation's is believed. Below it, the factor holds.
MAX_CLIENT_POWER_W = 2000.0


@dataclass(frozen=True)
class RoundModel:
    """The server's expectation of one client's round."""

    expected_flops: float  # training FLOPs of the work it was asked for
    flops_per_s: float  # its device profile's
    power_w: float  # its device profile's active power
    timeout_s: float  # the round's wall-clock limit
    factor: float  # deploy.plausibility_factor

    @property
    def modelled_compute_s(self) -> float:
        return self.expected_flops / self.flops_per_s


def check_plausible(
    flops: float, compute_s: float | None, energy_j: float | None, elapsed_s: float | None,
    m: RoundModel,
) -> None:  # fmt: skip
    """UpdateRejected (``implausible: ...``) for a footprint the server cannot believe.
    ``elapsed_s``: the server's own wall time from handing the task over to now."""
    f = m.factor
    if m.expected_flops > 0 and not (m.expected_flops / f <= flops <= m.expected_flops * f):
        raise UpdateRejected(
            f"implausible: reported {flops:.4g} FLOPs, the work asked is {m.expected_flops:.4g} "
            f"(allowed within {f:g}x)"
        )
    if compute_s is not None:
        limit_s = m.timeout_s
        if elapsed_s is not None:
            limit_s = min(limit_s, elapsed_s + ELAPSED_SLACK_S)
        if compute_s > limit_s:
            raise UpdateRejected(
                f"implausible: reported {compute_s:.4g} s of compute, but the task was out "
                f"for {limit_s:.4g} s at most"
            )
        if compute_s < m.modelled_compute_s / f:
            raise UpdateRejected(
                f"implausible: reported {compute_s:.4g} s of compute, {f:g}x under the "
                f"{m.modelled_compute_s:.4g} s its device profile needs for this work"
            )
    if energy_j is not None:
        basis_s = compute_s if compute_s is not None else m.modelled_compute_s
        modelled_j = m.power_w * basis_s
        high_j = max(modelled_j * f, MAX_CLIENT_POWER_W * basis_s)
        if modelled_j > 0 and not (modelled_j / f <= energy_j <= high_j):
            raise UpdateRejected(
                f"implausible: reported {energy_j:.4g} J in {basis_s:.4g} s; its device "
                f"profile draws {modelled_j:.4g} J (allowed {modelled_j / f:.4g} to "
                f"{high_j:.4g} J)"
            )


def bound_round(
    reports: Sequence[ClientReport], norm_factor: float | None, sample_factor: float | None
) -> list[ClientReport]:
    """The round's reports with the deployment's default defences applied, once every update
    is in: an update whose L2 norm exceeds ``norm_factor`` times the round's median is
    rejected (model replacement, scaling); a weight above ``sample_factor`` times the
    round's median is capped there (sample inflation). Both need ``MIN_COHORT_FOR_MEDIAN``
    completed updates; fewer are left as they are."""
    done = [i for i, r in enumerate(reports) if r.status == "completed" and r.delta is not None]
    out = list(reports)
    if len(done) < MIN_COHORT_FOR_MEDIAN:
        return out
    if norm_factor is not None:
        norms = np.array([float(reports[i].delta.norm()) for i in done])  # type: ignore[union-attr]
        median = float(np.median(norms))
        for i, norm in zip(done, norms, strict=True):
            if median > 0 and norm > norm_factor * median:
                out[i] = out[i]._replace(
                    status="rejected",
                    delta=None,
                    reason=f"update norm {norm:.4g} exceeds {norm_factor:g}x the round's "
                    f"median {median:.4g}",
                )
    if sample_factor is not None:
        kept = [i for i in done if out[i].status == "completed"]
        if len(kept) >= MIN_COHORT_FOR_MEDIAN:
            cap = sample_factor * float(np.median([out[i].num_samples for i in kept]))
            for i in kept:
                if out[i].num_samples > cap:
                    out[i] = out[i]._replace(num_samples=max(1, math.floor(cap)))
    return out


def round_model(
    pop: Population,
    cid: int,
    instructions: FitInstructions,
    num_samples: int,
    flops_per_sample: float,
    timeout_s: float,
    factor: float,
) -> RoundModel:
    """The server's model of client ``cid``'s round: the samples its instructions have it
    process (its own step cap applied) on its device profile."""
    steps = int(instructions.steps_of([cid], np.array([num_samples]))[0])
    samples = min(steps * instructions.batch_size, num_samples * instructions.local_epochs)
    device = pop.fleet.devices[int(pop.device[cid])]
    return RoundModel(
        expected_flops=flops_per_sample * samples,
        flops_per_s=device.flops_per_s,
        power_w=device.active_power_w,
        timeout_s=timeout_s,
        factor=factor,
    )
