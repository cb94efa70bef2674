"""A deployed client's local side, built from the server's config when it joins."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from pydantic import ValidationError

from greenfl.clients.trainer import train_one
from greenfl.compression import Codec
from greenfl.config import RunConfig
from greenfl.core.errors import TransportError
from greenfl.core.messages import FitInstructions
from greenfl.core.params import ParamSpec, get_flat
from greenfl.data.base import FederatedDataset
from greenfl.data.local_dir import LocalDirDataset
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.factories import build_model_for, codec_for, dataset_for, model_name_for
from greenfl.models import training_flops_per_sample


@dataclass
class Local:
    """What a client builds once from the server's config: its data, model and codec."""

    cfg: RunConfig
    x: torch.Tensor
    y: torch.Tensor
    model: torch.nn.Module
    spec: ParamSpec
    codec: Codec
    flops_per_sample: float
    test: tuple[torch.Tensor, torch.Tensor] | None = None  # local held-out data, if any


def build_local(reply: pb.JoinReply, data: LocalDirDataset | None, client_id: int) -> Local:
    """What a client builds once from the server's config: its data (its own, checked
    against the run's model, or partition ``client_id``), model and codec."""
    try:
        cfg = RunConfig.model_validate_json(reply.config_json)
    except ValidationError as exc:
        # A server of another greenfl version may send keys this one does not know.
        raise TransportError(
            f"the server's config does not validate here (greenfl versions differ?): "
            f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}"
        ) from None
    test = None
    dataset: FederatedDataset
    if data is not None:
        if not reply.input_shape or reply.num_classes <= 0:
            raise TransportError(
                "the server did not say what its model takes (an older greenfl?); "
                "--data-dir needs a server of this version"
            )
        # Checked here, before any training: the first moment the model is known.
        local = data.for_model(
            tuple(reply.input_shape),
            int(reply.num_classes),
            f"the run's model ({model_name_for(cfg)} on {cfg.data.dataset})",
        )
        x, y = local.client_data(0)
        test = local.test_data() if local.test is not None else None
        dataset = local
    else:
        # Demo and test deployments hold partition N of the configured dataset.
        dataset = dataset_for(cfg.data, cfg.seed)
        x, y = dataset.client_data(client_id)
    model = build_model_for(cfg, dataset)
    flops = training_flops_per_sample(
        model, dataset.input_shape, dataset.num_classes, cfg.train.batch_size
    )
    codec = codec_for(cfg.compression)
    # One throwaway step (lr 0, on a copy of the weights): torch's first optimizer step
    # does one-time imports, seconds on a busy machine, that would otherwise be measured
    # as round 1's training time and energy.
    warm = FitInstructions(1, 1, 0.0, cfg.train.momentum, 0.0)
    train_one(model, get_flat(model), x[:1], y[:1], client_id, warm, 0)
    return Local(cfg, x, y, model, ParamSpec.of(model), codec, flops, test)
