"""Who is malicious: a share of the population, chosen by seed."""

from __future__ import annotations

import numpy as np

_STREAM = 101  # apart from the loop's own random streams (1-4) and the data's


def malicious_clients(num_clients: int, fraction: float, seed: int) -> np.ndarray:
    """The sorted ids of ``round(fraction x num_clients)`` malicious clients (at least one
    when ``fraction`` > 0), the same for a seed whatever else the run does."""
    if not 0 <= fraction <= 0.5:
        raise ValueError(f"attack fraction {fraction} is outside [0, 0.5]")
    if fraction == 0 or num_clients == 0:
        return np.zeros(0, dtype=np.int64)
    count = min(num_clients, max(1, round(fraction * num_clients)))
    rng = np.random.default_rng([seed, _STREAM])
    return np.sort(rng.choice(num_clients, size=count, replace=False)).astype(np.int64)
