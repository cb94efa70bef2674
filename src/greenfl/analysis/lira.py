"""The likelihood-ratio attack (LiRA) of Carlini et al., "Membership Inference Attacks From
First Principles" (IEEE S&P 2022), with shadow models trained centrally.

For every audited example, N shadow models are trained, each on a random half of the audit
set, so that the example is IN about half of them and OUT of the rest. Its logit-scaled
confidence on the true label, phi = log(p / (1 - p)), is close to Gaussian across models;
the attack fits one Gaussian to the IN values and one to the OUT values of that example and
asks which one the target model's phi is likelier under:

    online:   log N(phi; mu_in, s_in^2) - log N(phi; mu_out, s_out^2)
    offline:  (phi - mu_out) / s_out      (one-sided: how far above the OUT fit it is;
              a monotone map of the paper's 1 - Pr[Z > phi], Z ~ N(mu_out, s_out^2))

With few shadow models a per-example variance is mostly noise, so below FIXED_VARIANCE_BELOW
models the paper's global variance is used: one variance for IN and one for OUT, pooled
over all examples, while the means stay per example."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from greenfl.analysis.sgd import sgd_epoch

FIXED_VARIANCE_BELOW = 64  # the paper's switch to a global variance
_MIN_STD = 1e-6  # a constant phi (a saturated softmax) would divide by zero


def logit_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """phi = log(p_y / (1 - p_y)) per example, computed as z_y - logsumexp(z_{k != y}):
    the softmax is never formed, so a confident model does not round p_y to 1."""
    z = logits.detach().double()
    true = z.gather(1, labels.view(-1, 1)).squeeze(1)
    others = z.scatter(1, labels.view(-1, 1), -math.inf)
    return (true - torch.logsumexp(others, dim=1)).numpy()


def inclusion_masks(n_models: int, n_examples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_models, n_examples) bool: which examples each shadow model trains on. Every
    example is IN exactly half of the models (the odd one out at random), so every example
    gets both an IN and an OUT fit, which a plain coin flip per model would not promise."""
    if n_models < 2:
        raise ValueError("LiRA needs at least 2 shadow models (one IN, one OUT per example)")
    ranks = np.argsort(rng.random((n_models, n_examples)), axis=0)
    half = n_models // 2 + (rng.random(n_examples) < 0.5) * (n_models % 2)
    return ranks < half


def _fit(phi: np.ndarray, mask: np.ndarray, fixed_variance: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and std of ``phi`` over the models where ``mask`` holds."""
    counts = mask.sum(axis=0)
    mean = np.where(mask, phi, 0.0).sum(axis=0) / counts
    dev2 = np.where(mask, (phi - mean) ** 2, 0.0)
    dof = int(counts.sum()) - phi.shape[1]
    if fixed_variance and dof > 0:
        var = np.full(phi.shape[1], dev2.sum() / dof)
    elif fixed_variance:
        # One model per side (two shadow models): no spread within an example is seen, so
        # the spread across examples stands in for it; a crude fit, said so in the docs.
        var = np.full(phi.shape[1], float(np.var(phi[mask])))
    else:
        var = dev2.sum(axis=0) / np.maximum(counts - 1, 1)
    return mean, np.maximum(np.sqrt(var), _MIN_STD)


def lira_scores(
    target_phi: np.ndarray,
    shadow_phi: np.ndarray,
    masks: np.ndarray,
    fixed_variance: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(online, offline) membership scores, higher = member. ``shadow_phi`` and ``masks``
    are (models, examples); ``fixed_variance`` None: global variance below
    FIXED_VARIANCE_BELOW models."""
    if fixed_variance is None:
        fixed_variance = shadow_phi.shape[0] < FIXED_VARIANCE_BELOW
    masks = masks.astype(bool)
    if not (masks.any(axis=0) & (~masks).any(axis=0)).all():
        raise ValueError("every example needs at least one IN and one OUT shadow model")
    mu_in, sd_in = _fit(shadow_phi, masks, fixed_variance)
    mu_out, sd_out = _fit(shadow_phi, ~masks, fixed_variance)
    online = _log_normal(target_phi, mu_in, sd_in) - _log_normal(target_phi, mu_out, sd_out)
    offline = (target_phi - mu_out) / sd_out
    return online, offline


def _log_normal(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd) - 0.5 * math.log(2 * math.pi)


def reinitialise(model: nn.Module, seed: int) -> None:
    """Fresh random weights, as a new model of the same architecture would get."""
    torch.manual_seed(seed)
    for module in model.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset):
            reset()


def train_central(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    momentum: float,
    seed: int,
) -> None:
    """Plain mini-batch SGD on (x, y) for ``epochs`` passes, in place."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    for _ in range(epochs):
        sgd_epoch(model, opt, x, y, batch_size, gen)


def confidences(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """phi of every example under ``model``, in eval mode, in batches."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(y), 4096):
            out.append(logit_confidence(model(x[start : start + 4096]), y[start : start + 4096]))
    return np.concatenate(out) if out else np.zeros(0)


def shadow_confidences(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    masks: np.ndarray,
    train: Callable[[nn.Module, torch.Tensor, torch.Tensor, int], None],
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> np.ndarray:
    """(models, examples) phi: shadow model j is ``model`` re-initialised, trained by
    ``train(model, x_in, y_in, seed)`` on the examples of ``masks[j]``, then scored on all."""
    phi = np.empty(masks.shape, dtype=np.float64)
    for j, mask in enumerate(masks):
        t0 = time.perf_counter()
        reinitialise(model, seed + 1 + j)
        idx = torch.from_numpy(np.flatnonzero(mask))
        train(model, x[idx], y[idx], seed + 1 + j)
        phi[j] = confidences(model, x, y)
        if progress is not None:
            acc_in = float((phi[j][mask] > 0).mean()) if mask.any() else math.nan
            progress(
                f"shadow model {j + 1}/{len(masks)}: {int(mask.sum())} examples, "
                f"{time.perf_counter() - t0:.1f} s (IN examples with p_y > 0.5: {acc_in:.2f})"
            )
    return phi
