"""The vectorised cohort trainer: many clients of one architecture trained at once.

Every client's parameters are one slice of a stacked tensor ``[clients, *shape]``. One local
SGD step of the whole cohort is one batched forward (``torch.func.functional_call`` under
``vmap``; plain ``baddbmm`` for MLPs of Linear/ReLU layers) and one backward of the sum of
the clients' losses, which gives every client exactly its own gradient because the clients'
parameters do not interact.

It reproduces the sequential trainer step for step: each client sees the same batches in the
same order (``client_seed`` / ``batch_order``), a partial last batch averages its loss over
its real samples only, and a client with fewer steps simply stops moving. Clients are sorted
by step count, so the clients still training at step s are a prefix of the cohort and step s
only computes that prefix: no work is spent on clients that have finished.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from greenfl.clients.trainer import (
    ClientTrainer,
    SequentialTrainer,
    TrainProgress,
    TrainResult,
    batch_order,
    client_seed,
    dp_sgd_requested,
)
from greenfl.core.errors import ConfigError
from greenfl.core.messages import FitInstructions
from greenfl.core.params import ParamSpec
from greenfl.data.base import FederatedDataset
from greenfl.models.reference import BasicBlock

log = logging.getLogger(__name__)

# Modules whose training-mode forward is deterministic and stateless: the vectorised step
# equals the sequential one for any model built only of these.
_STATELESS = (
    nn.Sequential,
    nn.Linear,
    nn.Bilinear,
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.ReLU,
    nn.LeakyReLU,
    nn.GELU,
    nn.Tanh,
    nn.Sigmoid,
    nn.SiLU,
    nn.ELU,
    nn.Softplus,
    nn.LayerNorm,
    nn.GroupNorm,
    BasicBlock,  # convs, GroupNorm, ReLU and a residual add
)
_MLP_LAYERS = (nn.Linear, nn.ReLU, nn.Flatten, nn.Identity)

# Memory one chunk of the cohort may use for stacked parameters (x4: parameters, gradients,
# FedProx anchor, momentum) and activations. 1,000 clients of a 60-64-10 MLP use ~20 MB.
CHUNK_BUDGET_BYTES = 512 * 2**20


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the vectorised trainer cannot reproduce this model's sequential training, or None.

    Buffers (batch norm's running statistics) are updated in place by each client's forward,
    which a batched forward cannot do per client; dropout draws different random numbers
    than a client-by-client run would. Unknown module types are refused rather than guessed."""
    if any(True for _ in model.buffers()):
        return "the model has buffers (e.g. batch norm running statistics)"
    for name, mod in model.named_modules():
        if not isinstance(mod, _STATELESS):
            return f"module {name or '(root)'} ({type(mod).__name__}) is not known to be stateless"
    params = list(model.parameters())
    if not params:
        return "the model has no parameters"
    if any(p.dtype != torch.float32 for p in params):
        return "the model's parameters are not all float32"
    return None


def is_mlp(model: nn.Module) -> bool:
    """A Sequential of Linear/ReLU/Flatten layers: trained with baddbmm instead of vmap."""
    return (
        isinstance(model, nn.Sequential)
        and all(isinstance(m, _MLP_LAYERS) for m in model)
        and any(isinstance(m, nn.Linear) for m in model)
        and all(m.start_dim == 1 and m.end_dim == -1 for m in model if isinstance(m, nn.Flatten))
    )


@dataclass(frozen=True)
class _Cohort:
    """A chunk of clients, sorted by step count (descending), with their data concatenated."""

    client_ids: list[int]
    sizes: np.ndarray  # samples per client
    steps: np.ndarray  # local SGD steps per client, non-increasing
    x: torch.Tensor  # all clients' features, client after client
    y: torch.Tensor
    index: torch.Tensor  # [max_steps, clients, batch] rows of x; padding repeats a real row
    weight: torch.Tensor  # [max_steps, clients, batch] 1 for a real sample, 0 for padding
    active: np.ndarray  # [max_steps]: clients still training at each step (a prefix)


def _layout(
    dataset: FederatedDataset,
    cohort: Sequence[int],
    ins: FitInstructions,
    round_idx: int,
    seed: int,
) -> _Cohort:
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
    return _Cohort(
        client_ids=ids,
        sizes=sizes,
        steps=steps,
        x=torch.cat([x for x, _ in data]),
        y=torch.cat([y for _, y in data]),
        index=torch.from_numpy(index),
        weight=torch.from_numpy(weight),
        active=active,
    )


