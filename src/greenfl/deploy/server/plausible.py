"""What a deployed client may claim. Its update's footprint (compute seconds, energy, FLOPs)
is held against the server's own model of that client's round, and against what the server
saw with its own clock; its weight and its norm against the rest of the round. A claim
outside the bounds rejects the update (status ``rejected``, reason ``implausible: ...``):
its delta is not aggregated and the ledger keeps the server's modelled footprint for the
row, so no client can move the clock past the round's timeout or put an absurd figure into
the ledger's sums. See docs/deployment.md, "What the server trusts"."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
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
# No client machine trains faster than this (a multi-GPU workstation is ~1e15 FLOP/s):
# an absolute cap on reported FLOPs per second the task was out, whatever the model says.
MAX_CLIENT_FLOPS_PER_S = 1e16


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


def task_limit_s(timeout_s: float, elapsed_s: float | None) -> float:
    """The longest a client can have worked on a task: the round's timeout, and the
    server's own wall time since handing the task over (+ slack), whichever is less."""
    if elapsed_s is None:
        return timeout_s
    return min(timeout_s, max(0.0, elapsed_s) + ELAPSED_SLACK_S)


def check_figures(flops: float, compute_s: float | None, energy_j: float | None) -> None:
    """UpdateRejected for a footprint figure that is not a finite, non-negative number."""
    for name, value in (("FLOPs", flops), ("s of compute", compute_s), ("J", energy_j)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise UpdateRejected(f"implausible: reported {value!r} {name}")


def check_plausible(
    flops: float,
    compute_s: float | None,
    energy_j: float | None,
    elapsed_s: float | None,
    m: RoundModel,
) -> None:
    """UpdateRejected (``implausible: ...``) for a footprint the server cannot believe.
    ``elapsed_s``: the server's own wall time from handing the task over to now. Besides
    the factor around the server's model, absolute caps hold whatever the model says (a
    model of 0 FLOPs or 0 W does not open the bounds): no client outruns
    ``MAX_CLIENT_FLOPS_PER_S`` or outdraws ``MAX_CLIENT_POWER_W`` for as long as the task
    was out."""
    f = m.factor
    limit_s = task_limit_s(m.timeout_s, elapsed_s)
    check_figures(flops, compute_s, energy_j)
    flops_cap = MAX_CLIENT_FLOPS_PER_S * limit_s
    if flops > flops_cap:
        raise UpdateRejected(
            f"implausible: reported {flops:.4g} FLOPs in a task out for {limit_s:.4g} s "
            f"(at most {flops_cap:.4g} at {MAX_CLIENT_FLOPS_PER_S:.4g} FLOP/s)"
        )
    if m.expected_flops > 0 and not (m.expected_flops / f <= flops <= m.expected_flops * f):
        raise UpdateRejected(
            f"implausible: reported {flops:.4g} FLOPs, the work asked is {m.expected_flops:.4g} "
            f"(allowed within {f:g}x)"
        )
    if compute_s is not None:
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
        # Without a reported time, the model's, but never longer than the task was out.
        basis_s = compute_s if compute_s is not None else min(m.modelled_compute_s, limit_s)
        modelled_j = m.power_w * basis_s
        high_j = max(modelled_j * f, MAX_CLIENT_POWER_W * basis_s)
        if not (modelled_j / f <= energy_j <= high_j):
            raise UpdateRejected(
                f"implausible: reported {energy_j:.4g} J in {basis_s:.4g} s; its device "
                f"profile draws {modelled_j:.4g} J (allowed {modelled_j / f:.4g} to "
                f"{high_j:.4g} J)"
            )


def bound_round(
    reports: Sequence[ClientReport],
    norm_factor: float | None,
    sample_factor: float | None,
    declared: Collection[int] = (),
    largest_partition: int = 0,
) -> list[ClientReport]:
    """The round's reports with the deployment's default defences applied, once every update
    is in: an update whose L2 norm exceeds ``norm_factor`` times the round's median is
    rejected (model replacement, scaling); a weight above ``sample_factor`` times the
    round's median is capped there (sample inflation). Both need ``MIN_COHORT_FOR_MEDIAN``
    completed updates; fewer are left as they are.

    ``declared``: clients whose weight is their own claim (local data, not a partition the
    server knows). With the weight cap on, such a client weighs at most as much as a
    typical client: the round's median weight (of the weights that are not declared, where
    there are any) or ``largest_partition`` (the configured dataset's largest partition),
    whichever is more. A 10x cap alone leaves 20% liars
    most of the weight (digits: accuracy 0.92 -> 0.20, measured with
    bench/deploy_defaults.py); an honest client with more data than that still counts as
    a full client. A capped weight says so in the report's reason (``weight capped: ...``):
    not a dispute (an honest client with much data is capped too), but the ledger shows
    what the client declared and what it was weighed as."""
    done = [i for i, r in enumerate(reports) if r.status == "completed" and r.delta is not None]
    out = list(reports)
    cohort = len(done) >= MIN_COHORT_FOR_MEDIAN
    if norm_factor is not None and cohort:
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
    if sample_factor is None:
        return out
    kept = [i for i in done if out[i].status == "completed"]
    caps = weight_caps(
        [out[i].num_samples for i in kept],
        [int(out[i].client_id) in declared for i in kept],
        sample_factor,
        largest_partition,
    )
    for i, (n, why) in zip(kept, caps, strict=True):
        if why is not None:
            had = out[i].reason
            out[i] = out[i]._replace(num_samples=n, reason=why if had is None else f"{had}; {why}")
    return out


def bounded_weights(
    samples: Sequence[int],
    declared: Sequence[bool],
    sample_factor: float | None,
    largest_partition: int = 0,
) -> list[int]:
    """The weights of a round's kept updates under the weight bounds of ``bound_round``:
    each capped at ``sample_factor`` times their median (with ``MIN_COHORT_FOR_MEDIAN`` of
    them), and a ``declared`` one at a typical client's (the median of the weights that are
    not declared, where there are any, else of all; or ``largest_partition`` if more). One
    policy for the plain round and for secure aggregation, which must weigh before
    masking."""
    return [n for n, _ in weight_caps(samples, declared, sample_factor, largest_partition)]


def weight_caps(
    samples: Sequence[int],
    declared: Sequence[bool],
    sample_factor: float | None,
    largest_partition: int = 0,
) -> list[tuple[int, str | None]]:
    """Each weight under ``bounded_weights``' bounds, with why it was capped (None: it was
    not)."""
    weights = [int(n) for n in samples]
    whys: list[str | None] = [None] * len(weights)
    if sample_factor is None:
        return list(zip(weights, whys, strict=True))
    cohort = len(weights) >= MIN_COHORT_FOR_MEDIAN
    median_n = float(np.median(weights)) if cohort else 0.0
    if cohort:
        cap = sample_factor * median_n
        for i, n in enumerate(weights):
            if n > cap:
                weights[i] = max(1, math.floor(cap))
                whys[i] = (
                    f"weight capped: {n} samples weighed as {weights[i]}, "
                    f"{sample_factor:g}x the round's median {median_n:g} "
                    "(deploy.sample_bound_factor)"
                )
    # A typical client by the sizes the server knows (partitions) where the round has any:
    # declared sizes would otherwise set their own cap (two liars of four, the median).
    known = [n for n, own in zip(weights, declared, strict=True) if not own]
    if known and cohort:
        median_n = float(np.median(known))
    typical = max(largest_partition, math.floor(median_n))
    if typical > 0:
        for i, (n, own) in enumerate(zip(samples, declared, strict=True)):
            if own and weights[i] > typical:
                weights[i] = typical
                whys[i] = (
                    f"weight capped: {int(n)} local samples declared, weighed as {typical}, "
                    "a typical client's (the largest partition, or the round's median "
                    "size; deploy.sample_bound_factor)"
                )
    return list(zip(weights, whys, strict=True))


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
    process (its own step cap applied) on its enrolled execution target, at the rates of
    the precision the task asks for (the target's own where it declares none)."""
    steps = int(instructions.steps_of([cid], np.array([num_samples]))[0])
    samples = min(steps * instructions.batch_size, num_samples * instructions.local_epochs)
    device = pop.fleet.devices[int(pop.device[cid])]
    target = device.target(pop.fleet.population[int(pop.entry[cid])].target)
    rates = target.precision(instructions.precision) or target
    return RoundModel(
        expected_flops=flops_per_sample * samples,
        flops_per_s=rates.flops_per_s,
        power_w=rates.active_power_w,
        timeout_s=timeout_s,
        factor=factor,
    )
