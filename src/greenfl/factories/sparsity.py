"""Sparse training from ``[sparsity]`` (docs/submodels.md, "Sparse training"): the
server's mask state on the model's prunable layout, and what it needs of the run (the
codec's payload size for estimates, the trainer that honours a masked forward)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from greenfl.clients.trainer import ClientTrainer, SequentialTrainer
from greenfl.compression.base import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.sparse.layout import prunable_layout
from greenfl.sparse.schedule import PruneSchedule
from greenfl.sparse.server import SparseTraining


def sparse_training_for(
    cfg: RunConfig, model: nn.Module, population_size: int, codec: Codec, deployed: bool
) -> SparseTraining | None:
    """The run's sparse training, or None with ``sparsity.name = "none"``."""
    sp = cfg.sparsity
    if sp.name == "none":
        return None
    if deployed:
        raise ConfigError(
            f"sparsity.name = {sp.name!r} runs in simulation only for now: the wire carries "
            "dense models (docs/submodels.md)"
        )
    schedule = PruneSchedule(sp.target, sp.start_round, sp.end_round, sp.every_rounds)
    probe_codec = copy.deepcopy(codec)  # no client's state is touched

    def payload_bytes(numel: int) -> int:
        probe = torch.randn(numel, generator=torch.Generator().manual_seed(0)) * 1e-3
        return len(probe_codec.encode(probe, 0, torch.Generator()).payload)

    return SparseTraining(model, prunable_layout(model), schedule, population_size, payload_bytes)


def sparse_trainer() -> ClientTrainer:
    """The trainer of a sparse run: the sequential one. The vectorised trainer stacks the
    model's own layers (its MLP path is plain batched matmuls), so it would train the
    pruned weights too; the masked forward needs a trainer that calls the module."""
    return SequentialTrainer()
