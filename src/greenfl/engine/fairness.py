"""Who took part, and what that did to the model: Jain's index of participation, the
accuracy of the final model on the least-represented region's clients, and on every
region's clients (``region_accuracy``).

Starving high-carbon grids silently biases the model toward the data of cheap clients; this
makes the bias visible. The final model is evaluated on the regions' clients' own test
data (``client_test_data``): data it never trained on."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from greenfl.data.base import FederatedDataset
from greenfl.fleet.population import Population
from greenfl.ledger.writer import LedgerWriter
from greenfl.models.evaluate import evaluate
from greenfl.selection.fairness import jain_index

_MAX_CLIENTS = 2000  # clients evaluated for the region, to bound the cost on huge fleets
REGION_ACCURACY_KEY = "region_accuracy"  # the meta key (the report reads it by this name)
# Each region's accuracy is measured on at most this many of its clients and test samples:
# 14 regions of a million clients cost no more than 14 x 500 samples (an accuracy's
# standard error at 500 samples is at most 0.022).
REGION_MAX_CLIENTS = 100
REGION_MAX_SAMPLES = 500
_REGION_STREAM = 31


def fairness_report(
    population: Population,
    participation: np.ndarray,
    dataset: FederatedDataset,
    evaluate: Callable[[tuple[torch.Tensor, torch.Tensor]], tuple[float, float]],
) -> dict[str, str]:
    """Meta-table entries: jain_index, least_region, least_region_participation (mean rounds
    completed per client), least_region_clients, least_region_accuracy and how it was
    measured (least_region_accuracy_data), and region_accuracy (``region_accuracy``, as
    JSON)."""
    regions = population.fleet.regions
    present = np.unique(population.region)
    per_client = np.array(
        [participation[population.region == r].mean() for r in present], dtype=np.float64
    )
    least = int(present[int(np.argmin(per_client))])
    clients = np.flatnonzero(population.region == least)
    if len(clients) > _MAX_CLIENTS:
        clients = np.sort(np.random.default_rng(0).choice(clients, _MAX_CLIENTS, replace=False))
    parts = [dataset.client_test_data(int(c)) for c in clients]
    x = torch.cat([p[0] for p in parts])
    y = torch.cat([p[1] for p in parts])
    accuracy, _ = evaluate((x, y))
    return {
        "jain_index": repr(jain_index(participation)),
        "least_region": regions[least].name,
        "least_region_participation": repr(float(per_client.min())),
        "least_region_clients": str(int((population.region == least).sum())),
        "least_region_accuracy": repr(float(accuracy)),
        "least_region_accuracy_data": "test data held by the region's clients",
        REGION_ACCURACY_KEY: json.dumps(region_accuracy(population, dataset, evaluate)),
    }


def region_accuracy(
    population: Population,
    dataset: FederatedDataset,
    evaluate: Callable[[tuple[torch.Tensor, torch.Tensor]], tuple[float, float]],
) -> dict[str, dict[str, float | int]]:
    """{region name: {"accuracy", "clients"}} for every region holding clients whose test
    data is not empty: the accuracy on the pooled test data of a seeded sample of the
    region's clients (REGION_MAX_CLIENTS, taken in a seeded order until REGION_MAX_SAMPLES
    samples), and how many clients that sample holds. Regions in the fleet's order."""
    out: dict[str, dict[str, float | int]] = {}
    for region in np.unique(population.region):
        members = np.flatnonzero(population.region == region)
        rng = np.random.default_rng([_REGION_STREAM, int(region)])
        sample = rng.choice(members, min(len(members), REGION_MAX_CLIENTS), replace=False)
        xs, ys, room = [], [], REGION_MAX_SAMPLES
        for client in sample:
            x, y = dataset.client_test_data(int(client))
            if len(y) == 0:
                continue
            xs.append(x[:room])
            ys.append(y[:room])
            room -= len(ys[-1])
            if room <= 0:
                break
        if not ys:
            continue
        accuracy, _ = evaluate((torch.cat(xs), torch.cat(ys)))
        name = population.fleet.regions[int(region)].name
        out[name] = {"accuracy": float(accuracy), "clients": len(ys)}
    return out


def write_fairness(
    ledger: LedgerWriter,
    population: Population,
    participation: np.ndarray,
    dataset: FederatedDataset,
    model: nn.Module,
    global_params: torch.Tensor,
) -> dict[str, str]:
    """``fairness_report`` of the final model, written into the ledger's meta table."""
    meta = fairness_report(
        population, participation, dataset, lambda data: evaluate(model, global_params, data)
    )
    for key, value in meta.items():
        ledger.set_meta(key, value)
    return meta
