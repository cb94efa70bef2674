"""One local SGD step of a whole cohort as stacked parameters: what the vectorised trainer
(greenfl.clients.vectorised) runs.

Every client's parameters are one slice of a stacked tensor ``[clients, *shape]``. A step is
one batched forward (``torch.func.functional_call`` under ``vmap``; plain ``baddbmm`` for
MLPs of Linear/ReLU layers) and one backward of the sum of the clients' losses, which gives
every client exactly its own gradient because the clients' parameters do not interact.
Clients are laid out sorted by step count, so the clients still training at step s are a
prefix of the cohort and step s only computes that prefix.

Mixed precision (``ins.precision``): the forward runs under torch.autocast and the loss and
the update in float32, as in the sequential trainer; fp16 keeps one dynamic loss scale per
client (greenfl.clients.precision), so a client whose gradients overflow skips its step
alone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.clients.precision import LossScales, autocast, needs_loss_scale
from greenfl.clients.trainer import TrainProgress, TrainResult, batch_order, client_seed
from greenfl.core.messages import FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.data.base import FederatedDataset

_MLP_LAYERS = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity)


def is_mlp(model: nn.Module) -> bool:
    """A Sequential of Linear/ReLU/Flatten layers: trained with baddbmm instead of vmap."""
    return (
        isinstance(model, nn.Sequential)
        and all(isinstance(m, _MLP_LAYERS) for m in model)
        and any(isinstance(m, nn.Linear) for m in model)
        and all(m.start_dim == 1 and m.end_dim == -1 for m in model if isinstance(m, nn.Flatten))
    )


@dataclass(frozen=True)
class Cohort:
    """A chunk of clients, sorted by step count (descending), with their data concatenated."""

    client_ids: list[int]
    sizes: np.ndarray  # samples per client
    steps: np.ndarray  # local SGD steps per client, non-increasing
    x: torch.Tensor  # all clients' features, client after client
    y: torch.Tensor
    index: torch.Tensor  # [max_steps, clients, batch] rows of x; padding repeats a real row
    weight: torch.Tensor  # [max_steps, clients, batch] 1 for a real sample, 0 for padding
    active: np.ndarray  # [max_steps]: clients still training at each step (a prefix)


def layout(
    dataset: FederatedDataset,
    cohort: Sequence[int],
    ins: FitInstructions,
    round_idx: int,
    seed: int,
) -> Cohort:
    b = ins.batch_size
    data = [dataset.client_data(int(cid)) for cid in cohort]
    sizes = np.array([len(y) for _, y in data], dtype=np.int64)
    steps = ins.steps_of(cohort, sizes)
    order = np.argsort(-steps, kind="stable")
    ids = [int(cohort[i]) for i in order]
    sizes, steps = sizes[order], steps[order]
    data = [data[i] for i in order]
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    max_steps = int(steps[0]) if len(steps) else 0
    index = np.zeros((max_steps, len(ids), b), dtype=np.int64)
    weight = np.zeros((max_steps, len(ids), b), dtype=np.float32)
    for c, (cid, n, off) in enumerate(zip(ids, sizes, offsets, strict=True)):
        n = int(n)
        nb = -(-n // b)
        padded = np.full(nb * b, -1, dtype=np.int64)
        rows = []
        for perm in batch_order(n, ins.local_epochs, client_seed(seed, round_idx, cid)):
            padded[:n] = perm.numpy()
            rows.append(padded.reshape(nb, b).copy())
        idx = np.concatenate(rows)[: int(steps[c])]
        real = idx >= 0
        index[: len(idx), c] = np.where(real, idx, 0) + off
        weight[: len(idx), c] = real
    active = (steps[None, :] > np.arange(max_steps)[:, None]).sum(axis=1)
    return Cohort(
        client_ids=ids,
        sizes=sizes,
        steps=steps,
        x=torch.cat([x for x, _ in data]),
        y=torch.cat([y for _, y in data]),
        index=torch.from_numpy(index),
        weight=torch.from_numpy(weight),
        active=active,
    )


def train_chunk(
    model: nn.Module,
    global_params: torch.Tensor,
    co: Cohort,
    ins: FitInstructions,
    progress: TrainProgress | None = None,
) -> list[TrainResult]:
    """``progress`` hears (clients finished, steps taken) in this chunk after each step."""
    spec = ParamSpec.of(model)
    n_clients = len(co.client_ids)
    # One [clients, numel] block: each client's row is its flat parameter vector, so the
    # deltas come out as rows without another copy.
    flat = global_params.detach().to(torch.float32).expand(n_clients, -1).clone()
    stacked = _split_rows(flat, spec)
    anchor = {k: v[0].clone() for k, v in stacked.items()} if ins.prox_mu > 0 else {}
    momentum: dict[str, torch.Tensor] = {}
    forward = _mlp_forward(model) if is_mlp(model) else _vmap_forward(model)
    loss_sum = torch.zeros(n_clients, dtype=torch.float64)
    taken = 0
    device_type = global_params.device.type
    scales = LossScales(n_clients) if needs_loss_scale(ins.precision, device_type) else None
    for s in range(co.index.shape[0]):
        a = int(co.active[s])
        idx, w = co.index[s, :a], co.weight[s, :a]
        xb = co.x[idx.reshape(-1)].reshape(a, idx.shape[1], *co.x.shape[1:])
        yb = co.y[idx.reshape(-1)].reshape(a, idx.shape[1])
        params = {k: v[:a].detach().requires_grad_(True) for k, v in stacked.items()}
        with autocast(ins.precision, device_type):
            logits = forward(params, xb)
        logits = logits.float()  # the loss in float32 (a no-op in fp32)
        ce = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none"
        ).view(a, -1)
        per_client = (ce * w).sum(1) / w.sum(1)
        if scales is None:
            total = per_client.sum()
            if ins.prox_mu > 0:
                prox = sum(((p - anchor[k]) ** 2).sum() for k, p in params.items())
                total = total + ins.prox_mu / 2 * prox
        else:
            objective = per_client
            if ins.prox_mu > 0:
                own = [((p - anchor[k]) ** 2).reshape(a, -1).sum(1) for k, p in params.items()]
                objective = objective + ins.prox_mu / 2 * torch.stack(own).sum(0)
            total = (objective * scales.scale[:a]).sum()
        grads = torch.autograd.grad(total, list(params.values()))
        loss_sum[:a] += per_client.detach().to(torch.float64)
        if progress is not None:
            # the clients still training are a prefix: the others have finished
            taken += a
            progress(
                n_clients - int(co.active[s + 1]) if s + 1 < len(co.active) else n_clients, taken
            )
        if scales is not None:
            with torch.no_grad():
                _scaled_update(stacked, grads, momentum, ins, a, scales)
            continue
        with torch.no_grad():
            for (k, v), g in zip(stacked.items(), grads, strict=True):
                if ins.momentum > 0:
                    # torch.optim.SGD (dampening 0): the first step's buffer is the gradient.
                    buf = momentum.get(k)
                    if buf is None:
                        buf = momentum[k] = g.clone()
                    else:
                        buf[:a].mul_(ins.momentum).add_(g)
                    g = buf[:a]
                v[:a].add_(g, alpha=-ins.lr)
    deltas = flat - global_params.detach().to(torch.float32)
    losses = (loss_sum / torch.from_numpy(co.steps).to(torch.float64)).tolist()
    return [
        TrainResult(
            client_id=cid,
            delta=deltas[i],
            num_samples=int(co.sizes[i]),
            samples_processed=int(ins.for_client(cid).samples_processed(co.sizes[i])),
            steps=int(co.steps[i]),
            loss=float(losses[i]) if co.steps[i] else math.nan,
        )
        for i, cid in enumerate(co.client_ids)
    ]


def _scaled_update(
    stacked: dict[str, torch.Tensor],
    grads: Sequence[torch.Tensor],
    momentum: dict[str, torch.Tensor],
    ins: FitInstructions,
    a: int,
    scales: LossScales,
) -> None:
    """The fp16 step of the first ``a`` clients: each client's gradients unscaled by its
    own scale; a client with a non-finite gradient skips the step (parameters and momentum
    untouched), as the sequential trainer's skipped ``opt.step()``; the scales updated.
    The momentum buffer starts at zero, so a client's first step taken sets it to its
    gradient, as torch.optim.SGD does."""
    scale = scales.scale[:a]
    unscaled = [g / scale.view(-1, *[1] * (g.dim() - 1)) for g in grads]
    finite = torch.ones(a, dtype=torch.bool)
    for g in unscaled:
        finite &= torch.isfinite(g.reshape(a, -1)).all(1)
    for (k, v), g in zip(stacked.items(), unscaled, strict=True):
        keep = finite.view(-1, *[1] * (g.dim() - 1))
        g = torch.where(keep, g, torch.zeros_like(g))
        if ins.momentum > 0:
            buf = momentum.get(k)
            if buf is None:
                buf = momentum[k] = torch.zeros_like(v)
            buf[:a] = torch.where(keep, buf[:a] * ins.momentum + g, buf[:a])
            g = torch.where(keep, buf[:a], torch.zeros_like(g))
        v[:a].add_(g, alpha=-ins.lr)
    scales.update(finite, a)


def _split_rows(flat: torch.Tensor, spec: ParamSpec) -> dict[str, torch.Tensor]:
    """Views of a [clients, numel] block as {name: [clients, *shape]}, in place."""
    out, i = {}, 0
    for name, shape in zip(spec.names, spec.shapes, strict=True):
        n = int(np.prod(shape))
        out[name] = flat[:, i : i + n].view(flat.shape[0], *shape)
        i += n
    return out


def _vmap_forward(model: nn.Module):  # noqa: ANN202 - a closure over the model
    from torch.func import functional_call, vmap

    def one(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return functional_call(model, params, (x,))

    batched = vmap(one, in_dims=(0, 0))

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return batched(params, x)

    return forward


def _mlp_forward(model: nn.Module):  # noqa: ANN202 - a closure over the model
    """Linear layers as baddbmm over [clients, batch, features]: one kernel per layer."""
    names = dict(model.named_parameters())
    plan: list[tuple[str, str | None] | str] = []
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            plan.append((f"{i}.weight", f"{i}.bias" if m.bias is not None else None))
        elif isinstance(m, nn.ReLU):
            plan.append("relu")
        elif isinstance(m, nn.Flatten):
            plan.append("flatten")
    assert all(w in names for step in plan if isinstance(step, tuple) for w in step if w)

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x
        for step in plan:
            if step == "relu":
                h = torch.relu(h)
            elif step == "flatten":
                h = h.reshape(h.shape[0], h.shape[1], -1)
            else:
                w_name, b_name = step
                wt = params[w_name].transpose(1, 2)
                if b_name is None:
                    h = torch.bmm(h, wt)
                else:
                    h = torch.baddbmm(params[b_name].unsqueeze(1), h, wt)
        return h

    return forward
