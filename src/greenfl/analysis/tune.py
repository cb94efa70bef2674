"""``greenfl tune``: a grid search of a baseline's parameters over seeds, so that every
ratio greenfl publishes is against the best configuration of the baseline, not a default.

Each point of the grid runs at every seed into ``DIR/runs/<point>-seed<s>/``. A point is
ranked by its mean metric over the seeds; for a "to target" metric, points that reached the
target at every seed rank first, then by how many seeds reached it. ``DIR/tune.csv`` holds
every point, best first; ``DIR/best.toml`` is the base config with the best point's values
set, ready for ``greenfl run`` or ``greenfl compare``."""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenfl.analysis.seed_stats import METRICS, mean_std, run_metrics
from greenfl.config import RunConfig, apply_override, load_config, read_config_file
from greenfl.core.errors import ConfigError

HIGHER_IS_BETTER = frozenset({"final_accuracy"})
METRIC_KEYS = tuple(key for key, _, _ in METRICS)


@dataclass(frozen=True)
class GridAxis:
    key: str
    values: tuple[str, ...]  # as typed: each is parsed like a --set value


@dataclass
class GridPoint:
    index: int
    assignments: tuple[tuple[str, str], ...]  # (key, value) per axis
    values: list[float | None]  # the metric at each seed (None: target not reached)
    out_dirs: list[str]

    @property
    def reached(self) -> int:
        return sum(v is not None for v in self.values)

    @property
    def mean(self) -> float | None:
        return mean_std(self.values)[0]

    @property
    def std(self) -> float | None:
        return mean_std(self.values)[1]

    def overrides(self) -> list[str]:
        return [f"{k}={v}" for k, v in self.assignments]

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.assignments)


def split_values(text: str) -> list[str]:
    """V1,V2,... split at the commas outside brackets and quotes (so lists stay whole)."""
    out, depth, quote, cur = [], 0, "", []
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_grid(specs: Sequence[str]) -> list[GridAxis]:
    """``KEY=V1,V2`` per axis; every key once, every value non-empty."""
    axes: list[GridAxis] = []
    for spec in specs:
        key, sep, raw = spec.partition("=")
        key = key.strip()
        values = split_values(raw) if sep else []
        if not key or not values or any(not v for v in values):
            raise ConfigError(f"--grid expects KEY=V1,V2,..., got {spec!r}")
        if key in {a.key for a in axes}:
            raise ConfigError(f"--grid {key} is given twice")
        if key == "seed":
            raise ConfigError("--grid seed: seeds are --seeds, not a grid axis")
        axes.append(GridAxis(key, tuple(values)))
    if not axes:
        raise ConfigError("greenfl tune needs at least one --grid KEY=V1,V2")
    return axes


def grid_points(axes: Sequence[GridAxis]) -> list[tuple[tuple[str, str], ...]]:
    return [
        tuple(zip((a.key for a in axes), combo, strict=True))
        for combo in itertools.product(*(a.values for a in axes))
    ]


def rank_key(point: GridPoint, metric: str) -> tuple[float, float, int]:
    """Sort key, best first: most seeds reached, then the mean (higher first where higher
    is better), then grid order."""
    mean = point.mean
    if mean is None:
        return (-point.reached, math.inf, point.index)
    return (-point.reached, -mean if metric in HIGHER_IS_BETTER else mean, point.index)


