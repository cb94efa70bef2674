"""Statistical utility of a client, after Oort (Lai et al., OSDI 2021), made robust to
clients that lie about themselves.

Oort scores client i by |B_i| * sqrt(mean of its samples' squared losses): large clients
whose data the model still gets wrong teach it most. Clients report only their mean
training loss, so |B_i| * loss stands in for it. A client never seen yet is scored
optimistically with the largest (clipped) loss reported so far, so that it is worth trying.

Both factors can be a client's own claim: the loss always is (only the client sees its
data), and the sample count is where the client trains on data of its own and declares its
size (a deployment's ``num_samples`` at join). A raw claim would let one client buy any
share of the selection: a loss of 1e30, or a million samples, outranks every honest peer.
So every claim is clipped to a robust ceiling: q_hi, the ``clip_percentile``-th
percentile of the peers' finite values (a loss also to >= 0). q_hi is an observed value
(numpy's ``lower`` method), never an interpolation towards an outlier: with two or more
values, the largest claim never sets it, so one liar cannot raise the ceiling it is held
to, and neither can up to about (1 - clip_percentile / 100) x (n - 1) colluding ones.
Only the top is clipped: a claim below its peers' lowers only the claimant's own score.
After clipping, the most a liar gains is the utility of an honest peer at the ceiling:
the clip_percentile-th percentile loss times (for a claimed count) the clip_percentile-th
percentile sample count. Sample counts the server knows itself (the partition it made in
a simulation, or a count it observed) are used as they are.

What the utility rests on comes in ``UtilityInputs`` (the context's ``utility``), which
the simulation and a deployment both fill: per client id, the loss reported, the sample
count, and which counts are claims."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from greenfl.selection.base import SelectionContext, UtilityInputs

_FLOOR = 1e-12

DEFAULT_CLIP_PERCENTILE = 95.0

__all__ = [
    "DEFAULT_CLIP_PERCENTILE",
    "UtilityInputs",
    "clip_percentile_field",
    "exploration_share",
    "inputs_of",
    "lowest",
    "require_estimates",
    "robust_ceiling",
    "robust_samples",
    "statistical_utility",
]


def clip_percentile_field() -> Any:
    """The ``clip_percentile`` parameter every scoring selector declares (same default,
    bounds and description everywhere)."""
    return Field(
        DEFAULT_CLIP_PERCENTILE,
        ge=50,
        le=100,
        description="a client's reported loss (and claimed sample count) counts at most as "
        "its peers' p-th percentile, so no self-report outranks that peer (100: the "
        "largest peer value, no protection against one liar)",
    )


def inputs_of(ctx: SelectionContext) -> UtilityInputs:
    """The context's utility inputs; without any, the engine's arrays: the sample counts
    are the server's own (its partition) except where the population marks a client's
    count as its own claim (a deployed client's local data)."""
    if ctx.utility is not None:
        return ctx.utility
    pop = ctx.population
    claimed = pop.samples_claimed
    if claimed is not None and not claimed.any():
        claimed = None
    return UtilityInputs(ctx.last_loss, pop.num_samples, claimed)


def robust_ceiling(values: np.ndarray, percentile: float) -> float | None:
    """q_hi of the finite values (module docstring), None when there are none."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    return float(np.percentile(v, percentile, method="lower"))


def robust_samples(candidates: np.ndarray, inputs: UtilityInputs, percentile: float) -> np.ndarray:
    """The candidates' sample counts, claimed ones clipped to the ceiling of all counts."""
    samples = np.asarray(inputs.samples[candidates], dtype=np.float64)
    claimed = inputs.samples_claimed
    if claimed is None or not claimed[candidates].any():
        return samples
    hi = robust_ceiling(inputs.samples, percentile)
    assert hi is not None  # a candidate's own count is among them
    return np.where(claimed[candidates], np.minimum(samples, hi), samples)


def statistical_utility(
    candidates: np.ndarray,
    ctx: SelectionContext,
    clip_percentile: float = DEFAULT_CLIP_PERCENTILE,
) -> np.ndarray:
    """Utility per candidate (>= a tiny floor, so cost / utility is always finite): the
    (robust) sample count times the loss clipped to the peers' ceiling."""
    inputs = inputs_of(ctx)
    samples = robust_samples(candidates, inputs, clip_percentile)
    loss = np.asarray(inputs.loss[candidates], dtype=np.float64)
    seen = np.isfinite(loss)
    hi = robust_ceiling(inputs.loss, clip_percentile)
    if hi is None:
        clipped, optimistic = loss, 1.0
    else:
        clipped, optimistic = np.clip(loss, 0.0, hi), hi
    return np.maximum(samples * np.where(seen, clipped, optimistic), _FLOOR)


def require_estimates(ctx: SelectionContext, who: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if ctx.est_energy_j is None or ctx.est_carbon_g is None or ctx.est_duration_s is None:
        raise ValueError(f"selector {who!r} needs per-candidate estimates in its context")
    return ctx.est_energy_j, ctx.est_carbon_g, ctx.est_duration_s


def lowest(score: np.ndarray, candidates: np.ndarray, k: int) -> np.ndarray:
    """The k candidates with the lowest score (ties broken by client id), sorted by id."""
    k = min(k, len(candidates))
    if k == 0:
        return candidates[:0]
    order = np.lexsort((candidates, score))[:k]
    return np.sort(candidates[order])


def exploration_share(initial: float, decay: float, floor: float, round_idx: int) -> float:
    """The share of a round's picks that explore: ``initial``, kept by ``decay`` each round
    after the first, never below ``floor`` (Oort's and AutoFL-style's epsilon)."""
    return max(floor, initial * decay ** (round_idx - 1))
