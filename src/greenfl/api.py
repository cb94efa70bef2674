"""The Python API, mirroring the CLI: ``greenfl.run(config) -> RunResult``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from greenfl.config import RunConfig, load_config
from greenfl.data.base import FederatedDataset
from greenfl.engine.build import build_loop
from greenfl.engine.records import Callback, RoundRecord
from greenfl.engine.session import check_out_dir, run_session, write_outputs

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
    callbacks: Sequence[Callback] = (),
    on_round: Callable[[RoundRecord], None] | None = None,
    overwrite: bool = False,
    resume: bool = False,
) -> RunResult:
    """Run one federated experiment. ``config`` is a RunConfig, a config file path, or None
    for the built-in quickstart; ``out`` is where ledger.sqlite and summary.json go
    (a folder that already holds a ledger is refused unless ``overwrite``; ``resume``
    continues the run in ``out`` from its last complete round). Ctrl-C or SIGTERM raise
    greenfl.engine.session.RunInterrupted, a KeyboardInterrupt, with the ledger marked
    ``interrupted``."""
    if isinstance(config, RunConfig):
        cfg = config if not overrides else config.replace(**_pairs(overrides))
    else:
        cfg = load_config(config, list(overrides))
    if out is not None:
        check_out_dir(Path(out))
    loop = build_loop(
        cfg,
        out,
        model=model,
        dataset=dataset,
        callbacks=callbacks,
        overwrite=overwrite,
        resume=resume,
    )
    out_dir = Path(out) if out is not None else None
    result = run_session(loop, cfg, out_dir, on_round)
    return RunResult(cfg, loop.history, result.summary, result.stop_reason, out_dir)


def _pairs(overrides: Sequence[str]) -> dict[str, Any]:
    from greenfl.config import _parse_value

    return {k: _parse_value(v) for k, v in (o.split("=", 1) for o in overrides)}
