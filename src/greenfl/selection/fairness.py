"""A fairness guard that wraps any selector.

Cost-aware selection left alone starves expensive grids and devices, which silently biases
the model toward the data of cheap clients. Two guards:

- ``floor``: every available client is picked at least once every ``window`` rounds; clients
  overdue (not picked in the last ``window`` rounds, counting from the run's start) are
  forced in first, most overdue first, at most k of them.
- ``jain``: after the inner selector chooses, while Jain's index of the participation counts
  (with this cohort added) is below ``jain_floor``, the most-participated pick is swapped for
  the least-participated available client.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from greenfl.selection.base import ClientSelector, SelectionContext


def jain_index(x: np.ndarray) -> float:
    """Jain's fairness index (sum x)^2 / (n sum x^2): 1 when all equal, 1/n when one has all."""
    x = np.asarray(x, dtype=np.float64)
    sq = float((x * x).sum())
    return float(x.sum() ** 2 / (len(x) * sq)) if sq > 0 else 1.0


def _subset(ctx: SelectionContext, mask: np.ndarray) -> SelectionContext:
    def cut(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[mask]

    return replace(
        ctx,
        est_energy_j=cut(ctx.est_energy_j),
        est_carbon_g=cut(ctx.est_carbon_g),
        est_duration_s=cut(ctx.est_duration_s),
    )


class FairnessGuard:
    def __init__(
        self, inner: ClientSelector, mode: str, window: int = 20, jain_floor: float = 0.5
    ) -> None:
        if mode not in ("floor", "jain"):
            raise ValueError(f"unknown fairness mode {mode!r}")
        self.inner = inner
        self.mode = mode
        self.window = window
        self.jain_floor = jain_floor
        self.name = f"{inner.name}+{mode}"
        self.needs_estimates = inner.needs_estimates

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        if self.mode == "floor":
            return self._floor(candidates, k, ctx, rng)
        return self._jain(candidates, k, ctx, rng)

    def _floor(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        last = ctx.last_selected[candidates].astype(np.int64)
        since = ctx.round_idx - np.maximum(last, 0)  # never picked: counted from round 0
        overdue = np.flatnonzero(since >= self.window)
        forced = overdue[np.argsort(-since[overdue], kind="stable")][:k]
        if len(forced) >= k:
            return np.sort(candidates[forced])
        rest = np.ones(len(candidates), dtype=bool)
        rest[forced] = False
        more = self.inner.select(candidates[rest], k - len(forced), _subset(ctx, rest), rng)
        return np.sort(np.concatenate([candidates[forced], more]))

    def _jain(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        chosen = np.asarray(self.inner.select(candidates, k, ctx, rng), dtype=np.int64)
        x = ctx.participation.astype(np.float64)
        n = len(x)
        total = float(x.sum()) + len(chosen)
        sumsq = float((x * x).sum()) + float((2 * x[chosen] + 1).sum())
        if n == 0 or total**2 / (n * sumsq) >= self.jain_floor:
            return np.sort(chosen)
        others = np.setdiff1d(candidates, chosen, assume_unique=False)
        # Swap the most-participated picks for the least-participated others.
        out_order = chosen[np.argsort(-x[chosen], kind="stable")]
        in_order = others[np.argsort(x[others], kind="stable")]
        result = set(chosen.tolist())
        for a, b in zip(out_order, in_order, strict=False):
            if total**2 / (n * sumsq) >= self.jain_floor or x[a] <= x[b]:
                break
            # a's projected count x_a + 1 drops to x_a; b's rises from x_b to x_b + 1.
            sumsq += (2 * x[b] + 1) - (2 * x[a] + 1)
            result.discard(int(a))
            result.add(int(b))
        return np.array(sorted(result), dtype=np.int64)
