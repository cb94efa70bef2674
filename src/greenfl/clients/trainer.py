"""The ClientTrainer protocol and the sequential trainer: real local SGD, client by client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from greenfl.clients.precision import LossScales, autocast, needs_loss_scale
from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.data.base import FederatedDataset


@dataclass(frozen=True)
class TrainResult:
    client_id: int
    delta: torch.Tensor  # flat float32, local - global
    num_samples: int
    samples_processed: int  # samples through forward+backward, for FLOP counting
    steps: int
    loss: float  # mean training loss over the local steps


_MASK64 = 2**64 - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def client_seed(seed: int, round_idx: int, client_id: int) -> int:
    """Seed of one client's shuffling in one round: independent of cohort order and of which
    trainer runs it, so sequential and vectorised trainers see the same batches. SplitMix64
    chained over the three numbers: well mixed, and ~1 us where a numpy SeedSequence takes
    ~30 us (a round of 1,000 clients asks for 2,000 seeds)."""
    h = _splitmix64(seed)
    h = _splitmix64(h ^ round_idx)
    return _splitmix64(h ^ client_id) >> 1  # < 2**63: a valid torch.Generator seed


def batch_order(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=g) for _ in range(epochs)]


# Told how far a cohort's training has come: (clients finished, local steps taken), both
# counted from the start of the call.
TrainProgress = Callable[[int, int], None]


@runtime_checkable
class ClientTrainer(Protocol):
    name: str

    def train(
        self,
        model: nn.Module,
        global_params: torch.Tensor,
        dataset: FederatedDataset,
        cohort: Sequence[int],
        instructions: FitInstructions,
        round_idx: int,
        seed: int,
        progress: TrainProgress | None = None,
    ) -> list[TrainResult]: ...


class SequentialTrainer:
    name = "sequential"

    def train(
        self,
        model: nn.Module,
        global_params: torch.Tensor,
        dataset: FederatedDataset,
        cohort: Sequence[int],
        instructions: FitInstructions,
        round_idx: int,
        seed: int,
        progress: TrainProgress | None = None,
    ) -> list[TrainResult]:
        out: list[TrainResult] = []
        steps = 0

        def on_step() -> None:
            nonlocal steps
            steps += 1
            if progress is not None:
                progress(len(out), steps)

        for cid in cohort:
            out.append(
                train_one(
                    model,
                    global_params,
                    *dataset.client_data(int(cid)),
                    int(cid),
                    instructions.for_client(int(cid)),
                    client_seed(seed, round_idx, int(cid)),
                    on_step=on_step if progress is not None else None,
                )
            )
            if progress is not None:
                progress(len(out), steps)
        return out


def train_one(
    model: nn.Module,
    global_params: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    client_id: int,
    ins: FitInstructions,
    seed: int,
    stop: Callable[[], bool] | None = None,
    on_step: Callable[[], None] | None = None,
) -> TrainResult:
    """``stop``: asked before each step; True ends training early (a real client whose task
    was withdrawn), and the result then covers the steps taken. ``on_step``: told after
    each step (progress). Instructions that ask for DP-SGD train through Opacus instead
    (greenfl.privacy.local). ``ins.precision`` bf16 / fp16: the forward pass runs under
    torch.autocast, weights and optimiser in float32 (greenfl.clients.precision)."""
    if dp_sgd_requested(ins):
        if ins.precision != "fp32":
            raise ValueError(f"DP-SGD trains in fp32, not {ins.precision!r}")
        return _train_one_dp(model, global_params, x, y, client_id, ins, seed, stop)
    set_flat(model, global_params)
    model.train()
    params = [p for p in model.parameters()]
    anchor = [p.detach().clone() for p in params] if ins.prox_mu > 0 else []
    opt = torch.optim.SGD(params, lr=ins.lr, momentum=ins.momentum)
    n = len(y)
    losses: list[float] = []
    budget = int(ins.steps(np.int64(n)))
    processed = 0
    device_type = global_params.device.type
    # fp16 numerics: a dynamic loss scale, as the vectorised trainer keeps per client
    scales = LossScales(1) if needs_loss_scale(ins.precision, device_type) else None
    for perm in batch_order(n, ins.local_epochs, seed):
        for start in range(0, n, ins.batch_size):
            if (stop is not None and stop()) or len(losses) >= budget:
                break
            idx = perm[start : start + ins.batch_size]
            processed += len(idx)
            opt.zero_grad(set_to_none=True)
            with autocast(ins.precision, device_type):
                logits = model(x[idx])
            # the loss in float32 (a no-op in fp32)
            loss = nn.functional.cross_entropy(logits.float(), y[idx])
            losses.append(float(loss.detach()))
            if ins.prox_mu > 0:
                prox = sum(((p - a) ** 2).sum() for p, a in zip(params, anchor, strict=True))
                loss = loss + ins.prox_mu / 2 * prox
            if scales is None:
                loss.backward()
                opt.step()
            else:
                _scaled_step(loss, params, opt, scales)
            if on_step is not None:
                on_step()
    return TrainResult(
        client_id=client_id,
        delta=get_flat(model) - global_params,
        num_samples=n,
        samples_processed=processed,
        steps=len(losses),
        loss=float(np.mean(losses)) if losses else float("nan"),
    )


def _scaled_step(
    loss: torch.Tensor, params: list[nn.Parameter], opt: torch.optim.Optimizer, scales: LossScales
) -> None:
    """One fp16 step: backward of the scaled loss, the gradients unscaled, the step taken
    only if they are all finite (else skipped, momentum untouched), the scale updated."""
    scale = scales.scale[0]
    (loss * scale).backward()
    grads = [p.grad for p in params if p.grad is not None]
    finite = all(bool(torch.isfinite(g).all()) for g in grads)
    if finite:
        for g in grads:
            g.div_(scale)
        opt.step()
    scales.update(torch.tensor([finite]))


def dp_sgd_requested(ins: FitInstructions) -> bool:
    """Whether the instructions ask for local DP-SGD (a clip norm or noise set)."""
    return ins.dp_max_grad_norm > 0 or ins.dp_noise_multiplier > 0


def _train_one_dp(
    model: nn.Module,
    global_params: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    client_id: int,
    ins: FitInstructions,
    seed: int,
    stop: Callable[[], bool] | None,
) -> TrainResult:
    # Imported here: Opacus takes seconds to load and only DP runs need it.
    from greenfl.privacy.local import dp_sgd_train

    res = dp_sgd_train(
        model,
        global_params,
        x,
        y,
        ins,
        noise_multiplier=ins.dp_noise_multiplier,
        max_grad_norm=ins.dp_max_grad_norm,
        seed=seed,
        stop=stop,
    )
    return TrainResult(
        client_id=client_id,
        delta=res.delta,
        num_samples=len(y),
        samples_processed=res.samples_processed,
        steps=res.steps,
        loss=res.mean_loss,
    )
