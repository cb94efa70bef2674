"""Which width each client of a round trains (docs/submodels.md, "Choosing a width").
Pure arithmetic over each width's counted cost and the estimates the engine prices for it
(durations, gCO2e): no config, no engine.

- ``fixed``: client ``i`` of the run trains ``widths[i mod len(widths)]``, widest first
  (HeteroFL's fixed split);
- ``capability``: the widest width whose modelled download, training and upload fit the
  round's deadline; without a deadline, the median cohort client's full-width time. A
  client that fits none trains the narrowest;
- ``carbon`` (FedGreen-style): the ``full_share`` of the cohort whose full-width rounds
  emit least keep full width; every other client trains its lowest-gCO2e width.

FjORD draws, each round, a width uniformly from those no wider than the one the choice
gives (its ordered dropout), from a stream seeded by the run's seed and the round."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from greenfl.core.errors import ConfigError

_FJORD_STREAM = 31  # the draw's own stream: (seed, round, this)


@dataclass(frozen=True)
class WidthCost:
    """What training one width costs a client, as counted: its sub-model's training FLOPs
    per sample, its slice's parameters, and the bytes down (float32 slice) and up (the
    codec's payload for a slice-sized delta)."""

    width: float
    numel: int
    flops_per_sample: float
    bytes_up: int
    bytes_down: int


# A width's per-client estimate (durations in s, or gCO2e), priced by the engine.
PerClient = Callable[[WidthCost], np.ndarray]


@dataclass(frozen=True)
class WidthPlan:
    """A run's sub-model settings: ``name`` heterofl or fjord, the ``choice`` rule, each
    width's cost (widest first), the round deadline (None: none) and the carbon rule's
    full-width share."""

    name: str
    choice: str
    costs: tuple[WidthCost, ...]
    deadline_s: float | None
    full_share: float
    seed: int

    def __post_init__(self) -> None:
        if self.name not in ("heterofl", "fjord"):
            raise ConfigError(f"unknown sub-model scheme {self.name!r} (heterofl, fjord)")
        if self.choice not in ("fixed", "capability", "carbon"):
            raise ConfigError(f"unknown width choice {self.choice!r} (fixed, capability, carbon)")
        widths = [c.width for c in self.costs]
        if not widths or widths != sorted(set(widths), reverse=True):
            raise ConfigError(f"widths must be distinct and widest first, got {widths}")

    @property
    def widths(self) -> np.ndarray:
        return np.array([c.width for c in self.costs], dtype=np.float64)

    def cost_of(self, width: float) -> WidthCost:
        for c in self.costs:
            if c.width == width:
                return c
        raise ConfigError(f"width {width} is not one of the run's ({self.widths.tolist()})")

    def choose(
        self,
        clients: np.ndarray,
        round_idx: int,
        duration_s: PerClient,
        carbon_g: PerClient,
        width_cap: float = 1.0,
    ) -> np.ndarray:
        """Each client's width this round. ``duration_s`` and ``carbon_g`` price one width
        for every client of ``clients`` (called only when the choice needs them).
        ``width_cap``: the widest width any client trains this round (an adaptive policy's
        arm); a client the choice gives a wider width trains the widest one within it."""
        clients = np.asarray(clients, dtype=np.int64)
        if self.choice == "fixed":
            idx = fixed_index(clients, len(self.costs))
        elif self.choice == "capability":
            times = np.stack([duration_s(c) for c in self.costs])
            limit = self.deadline_s
            if limit is None:
                limit = float(np.median(times[0])) if clients.size else 0.0
            idx = capability_index(times, limit)
        else:
            idx = carbon_index(np.stack([carbon_g(c) for c in self.costs]), self.full_share)
        idx = np.maximum(idx, cap_index(self.widths, width_cap))
        if self.name == "fjord":
            rng = np.random.default_rng([self.seed, round_idx, _FJORD_STREAM])
            idx = fjord_index(idx, len(self.costs), rng)
        return self.widths[idx]


def fixed_index(clients: np.ndarray, num_widths: int) -> np.ndarray:
    """HeteroFL's fixed split: client ``i`` gets the (i mod num_widths)-th width."""
    return np.asarray(clients, dtype=np.int64) % num_widths


def cap_index(widths: np.ndarray, width_cap: float) -> int:
    """The index of the widest of ``widths`` (widest first) no wider than ``width_cap``."""
    within = np.flatnonzero(widths <= width_cap + 1e-12)
    if within.size == 0:
        raise ConfigError(
            f"width cap {width_cap} is narrower than every width of the run ({widths.tolist()})"
        )
    return int(within[0])


def capability_index(duration_s: np.ndarray, limit_s: float) -> np.ndarray:
    """Per client (column), the first (widest) width (row) whose duration fits
    ``limit_s``; the last (narrowest) where none does."""
    fits = duration_s <= limit_s
    last = duration_s.shape[0] - 1
    return np.where(fits.any(axis=0), fits.argmax(axis=0), last).astype(np.int64)


def carbon_index(carbon_g: np.ndarray, full_share: float) -> np.ndarray:
    """The ``full_share`` of clients (columns; at least that share, rounded up) with the
    lowest full-width gCO2e (row 0) keep index 0; the others get their lowest-gCO2e row
    (the widest of equals)."""
    n = carbon_g.shape[1]
    keep = math.ceil(full_share * n - 1e-9)
    idx = carbon_g.argmin(axis=0).astype(np.int64)
    # stable: equal full-width footprints keep the cohort's order
    idx[np.argsort(carbon_g[0], kind="stable")[:keep]] = 0
    return idx


def fjord_index(cap: np.ndarray, num_widths: int, rng: np.random.Generator) -> np.ndarray:
    """FjORD's ordered dropout: a uniform draw among the widths no wider than ``cap``
    (indices ``cap`` .. ``num_widths - 1``, widest first)."""
    cap = np.asarray(cap, dtype=np.int64)
    choices = num_widths - cap
    return cap + np.floor(rng.random(cap.size) * choices).astype(np.int64)
