"""The loop's state between rounds, and its snapshot: what ``--resume`` continues from. The
snapshot's format is greenfl.engine.snapshot's; this module says what goes into it."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from greenfl.core.errors import LedgerError
from greenfl.engine.snapshot import array_part, compact, dumps, read_snapshot, small_state


class Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class LoopState:
    """Everything needed to continue a run from the last completed round."""

    round: int
    global_params: torch.Tensor
    now_s: float
    participation: np.ndarray
    last_selected: np.ndarray
    last_loss: np.ndarray
    rng_states: dict[str, Any]
    cum_energy_j: float = 0.0
    cum_carbon_g: float = 0.0
    last_round_carbon_g: float = 0.0
    best_accuracy: float = field(default=-math.inf)


def state_bytes(
    st: LoopState,
    rngs: dict[str, np.random.Generator],
    strategy: Stateful,
    policies: Stateful,
    observers: Sequence[Stateful] = (),
) -> bytes:
    """The snapshot of the state after the current round."""
    return dumps(
        {
            "round": st.round,
            "global_params": array_part(st.global_params.detach().cpu().numpy()),
            "now_s": st.now_s,
            "population_size": len(st.participation),
            "participation": compact(st.participation, 0),
            "last_selected": compact(st.last_selected, -1),
            "last_loss": compact(st.last_loss, np.nan),
            "rngs": {k: r.bit_generator.state for k, r in rngs.items()},
            "strategy": small_state(strategy.state_dict()),
            "planner": small_state(policies.state_dict()),
            "probes": [small_state(o.state_dict()) for o in observers],
            "cum_energy_j": st.cum_energy_j,
            "cum_carbon_g": st.cum_carbon_g,
            "last_round_carbon_g": st.last_round_carbon_g,
            "best_accuracy": st.best_accuracy,
        }
    )


def restore_state(
    st: LoopState,
    blob: bytes,
    rngs: dict[str, np.random.Generator],
    strategy: Stateful,
    policies: Stateful,
    observers: Sequence[Stateful] = (),
) -> None:
    """``st``, the random streams, the strategy's, the learning policies' and the
    observers' state from a snapshot."""
    snap = read_snapshot(blob, len(st.participation))
    st.round = int(snap["round"])
    params = snap["global_params"]
    if params.shape != st.global_params.shape or params.dtype != st.global_params.dtype:
        raise LedgerError(
            f"the snapshot's model has {tuple(params.shape)} {params.dtype} parameters, this "
            f"run's {tuple(st.global_params.shape)} {st.global_params.dtype}"
        )
    st.global_params = params
    st.now_s = float(snap["now_s"])
    st.participation = snap["participation"]
    st.last_selected = snap["last_selected"]
    st.last_loss = snap["last_loss"]
    for k, state in snap["rngs"].items():
        if k not in rngs:
            raise LedgerError(f"the snapshot holds a random stream {k!r} this run has not")
        try:
            rngs[k].bit_generator.state = state
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            # a swapped or corrupt state: one line, not numpy's traceback
            raise LedgerError(
                f"the ledger's saved random-generator state {k!r} does not fit this run: {exc}"
            ) from None
    strategy.load_state_dict(snap["strategy"])
    policies.load_state_dict(snap["planner"])
    # The run's own observers (privacy, backdoor) come first; observers a caller adds
    # (progress, loggers) come after and keep no state, so they may differ on resume.
    saved = snap.get("probes") or []
    needed = max((i + 1 for i, s in enumerate(saved) if s), default=0)
    if len(observers) < needed:
        raise LedgerError(
            f"the snapshot holds the state of {needed} observers, this run has "
            f"{len(observers)}: resume with the run's own config"
        )
    for obs, state in zip(observers, saved, strict=False):
        obs.load_state_dict(state)
    st.cum_energy_j = float(snap["cum_energy_j"])
    st.cum_carbon_g = float(snap["cum_carbon_g"])
    st.last_round_carbon_g = float(snap["last_round_carbon_g"])
    st.best_accuracy = float(snap["best_accuracy"])
