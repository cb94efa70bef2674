"""The one seam between the round loop and its clients. The loop asks a ClientTransport to
have a cohort train; in simulation that happens in-process, in deployment over gRPC.
Nothing in the strategies, selectors or ledger knows which."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import nn

from greenfl.compression import Codec
from greenfl.data.base import FederatedDataset
from greenfl.engine.params import to_bytes
from greenfl.engine.trainer import ClientTrainer, client_seed
from greenfl.strategy.base import FitInstructions


class ClientReport(NamedTuple):
    """What one client's round gave back. A record (a named tuple): the accounting reads a
    cohort's reports column by column with one ``zip``."""

    client_id: int
    status: str  # completed | failed | rejected | straggler (withdrawn when its round closed)
    reason: str | None
    delta: torch.Tensor | None  # decoded update; None unless completed
    num_samples: int
    flops: float
    loss: float
    bytes_up: int
    bytes_down: int
    measured_energy_j: float | None = None  # a real client's own meter, where it has one
    measured_compute_s: float | None = None
    energy_estimated: bool = False  # measured_energy_j is the client meter's own model


@runtime_checkable
class ClientTransport(Protocol):
    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
    ) -> list[ClientReport]: ...

    def close(self) -> None: ...


class InProcessTransport:
    """Clients simulated in this process: real training, real encoded byte counts."""

    def __init__(
        self,
        model: nn.Module,
        dataset: FederatedDataset,
        trainer: ClientTrainer,
        codec: Codec,
        flops_per_sample: float,
        seed: int,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.trainer = trainer
        self.codec = codec
        self.flops_per_sample = flops_per_sample
        self.seed = seed

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
    ) -> list[ClientReport]:
        bytes_down = len(to_bytes(global_params))
        results = self.trainer.train(
            self.model, global_params, self.dataset, cohort, instructions, round_idx, self.seed
        )
        reports = []
        for r in results:
            gen = torch.Generator().manual_seed(client_seed(self.seed, round_idx, r.client_id) + 1)
            encoded = self.codec.encode(r.delta, r.client_id, gen)
            reports.append(
                ClientReport(
                    client_id=r.client_id,
                    status="completed",
                    reason=None,
                    delta=self.codec.decode(encoded),
                    num_samples=r.num_samples,
                    flops=self.flops_per_sample * r.samples_processed,
                    loss=r.loss,
                    bytes_up=len(encoded.payload),
                    bytes_down=bytes_down,
                )
            )
        return reports

    def close(self) -> None:
        return None
