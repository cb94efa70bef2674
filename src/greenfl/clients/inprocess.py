"""Clients simulated in this process: real training, real encoded byte counts, and
completions at the simulated clock's time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from itertools import groupby

import torch
from torch import nn

from greenfl.clients.trainer import ClientTrainer, TrainResult, client_seed
from greenfl.clients.transport import Completion, FitProgress, ProgressFn, Task, Transport
from greenfl.compression.base import Codec
from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientReport
from greenfl.data.base import FederatedDataset
from greenfl.sparse.server import SparseTraining

# When a task's report arrives, in simulated seconds: the engine's model of the client's
# download, training and upload. Without one a task completes when it is dispatched.
FinishTime = Callable[[Task, ClientReport], float]


@dataclass(frozen=True)
class WidthModel:
    """A sub-model width's trainable module (greenfl.submodel), its slice of the full
    flat vector, and its counted training FLOPs per sample."""

    module: nn.Module
    indices: torch.Tensor  # int64, strictly increasing positions in the full vector
    flops_per_sample: float


class InProcessTransport(Transport):
    """Clients simulated in this process. ``collect`` trains every task dispatched so far
    (a cohort sharing a model and instructions at once, which the vectorised trainer runs
    as one batch) and returns those whose simulated completion falls by ``until_s``; the
    others wait, trained, for a later ``collect``."""

    def __init__(
        self,
        model: nn.Module,
        dataset: FederatedDataset,
        trainer: ClientTrainer,
        codec: Codec,
        flops_per_sample: float,
        seed: int,
        finish_time: FinishTime | None = None,
        widths: Mapping[float, WidthModel] | None = None,
        sparse: SparseTraining | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.trainer = trainer
        self.codec = codec
        self.flops_per_sample = flops_per_sample
        self.seed = seed
        self.finish_time = finish_time
        # The sub-models a task's ``instructions.width`` below 1 names (docs/submodels.md)
        self.widths = dict(widths or {})
        # Sparse training (docs/submodels.md): clients train the masked model and send its
        # kept coordinates; None: dense
        self.sparse = sparse
        self._queued: list[Task] = []
        self._done: list[Completion] = []  # trained, not yet collected

    def dispatch(self, task: Task) -> None:
        self._queued.append(task)

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        queued, self._queued = self._queued, []
        total = len(queued)
        done_before = 0
        # Tasks of one round from one model under one set of instructions train together.
        for _, run in groupby(queued, key=lambda t: (t.round_idx, id(t.params), t.instructions)):
            tasks = list(run)
            for task, result in zip(
                tasks, self._train(tasks, done_before, total, progress), strict=True
            ):
                report = self._report(task, result)
                finish_s = self.finish_time(task, report) if self.finish_time else task.start_s
                self._done.append(Completion(task, report, finish_s))
            done_before += len(tasks)
        if until_s is None:
            out, self._done = self._done, []
        else:
            out = [c for c in self._done if c.finish_s <= until_s]
            self._done = [c for c in self._done if c.finish_s > until_s]
        return out

    def _train(
        self, tasks: list[Task], done_before: int, total: int, progress: ProgressFn | None
    ) -> list[TrainResult]:
        first = tasks[0]
        model, params = self.model, first.params
        width = first.instructions.width
        if width != 1.0:
            # The width's sub-model, from the global model at its slice: the delta that
            # comes back is the slice's.
            sub = self._width(width)
            model, params = sub.module, first.params[sub.indices]
        elif self.sparse is not None:
            # the model with its pruned weights held at zero, or the kept units' smaller one
            model, params = self.sparse.module, self.sparse.train_params(first.params)

        def step(clients_done: int, steps_done: int) -> None:
            if progress is not None:
                progress(FitProgress(done_before + clients_done, total, steps_done))

        results = self.trainer.train(
            model,
            params,
            self.dataset,
            [t.client_id for t in tasks],
            first.instructions,
            first.round_idx,
            self.seed,
            progress=step,
        )
        by_client = {r.client_id: r for r in results}
        return [by_client[t.client_id] for t in tasks]

    def _width(self, width: float) -> WidthModel:
        sub = self.widths.get(width)
        if sub is None:
            raise ConfigError(
                f"a task asks for sub-model width {width}; this run trains widths "
                f"{sorted([1.0, *self.widths], reverse=True)}"
            )
        return sub

    def _report(self, task: Task, r: TrainResult) -> ClientReport:
        width = task.instructions.width
        flops_per_sample, numel = self.flops_per_sample, task.params.numel()
        if width != 1.0:
            sub = self._width(width)
            flops_per_sample, numel = sub.flops_per_sample, int(sub.indices.numel())
        gen = torch.Generator().manual_seed(client_seed(self.seed, task.round_idx, r.client_id) + 1)
        delta, bytes_down = r.delta, 4 * numel  # the float32 model (or slice), as to_bytes sends it
        if self.sparse is not None:
            # only the kept coordinates travel, each way; the mask down when it is new
            delta, bytes_down = self.sparse.sent_values(delta), self.sparse.send_down(r.client_id)
            flops_per_sample = self.sparse.flops_per_sample  # dense under a mask: the kernels are
        encoded = self.codec.encode(delta, r.client_id, gen)
        decoded = self.codec.decode(encoded)
        return ClientReport(
            client_id=r.client_id,
            status="completed",
            reason=None,
            delta=decoded if self.sparse is None else self.sparse.scatter(decoded),
            num_samples=r.num_samples,
            flops=flops_per_sample * r.samples_processed,
            loss=r.loss,
            bytes_up=len(encoded.payload),
            bytes_down=bytes_down,
        )
