"""Uniform random selection: FedAvg's baseline."""

from __future__ import annotations

import numpy as np

from greenfl.core.registry import NoParams
from greenfl.selection.base import SelectionContext


class RandomSelector:
    name = "random"
    Params = NoParams
    needs_estimates = False

    def __init__(self, params: NoParams | None = None) -> None:
        return None

    def select(
        self, candidates: np.ndarray, k: int, ctx: SelectionContext, rng: np.random.Generator
    ) -> np.ndarray:
        k = min(k, len(candidates))
        return np.sort(rng.choice(candidates, size=k, replace=False))
