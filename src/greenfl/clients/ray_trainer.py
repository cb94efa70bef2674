"""The Ray backend: client training as Ray tasks, on a local Ray instance or a cluster
(``engine.backend = "ray"``, ``engine.ray_address``).

A round's cohort is split into contiguous chunks, one Ray task per chunk; each task runs the
sequential trainer, seeded per client exactly as the local backend is (``client_seed``), so
the same seed gives the same results. The model and dataset go to the object store once per
run; each round ships only the global parameters and client ids. Workers must be able to
import greenfl (on a cluster: install it on every node)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from greenfl.clients.trainer import SequentialTrainer, TrainProgress, TrainResult
from greenfl.core.errors import MissingExtraError, TransportError
from greenfl.core.messages import FitInstructions
from greenfl.data.base import FederatedDataset

INSTALL_HINT = "engine.backend = 'ray' needs Ray: pip install 'greenfl[ray]'"


def _train_chunk(
    model: nn.Module,
    global_params: torch.Tensor,
    dataset: FederatedDataset,
    cohort: list[int],
    instructions: FitInstructions,
    round_idx: int,
    seed: int,
    threads: int,
) -> list[TrainResult]:
    if threads > 0:  # a worker is its own process: the run's engine.threads, set there too
        torch.set_num_threads(threads)
    return SequentialTrainer().train(
        model, global_params, dataset, cohort, instructions, round_idx, seed
    )


class RayTrainer:
    name = "ray"

    def __init__(self, address: str | None = None, threads: int = 1) -> None:
        self.threads = threads
        try:
            import ray
        except ImportError:
            raise MissingExtraError(INSTALL_HINT) from None
        self._ray: Any = ray
        if not ray.is_initialized():
            try:
                ray.init(
                    address=address,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except ConnectionError as exc:
                raise TransportError(f"engine.ray_address {address!r}: {exc}") from None
        self._remote = ray.remote(_train_chunk)
        # id(obj) -> (obj, object ref): the model and dataset go to the object store once.
        # Holding obj keeps its id from being reused by another object.
        self._shared: dict[int, tuple[object, Any]] = {}

    def _put(self, obj: object) -> Any:
        if id(obj) not in self._shared:
            self._shared[id(obj)] = (obj, self._ray.put(obj))
        return self._shared[id(obj)][1]

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
        if len(cohort) == 0:
            return []
        ray = self._ray
        workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        chunks = [c for c in np.array_split(np.asarray(cohort, dtype=np.int64), workers) if len(c)]
        model_ref, data_ref = self._put(model), self._put(dataset)
        params_ref = ray.put(global_params)
        futures = [
            self._remote.remote(
                model_ref,
                params_ref,
                data_ref,
                [int(c) for c in chunk],
                instructions,
                round_idx,
                seed,
                self.threads,
            )
            for chunk in chunks
        ]
        pending, clients_done, steps_done = list(futures), 0, 0
        while pending and progress is not None:
            ready, pending = ray.wait(pending, num_returns=1)
            for part in ray.get(ready):
                clients_done += len(part)
                steps_done += sum(r.steps for r in part)
            progress(clients_done, steps_done)
        # Chunks are contiguous and gathered in order, so results follow the cohort's order.
        return [r for part in ray.get(futures) for r in part]
