"""The Python API, mirroring the CLI: ``greenfl.run(config) -> RunResult``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from greenfl.clients.transport import FitProgress
from greenfl.compression.base import Codec
from greenfl.config import RunConfig, load_config
from greenfl.config.keys import split_override
from greenfl.core.files import check_out_dir
from greenfl.core.threads import torch_threads
from greenfl.data.base import FederatedDataset
from greenfl.engine.observers import Callback, RoundHook, RoundObserver
from greenfl.engine.records import RoundRecord
from greenfl.engine.session import run_session, write_outputs
from greenfl.factories import build_loop
from greenfl.selection.base import ClientSelector
from greenfl.strategy.base import Strategy

__all__ = ["RunResult", "run", "write_outputs"]


@dataclass(frozen=True)
class RunResult:
    config: RunConfig
    history: list[RoundRecord]
    summary: dict[str, Any]
    stop_reason: str
    out_dir: Path | None

    @property
    def final_accuracy(self) -> float | None:
        return self.summary["final_accuracy"]


def run(
    config: RunConfig | str | Path | None = None,
    out: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    model: nn.Module | None = None,
    dataset: FederatedDataset | None = None,
    strategy: Strategy | None = None,
    selector: ClientSelector | None = None,
    codec: Codec | None = None,
    observers: Sequence[RoundObserver] = (),
    callbacks: Sequence[Callback] = (),
    on_round: Callable[[RoundRecord], None] | None = None,
    on_progress: Callable[[FitProgress], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """Run one federated experiment.

    ``config`` is a RunConfig, a config file path, or None for the built-in quickstart;
    ``overrides`` are ``KEY=VALUE`` strings as ``--set`` takes them. ``out`` is where
    ledger.sqlite and summary.json go (a folder that already holds a ledger is refused
    unless ``overwrite``; ``resume`` continues the run in ``out`` from its last complete
    round).

    Ready objects replace the configured ones: any torch.nn.Module as ``model``, any
    FederatedDataset as ``dataset`` (its clients must number data.num_clients), and any
    ``strategy``, ``selector`` or ``codec``. ``observers`` watch every round
    (greenfl.engine.observers); ``callbacks`` are functions ``(record, view) -> (stop,
    metrics)``; ``on_round(record)`` and ``on_progress(progress)`` report progress.

    Ctrl-C or SIGTERM raise greenfl.engine.session.RunInterrupted, a KeyboardInterrupt,
    with the ledger marked ``interrupted``."""
    if isinstance(config, RunConfig):
        cfg = config if not overrides else config.replace(**_pairs(overrides))
    else:
        cfg = load_config(config, list(overrides))
    if out is not None:
        check_out_dir(Path(out))
    hooks = [RoundHook(on_round, on_progress)] if on_round or on_progress else []
    # Building (data, model, FLOP counting) on one thread; the run on its own (engine.threads).
    with torch_threads(1):
        loop = build_loop(
            cfg,
            out,
            model=model,
            dataset=dataset,
            callbacks=callbacks,
            overwrite=overwrite,
            resume=resume,
            strategy=strategy,
            selector=selector,
            codec=codec,
            observers=[*observers, *hooks],
        )
    out_dir = Path(out) if out is not None else None
    result = run_session(loop, cfg.to_dict(), out_dir)  # on the run's threads
    return RunResult(cfg, loop.history, result.summary, result.stop_reason, out_dir)


def _pairs(overrides: Sequence[str]) -> dict[str, Any]:
    return dict(split_override(o) for o in overrides)
