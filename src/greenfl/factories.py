"""The composition root: config sections in, policy objects out, each by its registry name.
Only this module (and the CLI / API that call it) reads a RunConfig to build policies; the
policies themselves take plain keyword arguments and never import config."""

from __future__ import annotations

import torch
from torch import nn

from greenfl.clients.trainer import ClientTrainer
from greenfl.compression import Codec, make_codec
from greenfl.config import CompressionConfig, RunConfig
from greenfl.data.base import FederatedDataset
from greenfl.models import build_model


def codec_for(cfg: CompressionConfig) -> Codec:
    if cfg.name == "topk":
        return make_codec("topk", ratio=cfg.topk_ratio)
    if cfg.name in ("q8", "q4"):
        return make_codec(cfg.name, chunk_size=cfg.chunk_size)
    return make_codec(cfg.name)


def trainer_for(cfg: RunConfig, model: nn.Module) -> ClientTrainer:
    if cfg.engine.backend == "ray":
        from greenfl.clients.ray_trainer import RayTrainer

        return RayTrainer(cfg.engine.ray_address)
    from greenfl.clients.vectorised import auto_trainer

    return auto_trainer(
        cfg.engine.trainer, model, cfg.train.clients_per_round, cfg.engine.vectorised_threads
    )


def build_model_for(cfg: RunConfig, dataset: FederatedDataset) -> nn.Module:
    torch.manual_seed(cfg.seed)
    return build_model(cfg.model.name, dataset.input_shape, dataset.num_classes, cfg.model.hidden)
