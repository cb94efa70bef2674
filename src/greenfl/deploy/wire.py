"""Converting between greenfl's values and the protobuf messages of greenfl.proto."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.clients.validate import WireTensor, flat_to_tensors, tensors_to_flat
from greenfl.compression.base import EncodedUpdate
from greenfl.core.messages import FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.fleet.catalog import Fleet

SESSION_KEY = "greenfl-session"  # RPC metadata: the session an update belongs to


def tensors_to_pb(tensors: Sequence[WireTensor]) -> list[pb.Tensor]:
    return [
        pb.Tensor(name=t.name, shape=list(t.shape), dtype=t.dtype, data=t.data) for t in tensors
    ]


def tensors_from_pb(msgs: Sequence[pb.Tensor]) -> list[WireTensor]:
    return [WireTensor(m.name, tuple(int(s) for s in m.shape), m.dtype, m.data) for m in msgs]


# Sparse training: a task's kept values, and an update's, travel as this one tensor
KEPT_VALUES = "kept_values"


def kept_spec(kept: int) -> ParamSpec:
    """The tensors of ``kept`` values under a sparsity mask (Task.sparse): one, flat."""
    return ParamSpec((KEPT_VALUES,), ((kept,),))


def params_to_pb(flat: torch.Tensor, spec: ParamSpec) -> list[pb.Tensor]:
    return tensors_to_pb(flat_to_tensors(flat, spec))


def params_from_pb(msgs: Sequence[pb.Tensor], spec: ParamSpec) -> torch.Tensor:
    return tensors_to_flat(tensors_from_pb(msgs), spec)


def instructions_to_pb(ins: FitInstructions) -> pb.FitInstructions:
    return pb.FitInstructions(
        local_epochs=ins.local_epochs,
        batch_size=ins.batch_size,
        lr=ins.lr,
        momentum=ins.momentum,
        prox_mu=ins.prox_mu,
        max_steps=ins.max_steps,
        dp_noise_multiplier=ins.dp_noise_multiplier,
        dp_max_grad_norm=ins.dp_max_grad_norm,
        # Full width travels as absent (0), fp32 as absent (""): a run without sub-models
        # or mixed precision sends the bytes it did before either existed.
        width=0.0 if ins.width == 1.0 else ins.width,
        precision="" if ins.precision == "fp32" else ins.precision,
    )


def instructions_from_pb(msg: pb.FitInstructions) -> FitInstructions:
    return FitInstructions(
        local_epochs=int(msg.local_epochs),
        batch_size=int(msg.batch_size),
        lr=float(msg.lr),
        momentum=float(msg.momentum),
        prox_mu=float(msg.prox_mu),
        max_steps=int(msg.max_steps),
        dp_noise_multiplier=float(msg.dp_noise_multiplier),
        dp_max_grad_norm=float(msg.dp_max_grad_norm),
        width=float(msg.width) if msg.width != 0.0 else 1.0,
        # Taken as sent: the client checks it before training (deploy.client.local).
        precision=msg.precision or "fp32",
    )


def enrolled_precisions(fleet: Fleet, entry: int) -> list[str]:
    """What ``JoinReply.precisions`` says of a client accounted as population ``entry``:
    "fp32", then the mixed precisions its device's execution target declares (the ones a
    run's ``train.precision`` can give its profile row)."""
    e = fleet.population[entry]
    target = fleet.devices[fleet.device_index(e.device)].target(e.target)
    return ["fp32", *(p.name for p in target.precisions)]


def encoded_to_pb(enc: EncodedUpdate) -> pb.EncodedUpdate:
    return pb.EncodedUpdate(codec=enc.codec, num_elements=enc.num_elements, payload=enc.payload)


def encoded_from_pb(msg: pb.EncodedUpdate) -> EncodedUpdate:
    return EncodedUpdate(codec=msg.codec, num_elements=int(msg.num_elements), payload=msg.payload)
