"""The benchmark workloads W1-W5 as greenfl config dicts, without importing greenfl (so the
CLI benchmark can write a config and time ``greenfl run`` alone). See bench/greenfl_bench.py
and bench/peers/workloads.py for what each workload is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

WORKLOADS: dict[str, dict] = {
    "W1": {
        "data": {"dataset": "digits", "num_clients": 1000, "partition": "iid"},
        "model": {"name": "mlp", "params": {"hidden": [64]}},
        "train": {"rounds": 10, "clients_per_round": 100, "batch_size": 16, "lr": 0.1},
    },
    "W2": {
        "data": {
            "dataset": "synthetic",
            "num_clients": 10_000,
            "params": {"alpha": 1.0, "beta": 1.0, "samples_per_client": 20},
        },
        "model": {"name": "mlp", "params": {"hidden": [64]}},
        "train": {"rounds": 10, "clients_per_round": 1000, "batch_size": 16, "lr": 0.1},
    },
    "W3": {
        "data": {"dataset": "images", "num_clients": 100, "params": {"samples_per_client": 100}},
        "model": {"name": "cnn"},
        "train": {"rounds": 10, "clients_per_round": 10, "batch_size": 16, "lr": 0.05},
    },
    "W4": {
        "data": {"dataset": "femnist", "num_clients": 100, "params": {"split": "leaf"}},
        "model": {"name": "femnist_cnn"},
        "train": {"rounds": 10, "clients_per_round": 10, "batch_size": 16, "lr": 0.05},
    },
    "W5": {
        "data": {"dataset": "shakespeare", "num_clients": 100, "params": {"min_samples": 64}},
        "model": {"name": "char_lstm"},
        "train": {
            "rounds": 10,
            "clients_per_round": 10,
            "batch_size": 16,
            "lr": 0.8,
            "max_local_steps": 10,
        },
    },
}


def raw_config(workload: str, trainer: str = "auto", accounting: bool = True) -> dict:
    """Workload ``workload`` as a config dict (``greenfl.build_config`` validates it)."""
    raw = json.loads(json.dumps(WORKLOADS[workload]))
    if workload == "W4":  # the LEAF JSON folder every framework reads
        sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
        import workloads

        raw["data"]["path"] = str(workloads.femnist_dir())
    raw["seed"] = 0
    # The peers evaluate centrally only; greenfl's per-client evaluation would be extra work.
    raw["eval"] = {"every": 0}
    raw["train"]["local_epochs"] = 1
    raw["strategy"] = {"name": "fedavg"}
    raw["selection"] = {"name": "random"}
    raw["engine"] = {"trainer": trainer, "accounting": accounting}
    return raw
