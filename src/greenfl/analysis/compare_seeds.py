"""Running configs over seeds for ``greenfl compare``: every config at every seed, each run
into its own folder, its metrics collected for greenfl.analysis.seed_stats to aggregate.
This is the part of the comparison that runs the engine (through greenfl.api)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from greenfl.analysis.seed_stats import ConfigRuns, align_targets, run_metrics
from greenfl.config import RunConfig, load_config
from greenfl.report.compare_terminal import run_done_line


def config_names(paths: Sequence[str | Path]) -> list[str]:
    """Config file stems, made unique with -2, -3, ..."""
    names: list[str] = []
    for p in paths:
        stem = Path(p).stem
        name, i = stem, 2
        while name in names:
            name, i = f"{stem}-{i}", i + 1
        names.append(name)
    return names


def compare(
    paths: Sequence[str | Path],
    seeds: Sequence[int] | None,
    out_dir: str | Path,
    overrides: Sequence[str] = (),
    run_fn: Callable[[RunConfig, Path], dict[str, Any]] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> list[ConfigRuns]:
    """Run every config at every seed (each config's own seed when ``seeds`` is None) into
    ``out_dir/<config>-seed<s>/`` (flat, so ``greenfl report DIR`` finds
    every run) and collect each run's metrics."""
    if run_fn is None:
        from greenfl.api import run

        def run_fn(cfg: RunConfig, out: Path) -> dict[str, Any]:
            return run(cfg, out).summary

    cfgs = [load_config(p, list(overrides)) for p in paths]  # all errors before any run
    out = Path(out_dir)
    results = [
        ConfigRuns(name, str(path), list(seeds) if seeds is not None else [cfg.seed])
        for name, path, cfg in zip(config_names(paths), paths, cfgs, strict=True)
    ]
    # Interleaved by seed (A0 B0 A1 B1 ...), not config by config: the server's energy is
    # measured, so a machine whose load drifts during the comparison affects all alike.
    order = [
        (c, cfg, seed)
        for i in range(max(len(c.seeds) for c in results))
        for c, cfg in zip(results, cfgs, strict=True)
        for seed in c.seeds[i : i + 1]
    ]
    metrics: dict[tuple[str, int], tuple[dict[str, float | None], str]] = {}
    for done, (c, cfg, seed) in enumerate(order, start=1):
        run_dir = out / f"{c.name}-seed{seed}"
        if on_progress is not None:
            on_progress(f"[{done}/{len(order)}] {c.name} seed {seed} -> {run_dir}")
        summary = run_fn(cfg.replace(seed=seed), run_dir)
        metrics[(c.name, seed)] = (run_metrics(summary, run_dir / "ledger.sqlite"), str(run_dir))
        if on_progress is not None:
            on_progress(f"    done: {run_done_line(summary)}")
    for c in results:
        for seed in c.seeds:
            m, d = metrics[(c.name, seed)]
            c.metrics.append(m)
            c.out_dirs.append(d)
    align_targets(results)
    return results
