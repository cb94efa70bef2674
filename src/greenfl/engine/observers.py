"""One observer protocol for everything that watches a run: measures of the new model that
become ledger columns (the backdoor's success, the privacy spent), loggers (TensorBoard,
MLflow), progress on a terminal, and rules that stop a run (the privacy budget). An
observer sees each finished round and returns an ``Observation``: ledger columns, metrics
(kept in the round's record, ``RoundRecord.metrics``) and, if it wants the run to end,
why. It may also hear how far a round's training has come (``on_progress``) and keep
state that a resumed run needs (``state_dict``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from greenfl.clients.transport import FitProgress
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.engine.records import RoundRecord


@dataclass(frozen=True)
class RoundView:
    """What an observer may know of a finished round: its record (with running totals),
    the new global parameters, how many clients could be picked and how many were, and
    whose updates were aggregated with how many samples under which instructions
    (per-client step caps included)."""

    record: RoundRecord
    global_params: torch.Tensor
    num_available: int
    cohort_size: int
    aggregated_ids: np.ndarray
    aggregated_samples: np.ndarray
    instructions: FitInstructions

    @property
    def round_idx(self) -> int:
        return self.record.round


def round_view(
    record: RoundRecord,
    global_params: torch.Tensor,
    num_available: int,
    cohort_size: int,
    aggregated: Sequence[ClientReport],
    instructions: FitInstructions,
) -> RoundView:
    ids = np.array([r.client_id for r in aggregated], dtype=np.int64)
    samples = np.array([r.num_samples for r in aggregated], dtype=np.int64)
    return RoundView(record, global_params, num_available, cohort_size, ids, samples, instructions)


@dataclass(frozen=True)
class Observation:
    # this round's ledger columns (a str is a TEXT column: width_accuracy's JSON)
    columns: dict[str, float | str | None] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # kept in RoundRecord.metrics
    stop: str | None = None  # why the run should end after this round, if it should


NOTHING = Observation()


@runtime_checkable
class RoundObserver(Protocol):
    def observe(self, view: RoundView) -> Observation:
        """A finished round, before it is recorded: what the observer adds to its ledger
        row, the metrics it keeps in the record, and whether the run should stop."""
        ...

    def on_round_end(self, record: RoundRecord) -> None:
        """The round is recorded in the ledger (progress displays show it here)."""
        ...

    def on_progress(self, progress: FitProgress) -> None:
        """How far the current round's training has come (clients done of k, steps)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs to observe on exactly (the snapshot holds it)."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class Observer:
    """Base of observers: every hook does nothing until overridden."""

    def observe(self, view: RoundView) -> Observation:
        return NOTHING

    def on_round_end(self, record: RoundRecord) -> None:
        return None

    def on_progress(self, progress: FitProgress) -> None:
        return None

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        return None


Callback = Callable[[RoundRecord, RoundView], tuple[bool, dict[str, Any]]]
"""A plain function as an observer: it sees each round's record and view and returns
(stop, metrics), pfl-research's callback shape."""


class CallbackObserver(Observer):
    def __init__(self, callback: Callback) -> None:
        self.callback = callback
        self.name = getattr(callback, "__name__", type(callback).__name__)

    def observe(self, view: RoundView) -> Observation:
        stop, metrics = self.callback(view.record, view)
        return Observation(
            metrics=dict(metrics or {}), stop=f"stopped by callback {self.name}" if stop else None
        )


class RoundHook(Observer):
    """``on_round(record)`` after each round is recorded, and ``on_progress`` within it
    (the CLI's progress display)."""

    def __init__(
        self,
        on_round: Callable[[RoundRecord], None] | None = None,
        on_progress: Callable[[FitProgress], None] | None = None,
    ) -> None:
        self._on_round = on_round
        self._on_progress = on_progress

    def on_round_end(self, record: RoundRecord) -> None:
        if self._on_round is not None:
            self._on_round(record)

    def on_progress(self, progress: FitProgress) -> None:
        if self._on_progress is not None:
            self._on_progress(progress)


@dataclass(frozen=True)
class Observed:
    """Every observer's observation of a round, merged (the first stop reason wins)."""

    columns: dict[str, float | str | None]
    metrics: dict[str, Any]
    stop: str | None


def observe_all(observers: Sequence[RoundObserver], view: RoundView) -> Observed:
    columns: dict[str, float | str | None] = {}
    metrics: dict[str, Any] = {}
    stop: str | None = None
    for obs in observers:  # every observer sees every round, even after one asks to stop
        seen = obs.observe(view)
        columns.update(seen.columns)
        metrics.update(seen.metrics)
        stop = stop if stop is not None else seen.stop
    return Observed(columns, metrics, stop)
