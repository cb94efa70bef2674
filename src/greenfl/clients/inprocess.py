"""Clients simulated in this process: real training, real encoded byte counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from greenfl.clients.trainer import ClientTrainer, client_seed
from greenfl.compression import Codec
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import to_bytes
from greenfl.data.base import FederatedDataset


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

    def available_clients(self) -> np.ndarray | None:
        """Every client may be asked: simulation draws availability from the fleet."""
        return None

    def expect_updates(self, target: int) -> None:
        """The simulated deadline and over-selection are modelled by the accounting."""
        return None

    def close(self) -> None:
        return None
