"""The Python API, mirroring the CLI: ``greenfl.run(config) -> RunResult``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from greenfl.config import RunConfig, load_config
from greenfl.data.base import FederatedDataset
from greenfl.engine.build import build_loop
from greenfl.engine.records import Callback, RoundRecord


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


def write_outputs(out: Path, cfg: RunConfig, summary: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2, sort_keys=True) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


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
) -> RunResult:
    """Run one federated experiment. ``config`` is a RunConfig, a config file path, or None
    for the built-in quickstart; ``out`` is where ledger.sqlite and summary.json go
    (a folder that already holds a ledger is refused unless ``overwrite``)."""
    if isinstance(config, RunConfig):
        cfg = config if not overrides else config.replace(**_pairs(overrides))
    else:
        cfg = load_config(config, list(overrides))
    loop = build_loop(
        cfg, out, model=model, dataset=dataset, callbacks=callbacks, overwrite=overwrite
    )
    try:
        reason = loop.run(on_round)
        loop.ledger.finish("completed", reason)
        summary = loop.summary()
    except BaseException:
        loop.ledger.finish("failed", "interrupted")
        raise
    finally:
        loop.transport.close()
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        write_outputs(out_dir, cfg, summary)
    loop.ledger.close()
    return RunResult(cfg, loop.history, summary, reason, out_dir)


def _pairs(overrides: Sequence[str]) -> dict[str, Any]:
    from greenfl.config import _parse_value

    return {k: _parse_value(v) for k, v in (o.split("=", 1) for o in overrides)}
