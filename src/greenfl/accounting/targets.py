"""Execution targets per client (AutoFL-style): a device may train on one of several targets
(CPU / GPU / NPU, or DVFS levels), each with its own flops_per_s and active_power_w.

TargetTable lays out one EntryTable row per (population entry, target) pair, so a client's
profile under any target is still one integer lookup, and the choice is vectorised."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from greenfl.accounting.entries import (
    EntryTable,
    FootprintChoices,
    append_profile_row,
    profile_columns,
)
from greenfl.fleet.catalog import Fleet

TARGET_POLICIES = ("entry", "fastest", "energy", "carbon")


@dataclass(frozen=True)
class TargetTable:
    table: EntryTable  # one row per (entry, target)
    first_row: np.ndarray  # per entry: its first row
    num_targets: np.ndarray  # per entry: how many targets (rows) it has
    default_row: np.ndarray  # per entry: the row of the entry's own (configured) target

    @classmethod
    def build(cls, fleet: Fleet, choices: FootprintChoices | None = None) -> TargetTable:
        cols = profile_columns()
        first, count, default = [], [], []
        for e in fleet.population:
            d = fleet.devices[fleet.device_index(e.device)]
            n = fleet.networks[fleet.network_index(e.network)]
            targets = list(d.targets) or [d.target(None)]
            own = d.target(e.target).name
            first.append(len(cols["target"]))
            count.append(len(targets))
            default.append(len(cols["target"]) + [t.name for t in targets].index(own))
            for t in targets:
                append_profile_row(cols, fleet, e, d, n, t, choices)
        return cls(
            table=EntryTable.of(cols, fleet.region_index(fleet.server.region)),
            first_row=np.asarray(first, dtype=np.int64),
            num_targets=np.asarray(count, dtype=np.int64),
            default_row=np.asarray(default, dtype=np.int64),
        )

    def choose(
        self,
        entry: np.ndarray,
        policy: str,
        cost: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> np.ndarray:
        """Row per client (``entry``: each client's population entry). ``cost(rows)`` gives a
        per-client cost under the given rows; "energy" / "carbon" pick its minimum."""
        if policy == "entry":
            return self.default_row[entry]
        first, count = self.first_row[entry], self.num_targets[entry]
        options = [first + np.minimum(t, count - 1) for t in range(int(count.max(initial=1)))]
        if policy == "fastest":
            speeds = np.stack([self.table.flops_per_s[r] for r in options])
            return np.take_along_axis(np.stack(options), speeds.argmax(0)[None], 0)[0]
        if cost is None:
            raise ValueError(f"target policy {policy!r} needs a cost function")
        costs = np.stack([cost(r) for r in options])
        return np.take_along_axis(np.stack(options), costs.argmin(0)[None], 0)[0]
