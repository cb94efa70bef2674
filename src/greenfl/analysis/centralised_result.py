"""The centralised estimate as a record, and its file in a run folder (centralised.json):
what ``greenfl estimate centralised`` writes and the run's report reads. Plain data only,
so that reading it needs neither torch nor the engine."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ESTIMATE_FILE = "centralised.json"


@dataclass(frozen=True)
class CentralisedEstimate:
    work: str
    work_flops: float
    epochs: float  # passes over the pooled training set the work amounts to
    server_flops_per_s: float
    train_s: float
    server_energy_j: float
    server_ci_g_per_kwh: float
    server_carbon_g: float
    data_bytes: int
    upload_energy_j: float
    upload_operational_g: float
    upload_embodied_g: float
    reached_accuracy: float | None = None
    assumptions: list[str] = field(default_factory=list)

    @property
    def energy_j(self) -> float:
        return self.server_energy_j + self.upload_energy_j

    @property
    def carbon_g(self) -> float:
        return self.server_carbon_g + self.upload_operational_g + self.upload_embodied_g

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["energy_j"] = self.energy_j
        d["carbon_g"] = self.carbon_g
        return d


def save_estimate(run_dir: Path, est: CentralisedEstimate) -> Path:
    dest = Path(run_dir) / ESTIMATE_FILE
    dest.write_text(json.dumps(est.to_dict(), indent=2) + "\n")
    return dest


def load_estimate(run_dir: Path) -> CentralisedEstimate | None:
    """The estimate saved in ``run_dir``, or None (none saved, or an old or hand-edited
    file, which is then estimated afresh by whoever asks)."""
    p = Path(run_dir) / ESTIMATE_FILE
    if not p.is_file():
        return None
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
        d.pop("energy_j", None)
        d.pop("carbon_g", None)
        return CentralisedEstimate(**d)
    except (json.JSONDecodeError, TypeError, UnicodeDecodeError):
        return None
