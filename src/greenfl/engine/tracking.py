"""Optional per-round logging to TensorBoard and MLflow, as observers. Both are off by
default (``report.tensorboard_dir``, ``report.mlflow``) and neither library is a dependency:
asking for one that is not installed is a clear error, never a silent no-op."""

from __future__ import annotations

import atexit
from typing import Any

from greenfl.core.errors import MissingExtraError
from greenfl.core.units import J_PER_KWH
from greenfl.engine.observers import Observation, Observer, RoundView
from greenfl.engine.records import RoundRecord


def round_metrics(rec: RoundRecord) -> dict[str, float]:
    """What is logged each round, keyed by metric name."""
    return {
        "accuracy": rec.accuracy,
        "loss": rec.loss,
        "clients_completed": float(rec.completed),
        "clients_selected": float(rec.selected),
        "energy_j": rec.energy_j,
        "carbon_g": rec.carbon_g,
        "cum_energy_kwh": rec.cum_energy_j / J_PER_KWH,
        "cum_carbon_g": rec.cum_carbon_g,
        "sim_time_s": rec.sim_time_s,
    }


class TensorBoardLogger(Observer):
    def __init__(self, log_dir: str) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtraError(
                "report.tensorboard_dir needs tensorboard: pip install tensorboard"
            ) from None
        self.writer = SummaryWriter(log_dir=log_dir)
        atexit.register(self.writer.close)

    def observe(self, view: RoundView) -> Observation:
        rec = view.record
        metrics = round_metrics(rec)
        for name, value in metrics.items():
            self.writer.add_scalar(f"greenfl/{name}", value, rec.round)
        self.writer.flush()  # a crash after this round still leaves it on disk
        return Observation(metrics=metrics)


class MlflowLogger(Observer):
    """``run_params``: the run's settings, logged once as the MLflow run's params."""

    def __init__(
        self, experiment: str, tracking_uri: str | None, run_params: dict[str, Any]
    ) -> None:
        self.run_params = run_params
        try:
            import mlflow
        except ImportError:
            raise MissingExtraError("report.mlflow needs mlflow: pip install mlflow") from None
        self.mlflow = mlflow
        if tracking_uri is not None:
            mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_experiment(experiment)
        self.started = False

    def observe(self, view: RoundView) -> Observation:
        rec = view.record
        if not self.started:
            self.mlflow.start_run()
            atexit.register(self.mlflow.end_run)
            self.mlflow.log_params(_flat(self.run_params))
            self.started = True
        metrics = round_metrics(rec)
        self.mlflow.log_metrics(metrics, step=rec.round)
        return Observation(metrics=metrics)


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = str(v)
    return out
