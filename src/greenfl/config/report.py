"""The ``[report]`` section: the HTML report and optional metric loggers."""

from __future__ import annotations

from pydantic import Field

from greenfl.config.base import Section


class ReportConfig(Section):
    html: bool = Field(True, description="greenfl run writes report.html into its --out folder")
    tensorboard_dir: str | None = Field(
        None, min_length=1, description="log per-round metrics to TensorBoard here"
    )
    mlflow: bool = Field(False, description="log per-round metrics to MLflow")
    mlflow_experiment: str = Field("greenfl", min_length=1, description="MLflow experiment name")
    mlflow_tracking_uri: str | None = Field(
        None, min_length=1, description="MLflow tracking server; none: MLflow's default"
    )
