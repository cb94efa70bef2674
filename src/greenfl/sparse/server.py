"""The run's sparse training: the mask the server keeps (in the run's snapshot, so a
resumed run continues with it), pruning on the schedule after aggregation, the model
clients train under it, and what travels.

What travels, per client and round:

- down: the kept values of the global model (float32, 4 bytes each), plus the mask when
  the client does not hold the current one (``mask_cost``: the cheaper of a bitmap and an
  index list; with whole units pruned, one bit per hidden unit). The server remembers
  which mask version each client last received, so a mask is sent once per client and
  change, not every round;
- up: the codec's payload of the kept coordinates of the delta; no mask (the server knows
  it).

FLOPs: unstructured, the clients' FLOPs stay the dense model's (dense kernels on an
unstructured mask compute every product, the pruned ones included). Structured
(``channels``), a client trains the smaller dense model of the kept units, and its FLOPs
are that model's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from greenfl.core.errors import LedgerError
from greenfl.sparse.channels import ChannelPruner
from greenfl.sparse.layout import PrunableLayout
from greenfl.sparse.mask import decode_mask, encode_mask, magnitude_mask, mask_cost
from greenfl.sparse.schedule import PruneSchedule
from greenfl.sparse.training import MaskedModule

FLOAT32_BYTES = 4

# The codec's payload for an update of n values (the estimates price uploads with it).
PayloadBytes = Callable[[int], int]


class SparseTraining:
    """``model``'s sparse training on ``schedule`` for a population of
    ``population_size`` clients. ``payload_bytes``: the run's codec's payload for n
    values (for estimates; a client's report counts its real payload).
    ``dense_flops_per_sample``: the model's counted training FLOPs. ``channels``: prune
    whole units (structured) instead of single weights."""

    def __init__(
        self,
        model: nn.Module,
        layout: PrunableLayout,
        schedule: PruneSchedule,
        population_size: int,
        payload_bytes: PayloadBytes,
        dense_flops_per_sample: float = 0.0,
        channels: ChannelPruner | None = None,
    ) -> None:
        self.layout = layout
        self.schedule = schedule
        self.channels = channels
        self.dense_flops_per_sample = dense_flops_per_sample
        self._masked = MaskedModule(model, layout)
        self._payload_bytes = payload_bytes
        self._payload_cache: dict[int, int] = {}
        self.mask = torch.ones(layout.numel, dtype=torch.bool)
        self.version = 0  # 0: dense, no mask to send; +1 at every change
        # the mask version each client last received (0: none)
        self.held = np.zeros(population_size, dtype=np.int64)
        self._encoded: tuple[int, bytes] | None = None  # (version, encoded_mask) once sent
        self._refresh()

    def _refresh(self) -> None:
        self.kept_index = torch.nonzero(self.mask).flatten()
        if self.channels is None:
            self.mask_bytes = mask_cost(self.mask, self.layout).bytes
            self._masked.set_mask(self.mask)
        else:
            self.channels.load_mask(self.mask)
            self.mask_bytes = self.channels.mask_bytes()

    @property
    def kept(self) -> int:
        return int(self.kept_index.numel())

    @property
    def density(self) -> float:
        """The share of the model's parameters trained and sent (1.0: dense)."""
        return self.kept / self.layout.numel

    @property
    def sparsity(self) -> float:
        """The share of the prunable weights pruned."""
        kept = int(self.mask[self.layout.prunable_positions()].sum())
        return 1.0 - kept / self.layout.prunable_numel

    # --- the server -------------------------------------------------------------------

    def apply(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` with the pruned coordinates zero (a new tensor)."""
        return params.masked_fill(~self.mask, 0.0)

    def after_aggregation(self, round_idx: int, params: torch.Tensor) -> torch.Tensor:
        """The global model after round ``round_idx``'s aggregation: pruned anew when the
        schedule says so (the mask of the next round's clients), then masked."""
        if self.schedule.prunes_at(round_idx):
            sparsity = self.schedule.sparsity_at(round_idx)
            if self.channels is None:
                mask = magnitude_mask(params, self.layout, sparsity, self.mask)
            else:
                mask = self.channels.mask_at(params, sparsity)
            if not torch.equal(mask, self.mask):
                self.mask = mask
                self.version += 1
                self._refresh()
        return self.apply(params)

    # --- the clients ------------------------------------------------------------------

    @property
    def module(self) -> nn.Module:
        """What a client trains: the model with its pruned weights held at zero, or the
        smaller model of the kept units."""
        return self._masked if self.channels is None else self.channels.module

    @property
    def flops_per_sample(self) -> float:
        """A client's counted training FLOPs per sample: the dense model's under an
        unstructured mask, the smaller model's with whole units pruned."""
        if self.channels is None:
            return self.dense_flops_per_sample
        return self.channels.flops_per_sample

    def train_params(self, global_params: torch.Tensor) -> torch.Tensor:
        """The flat parameters ``module`` trains from."""
        return global_params if self.channels is None else global_params[self.kept_index]

    def sent_values(self, delta: torch.Tensor) -> torch.Tensor:
        """The values of a client's delta that go on the wire: its kept coordinates (a
        structured client's delta holds only those)."""
        return delta[self.kept_index] if self.channels is None else delta

    def scatter(self, values: torch.Tensor) -> torch.Tensor:
        """The flat vector whose kept coordinates are ``values`` and the rest zero."""
        out = torch.zeros(self.layout.numel, dtype=values.dtype)
        out[self.kept_index] = values
        return out

    def send_down(self, client_id: int) -> int:
        """The bytes ``client_id`` downloads for a round: the kept values, and the mask if
        it does not hold this one (from now on it does)."""
        down = FLOAT32_BYTES * self.kept
        if self.version > 0 and self.held[client_id] != self.version:
            down += self.mask_bytes
            self.held[client_id] = self.version
        return down

    def expected_cost(self) -> tuple[float, int, int]:
        """(FLOPs per sample, bytes up, bytes down) of a client this round, for
        estimates: the codec's payload of the kept values up; the kept values and, as most
        clients lack it, the mask down."""
        up = self._payload_cache.get(self.kept)
        if up is None:
            up = self._payload_cache[self.kept] = self._payload_bytes(self.kept)
        down = FLOAT32_BYTES * self.kept + (self.mask_bytes if self.version > 0 else 0)
        return self.flops_per_sample, up, down

    # --- the wire (a deployment: greenfl.deploy.server.transport, deploy.client) -------

    def encoded_mask(self) -> bytes:
        """The current mask as a task carries it, ``mask_bytes`` long (``encode_mask``, or
        the unit bitmap with whole units pruned)."""
        cached = self._encoded
        if cached is None or cached[0] != self.version:
            data = (
                encode_mask(self.mask, self.layout)
                if self.channels is None
                else self.channels.encode_mask()
            )
            cached = self._encoded = (self.version, data)
        return cached[1]

    def decode_mask(self, data: bytes) -> torch.Tensor:
        """The flat mask ``encoded_mask`` wrote; ValueError if it does not fit the model."""
        return (
            decode_mask(data, self.layout)
            if self.channels is None
            else self.channels.decode_mask(data)
        )

    def load_mask(self, mask: torch.Tensor, version: int) -> None:
        """(a deployed client) Train under ``mask``, the server's mask ``version``, from now
        on; ValueError for a mask that is not over this model (or not of whole units)."""
        if mask.numel() != self.layout.numel:
            raise ValueError(f"a mask of {mask.numel()} for a model of {self.layout.numel}")
        self.mask, self.version = mask, version
        self._refresh()

    # --- the snapshot -----------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        held = np.flatnonzero(self.held)
        return {
            "mask_bits": np.packbits(self.mask.numpy()),
            "numel": self.layout.numel,
            "version": self.version,
            "held_index": held,
            "held_version": self.held[held],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        numel = int(state["numel"])
        if numel != self.layout.numel:
            raise LedgerError(
                f"the snapshot's sparsity mask is over {numel} parameters, this model has "
                f"{self.layout.numel}"
            )
        bits = np.unpackbits(np.asarray(state["mask_bits"], dtype=np.uint8), count=numel)
        index = np.asarray(state["held_index"], dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self.held)):
            raise LedgerError("the snapshot's sparsity state names clients this run has not")
        self.mask = torch.from_numpy(bits.astype(bool))
        self.version = int(state["version"])
        self.held = np.zeros_like(self.held)
        self.held[index] = np.asarray(state["held_version"], dtype=np.int64)
        try:
            self._refresh()
        except ValueError as exc:  # a structured run's mask that is not of whole units
            raise LedgerError(
                f"the snapshot's sparsity mask does not fit this run: {exc}"
            ) from None