class VectorisedTrainer:
    """Trains a cohort as stacked parameters; results equal SequentialTrainer's (to float32
    rounding: batched and per-client matmuls sum in different orders)."""

    name = "vectorised"

    def __init__(self, chunk_budget_bytes: int = CHUNK_BUDGET_BYTES) -> None:
        # torch's threads are the run's (engine.threads, set once for every trainer and
        # evaluator by greenfl.engine.session), not this trainer's.
        self.chunk_budget_bytes = chunk_budget_bytes

    def chunk_size(self, model: nn.Module, sample_shape: tuple[int, ...], batch: int) -> int:
        """Clients per chunk so that parameters and activations stay within the budget."""
        numel = sum(p.numel() for p in model.parameters())
        per_client = 4 * (4 * numel + 3 * batch * activation_numel(model, sample_shape))
        return max(1, self.chunk_budget_bytes // per_client)

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
        if dp_sgd_requested(instructions):
            # DP-SGD needs per-sample clipping and Poisson batches, which the stacked step
            # does not do: the sequential trainer's Opacus path trains these clients.
            return SequentialTrainer().train(
                model, global_params, dataset, cohort, instructions, round_idx, seed, progress
            )
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"vectorised trainer: {reason}; use engine.trainer = 'sequential'")
        if not len(cohort):
            return []
        size = self.chunk_size(model, tuple(dataset.input_shape), instructions.batch_size)
        by_id: dict[int, TrainResult] = {}
        done = steps = 0

        def on_step(finished: int, taken: int) -> None:
            if progress is not None:
                progress(done + finished, steps + taken)

        for start in range(0, len(cohort), size):
            chunk = _layout(dataset, cohort[start : start + size], instructions, round_idx, seed)
            for r in _train_chunk(model, global_params, chunk, instructions, on_step):
                by_id[r.client_id] = r
                steps += r.steps
            done = len(by_id)
        return [by_id[int(cid)] for cid in cohort]


def activation_numel(model: nn.Module, sample_shape: tuple[int, ...]) -> int:
    """Elements every leaf module outputs for one sample: what a batched forward keeps for
    its backward, per sample."""
    total = 0

    def hook(_m: nn.Module, _i: object, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel()

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *sample_shape))
    finally:
        for h in handles:
            h.remove()
    return max(total, 1)


def _train_chunk(
    model: nn.Module,
    global_params: torch.Tensor,
    co: _Cohort,
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
    for s in range(co.index.shape[0]):
        a = int(co.active[s])
        idx, w = co.index[s, :a], co.weight[s, :a]
        xb = co.x[idx.reshape(-1)].reshape(a, idx.shape[1], *co.x.shape[1:])
        yb = co.y[idx.reshape(-1)].reshape(a, idx.shape[1])
        params = {k: v[:a].detach().requires_grad_(True) for k, v in stacked.items()}
        logits = forward(params, xb)
        ce = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none"
        ).view(a, -1)
        per_client = (ce * w).sum(1) / w.sum(1)
        total = per_client.sum()
        if ins.prox_mu > 0:
            prox = sum(((p - anchor[k]) ** 2).sum() for k, p in params.items())
            total = total + ins.prox_mu / 2 * prox
        grads = torch.autograd.grad(total, list(params.values()))
        loss_sum[:a] += per_client.detach().to(torch.float64)
        if progress is not None:
            # the clients still training are a prefix: the others have finished
            taken += a
            progress(n_clients - int(co.active[s + 1]) if s + 1 < len(co.active) else n_clients,
                     taken)  # fmt: skip
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


# Below this many clients a round, batching gains little over the per-client loop.
MIN_AUTO_COHORT = 8
# Above this size each client's own step keeps the cores busy, so batching clients saves no
# dispatch overhead and only multiplies the weights' memory (measured in BENCHMARKS.md, W4).
MAX_AUTO_PARAMS = 1_000_000


def auto_trainer(choice: str, model: nn.Module, clients_per_round: int) -> ClientTrainer:
    """The trainer for ``engine.trainer``: ``sequential``, ``vectorised`` (an error if the
    model cannot be vectorised exactly) or ``auto``: vectorised when the model is supported
    and small (at most MAX_AUTO_PARAMS parameters) and at least MIN_AUTO_COHORT clients
    train per round, else sequential."""
    reason = unsupported_reason(model)
    if choice == "vectorised":
        if reason is not None:
            raise ConfigError(
                f"engine.trainer = 'vectorised': {reason}; use 'sequential' or 'auto'"
            )
        return VectorisedTrainer()
    params = sum(p.numel() for p in model.parameters())
    if choice == "auto" and reason is None:
        if clients_per_round < MIN_AUTO_COHORT:
            reason = f"fewer than {MIN_AUTO_COHORT} clients train per round"
        elif params > MAX_AUTO_PARAMS:
            reason = (
                f"the model has {params:,} parameters (> {MAX_AUTO_PARAMS:,}): each client's "
                "step already keeps the cores busy"
            )
        else:
            return VectorisedTrainer()
    if choice == "auto":
        why = reason
        log.info("engine.trainer = 'auto' picked the sequential trainer: %s", why)
    return SequentialTrainer()
