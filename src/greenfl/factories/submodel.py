"""Width-scaled sub-models from ``[submodel]`` (docs/submodels.md): each width's built
sub-model, slice and counted cost, the plan that picks each client's width, and the
HeteroFL strategy that averages the overlapping slices."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import torch
from torch import nn

from greenfl.clients.inprocess import WidthModel
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.data.base import FederatedDataset
from greenfl.engine.observers import Observation, Observer, RoundView
from greenfl.models.evaluate import evaluate
from greenfl.models.flops import training_flops_per_sample
from greenfl.submodel.aggregate import HeteroFL
from greenfl.submodel.costs import FLOAT32_BYTES
from greenfl.submodel.plan import submodel
from greenfl.submodel.policy import WidthCost, WidthPlan


@dataclass(frozen=True)
class Submodels:
    """What the run's parts need of its sub-models."""

    plan: WidthPlan
    models: dict[float, WidthModel]  # the widths below 1, trained in process
    slice_numel: dict[float, int]  # every width's slice length (validation)
    strategy: HeteroFL


def payload_bytes(codec: Codec, numel: int) -> int:
    """``codec``'s payload for an update of ``numel`` entries (a copy of the codec: no
    client's state is touched)."""
    probe = torch.randn(numel, generator=torch.Generator().manual_seed(0)) * 1e-3
    return len(copy.deepcopy(codec).encode(probe, 0, torch.Generator()).payload)


def submodels_for(
    cfg: RunConfig,
    model: nn.Module,
    dataset: FederatedDataset,
    codec: Codec,
    full_flops_per_sample: float,
) -> Submodels | None:
    """The run's sub-models, or None with ``submodel.name = "none"``."""
    sm = cfg.submodel
    if sm.name == "none":
        return None
    costs, models, slices = [], {}, []
    for width in sm.widths:
        built = submodel(model, width)
        numel = built.slice.numel
        if width == 1.0:
            flops = full_flops_per_sample  # the same counter on the same model
        else:
            flops = training_flops_per_sample(
                built.module, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
            )
            indices = torch.from_numpy(built.slice.indices)
            models[width] = WidthModel(built.module, indices, flops)
        slices.append(built.slice)
        costs.append(
            WidthCost(width, numel, flops, payload_bytes(codec, numel), FLOAT32_BYTES * numel)
        )
    plan = WidthPlan(
        sm.name, sm.choice, tuple(costs), cfg.fleet.deadline_s, sm.full_share, cfg.seed
    )
    full_numel = slices[0].full_numel
    return Submodels(
        plan,
        models,
        {c.width: c.numel for c in costs},
        HeteroFL(slices, full_numel),
    )


def refuse_submodel_given(cfg: RunConfig, strategy_given: bool) -> None:
    """What sub-models cannot run with yet, once the run's objects are known (a
    deployment's clients train their slices: greenfl.deploy.widths)."""
    if cfg.submodel.name == "none":
        return
    if strategy_given:
        raise ConfigError(
            f"submodel.name = {cfg.submodel.name!r} aggregates with HeteroFL: a strategy "
            "object cannot be handed to the run"
        )


WIDTH_ACCURACY_KEY = "submodel_width_accuracy"
# The ledger's rounds column of the same numbers, JSON text {"0.5": accuracy, ...} (keys:
# str(width)), so the report reads them instead of evaluating the model again.
WIDTH_ACCURACY_COLUMN = "width_accuracy"


class WidthAccuracy(Observer):
    """Each round, the test accuracy of every narrower width's slice of the new global
    model (the full model's is the round's own accuracy): ``RoundRecord.metrics
    ["submodel_width_accuracy"]``, {width: accuracy}, and the ledger's
    ``rounds.width_accuracy``. Nothing to resume: it is a pure function of the global
    model."""

    def __init__(self, models: dict[float, WidthModel], dataset: FederatedDataset) -> None:
        self.models = models
        self.test_data = dataset.test_data()

    def observe(self, view: RoundView) -> Observation:
        params = view.global_params
        accuracy = {
            width: evaluate(sub.module, params[sub.indices], self.test_data)[0]
            for width, sub in self.models.items()
        }
        column = json.dumps({str(float(w)): a for w, a in accuracy.items()}, sort_keys=True)
        return Observation(
            columns={WIDTH_ACCURACY_COLUMN: column}, metrics={WIDTH_ACCURACY_KEY: accuracy}
        )
