"""Sparse training from ``[sparsity]`` (docs/submodels.md, "Sparse training"): the
server's mask state on the model's prunable layout, and what it needs of the run (the
codec's payload size for estimates, the FLOP counter for pruned units, the trainer that
honours a masked forward)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from greenfl.clients.trainer import ClientTrainer, SequentialTrainer
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.data.base import FederatedDataset
from greenfl.models.flops import training_flops_per_sample
from greenfl.sparse.channels import ChannelPruner
from greenfl.sparse.layout import prunable_layout
from greenfl.sparse.schedule import PruneSchedule
from greenfl.sparse.server import SparseTraining


def sparse_training_for(
    cfg: RunConfig,
    model: nn.Module,
    dataset: FederatedDataset,
    population_size: int,
    codec: Codec,
    flops_per_sample: float,
    deployed: bool,
) -> SparseTraining | None:
    """The run's sparse training, or None with ``sparsity.name = "none"``.
    ``flops_per_sample``: the dense model's counted training FLOPs. A simulated and a
    served run build the same state (``deployed`` changes nothing: a deployment's tasks
    carry the kept values and the mask, greenfl.deploy.server.transport); a deployed
    client builds its own with ``population_size`` 1 to rebuild the masked model."""
    sp = cfg.sparsity
    if sp.name == "none":
        return None
    schedule = PruneSchedule(sp.target, sp.start_round, sp.end_round, sp.every_rounds)
    probe_codec = copy.deepcopy(codec)  # no client's state is touched

    def payload_bytes(numel: int) -> int:
        probe = torch.randn(numel, generator=torch.Generator().manual_seed(0)) * 1e-3
        return len(probe_codec.encode(probe, 0, torch.Generator()).payload)

    def flops_of(module: nn.Module) -> float:
        return training_flops_per_sample(
            module, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
        )

    layout = prunable_layout(model)
    channels = ChannelPruner(model, layout, flops_of) if sp.structured else None
    return SparseTraining(
        model, layout, schedule, population_size, payload_bytes, flops_per_sample, channels
    )


def sparse_trainer(sparse: SparseTraining, configured: ClientTrainer) -> ClientTrainer:
    """The trainer of a sparse run. Unstructured: the sequential one, because the
    vectorised trainer stacks the model's own layers (its MLP path is plain batched
    matmuls) and would train the pruned weights too; the masked forward needs a trainer
    that calls the module. Structured: the configured one (the kept units' model is a
    plain smaller model)."""
    return configured if sparse.channels is not None else SequentialTrainer()
