"""Local differential privacy: sample-level DP-SGD on one client (Abadi et al., CCS 2016),
with Opacus's per-sample gradients (GradSampleModule) and its DPOptimizer.

Each step takes a Poisson sample of the client's data (every sample in with probability
q = batch / n, drawn from the client's seeded generator: repeatable, and the sampling the
accountant assumes), clips every per-sample gradient to ``max_grad_norm`` C, adds
N(0, (sigma C)^2) to their sum and divides by the expected batch (q n). A step whose sample is
empty still adds its noise and moves the model: skipping it would leak that the sample was
empty. The number of steps is the sequential trainer's (epochs x ceil(n / batch), capped by
``max_steps``), so the work and the accounting agree with the non-private path.

The update leaves the client private at the sample level: accounting is per client
(``privacy.accountant.LocalAccountant``), with rate q and the steps taken.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.privacy.accountant import dp_sgd_sample_rate


@dataclass(frozen=True)
class LocalDpResult:
    delta: torch.Tensor  # flat float32, local - global
    steps: int  # DP-SGD steps taken (each one a composed Gaussian for the accountant)
    sample_rate: float  # the Poisson rate q of every step
    samples_processed: int  # samples through forward and backward (the Poisson draws)
    mean_loss: float  # over the steps with a non-empty sample
    noise_multiplier: float
    max_grad_norm: float


def check_model(model: nn.Module) -> None:
    """Refuses models Opacus cannot give per-sample gradients for (batch norm mixes samples;
    its running statistics would also leak)."""
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        raise ValueError(
            "local DP-SGD cannot train this model: " + "; ".join(str(e) for e in errors)
        )


def dp_sgd_train(
    model: nn.Module,
    global_params: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    ins: FitInstructions,
    noise_multiplier: float,
    max_grad_norm: float,
    seed: int,
    stop: Callable[[], bool] | None = None,
) -> LocalDpResult:
    """DP-SGD from ``global_params`` on (x, y) with the instructions' epochs, batch size,
    learning rate, momentum, step cap and FedProx term. ``model`` is left untouched (a copy
    is trained: Opacus hooks its modules)."""
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    if max_grad_norm <= 0:
        raise ValueError(f"max_grad_norm must be positive, got {max_grad_norm}")
    if noise_multiplier < 0:
        raise ValueError(f"noise_multiplier must be >= 0, got {noise_multiplier}")
    local = copy.deepcopy(model)
    local.train()  # the shared model may come back from evaluation in eval mode
    check_model(local)
    set_flat(local, global_params)
    gsm = GradSampleModule(local, loss_reduction="sum")
    params = [p for p in gsm.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params] if ins.prox_mu > 0 else []
    gen = torch.Generator().manual_seed(int(seed))
    n = len(y)
    q = dp_sgd_sample_rate(ins.batch_size, n)  # the rate the engine accounts
    opt = DPOptimizer(
        torch.optim.SGD(params, lr=ins.lr, momentum=ins.momentum),
        noise_multiplier=noise_multiplier,
        max_grad_norm=max_grad_norm,
        expected_batch_size=max(1, round(q * n)),
        loss_reduction="mean",  # the sum of clipped gradients and noise over q n
        generator=gen,
    )
    budget = int(ins.steps(np.int64(n)))
    losses: list[float] = []
    steps = processed = 0
    while steps < budget and not (stop is not None and stop()):
        idx = torch.nonzero(torch.rand(n, generator=gen) < q).flatten()
        opt.zero_grad(set_to_none=True)
        # Summed loss: per-sample gradients are each sample's own; DPOptimizer does the mean.
        loss = nn.functional.cross_entropy(gsm(x[idx]), y[idx], reduction="sum")
        with warnings.catch_warnings():
            # Opacus's backward hooks on a first layer whose input needs no gradient: the
            # per-sample gradients are still right, the warning is noise in every step
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            loss.backward()
        if any(p.grad_sample is None for p in params):
            # DPOptimizer would then step without clipping or noise
            raise ValueError("local DP-SGD: a parameter got no per-sample gradient")
        if not opt.pre_step():
            raise RuntimeError("DPOptimizer skipped a step")  # only with accumulation
        if ins.prox_mu > 0:
            # FedProx's pull towards the global model uses only public parameters: added to
            # the private gradient after clipping and noise, it costs no privacy.
            for p, a in zip(params, anchor, strict=True):
                p.grad.add_(p.detach() - a, alpha=ins.prox_mu)
        opt.original_optimizer.step()
        steps += 1
        processed += len(idx)
        if len(idx):
            losses.append(float(loss.detach()) / len(idx))
    return LocalDpResult(
        delta=get_flat(local) - global_params,
        steps=steps,
        sample_rate=q,
        samples_processed=processed,
        mean_loss=float(np.mean(losses)) if losses else float("nan"),
        noise_multiplier=float(noise_multiplier),
        max_grad_norm=float(max_grad_norm),
    )
