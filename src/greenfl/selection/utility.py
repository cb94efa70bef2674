"""Statistical utility of a client, after Oort (Lai et al., OSDI 2021).

Oort scores client i by |B_i| * sqrt(mean of its samples' squared losses): large clients
whose data the model still gets wrong teach it most. Clients report only their mean
training loss, so |B_i| * loss stands in for it. A client never seen yet is scored
optimistically with the largest loss reported so far, so that it is worth trying."""

from __future__ import annotations

import numpy as np

from greenfl.selection.base import SelectionContext

_FLOOR = 1e-12


def statistical_utility(candidates: np.ndarray, ctx: SelectionContext) -> np.ndarray:
    """Utility per candidate (>= a tiny floor, so cost / utility is always finite)."""
    samples = ctx.population.num_samples[candidates].astype(np.float64)
    loss = ctx.last_loss[candidates].astype(np.float64)
    seen = np.isfinite(loss)
    seen_any = np.isfinite(ctx.last_loss)
    optimistic = float(np.max(ctx.last_loss[seen_any])) if seen_any.any() else 1.0
    return np.maximum(samples * np.where(seen, loss, optimistic), _FLOOR)


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