def tune(
    base: Path,
    grid: Sequence[str],
    seeds: Sequence[int],
    metric: str,
    out_dir: Path,
    overrides: Sequence[str] = (),
    run_fn: Callable[[RunConfig, Path], dict[str, Any]] | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> list[GridPoint]:
    """Run the grid; return its points, best first (and write tune.csv and best.toml)."""
    if metric not in METRIC_KEYS:
        raise ConfigError(f"--metric {metric!r}: not one of {', '.join(METRIC_KEYS)}")
    if not seeds:
        raise ConfigError("--seeds: at least one seed")
    axes = parse_grid(grid)
    combos = grid_points(axes)
    # Every point's config is validated before the first run: a typo fails in a second.
    cfgs = [load_config(base, [*overrides, *(f"{k}={v}" for k, v in c)]) for c in combos]
    if metric.endswith("to_target") and any(c.stop.target_accuracy is None for c in cfgs):
        raise ConfigError(f"--metric {metric} needs stop.target_accuracy in the config")
    if run_fn is None:
        from greenfl.api import run

        def run_fn(cfg: RunConfig, out: Path) -> dict[str, Any]:
            return run(cfg, out).summary

    points: list[GridPoint] = []
    total = len(combos) * len(seeds)
    for i, (combo, cfg) in enumerate(zip(combos, cfgs, strict=True)):
        point = GridPoint(i, combo, [], [])
        for seed in seeds:
            run_dir = out_dir / "runs" / f"p{i:03d}-seed{seed}"
            if on_progress is not None:
                done = i * len(seeds) + len(point.values) + 1
                on_progress(f"[{done}/{total}] {point.label()} seed {seed} -> {run_dir}")
            summary = run_fn(cfg.replace(seed=seed), run_dir)
            point.values.append(run_metrics(summary, run_dir / "ledger.sqlite")[metric])
            point.out_dirs.append(str(run_dir))
        points.append(point)
    points.sort(key=lambda p: rank_key(p, metric))
    write_tune_csv(points, axes, seeds, metric, out_dir / "tune.csv")
    write_best(base, overrides, points[0], metric, seeds, out_dir / "best.toml")
    return points


def write_tune_csv(
    points: Sequence[GridPoint],
    axes: Sequence[GridAxis],
    seeds: Sequence[int],
    metric: str,
    path: Path,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(
            [
                "rank",
                *(a.key for a in axes),
                f"{metric}_mean",
                f"{metric}_std",
                "seeds_reached",
                *(f"{metric}_seed{s}" for s in seeds),
            ]
        )
        for rank, p in enumerate(points, start=1):
            w.writerow(
                [
                    rank,
                    *(v for _, v in p.assignments),
                    p.mean,
                    p.std,
                    f"{p.reached}/{len(seeds)}",
                    *p.values,
                ]
            )
    return path


def write_best(
    base: Path,
    overrides: Sequence[str],
    best: GridPoint,
    metric: str,
    seeds: Sequence[int],
    path: Path,
) -> Path:
    """The base config file's keys with the overrides and the best point's values set: the
    user's own file, so defaults and relative paths mean what they meant there."""
    import tomli_w

    data = read_config_file(base)
    for assignment in [*overrides, *best.overrides()]:
        apply_override(data, assignment)
    load_config_data_check(data, path)
    mean = "not reached" if best.mean is None else f"{best.mean:.6g}"
    header = (
        f"# greenfl tune: the best point of the grid over {base}, by {metric} (mean over "
        f"seeds {','.join(map(str, seeds))}: {mean}, reached {best.reached}/{len(seeds)}).\n"
        f"# {best.label()}\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + tomli_w.dumps(data), encoding="utf-8")
    return path


def load_config_data_check(data: dict[str, Any], where: Path) -> None:
    """best.toml must load as it is written (TOML has no null: a key set to none is
    dropped, which must mean its default)."""
    from greenfl.config import build_config

    cleaned = _drop_none(data)
    try:
        if build_config(cleaned) != build_config(data):
            raise ConfigError("a key set to none has a default that is not none")
    except ConfigError as exc:
        raise ConfigError(f"{where}: cannot write the tuned config: {exc}") from None
    data.clear()
    data.update(cleaned)


def _drop_none(node: dict[str, Any]) -> dict[str, Any]:
    return {
        k: _drop_none(v) if isinstance(v, dict) else v for k, v in node.items() if v is not None
    }
