"""The messages that cross the seam between the round loop and its clients, in simulation
and in deployment alike: what a client is asked to do (FitInstructions), what an aggregation
strategy receives (ClientUpdate), and what a client's round gave back (ClientReport)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch

_NO_CAPS: Mapping[int, int] = MappingProxyType({})


@dataclass(frozen=True)
class FitInstructions:
    """What a client is asked to do in one round."""

    local_epochs: int
    batch_size: int
    lr: float
    momentum: float = 0.0
    prox_mu: float = 0.0
    # At most this many local steps per round (0: every batch of every epoch). Steps, not
    # epochs, bound the work of clients whose data sizes differ by orders of magnitude
    # (FedScale's local_steps, pfl's local_num_steps).
    max_steps: int = 0
    # Per-client step caps, below the round's own (client id -> steps): the work a client
    # can finish by the round's deadline when partial work is aggregated.
    client_steps: Mapping[int, int] = field(default_factory=lambda: _NO_CAPS)
    # Local DP-SGD (greenfl.privacy.local): per-sample clip norm and noise multiplier of
    # each step. Both 0: plain SGD; either positive: DP-SGD (which needs a clip norm).
    dp_noise_multiplier: float = 0.0
    dp_max_grad_norm: float = 0.0
    # Width-scaled sub-models (docs/submodels.md): train the width-``width`` slice of the
    # model (1.0: the full model). The client's delta is the slice's, not the model's.
    width: float = 1.0
    # Mixed precision (docs/footprint.md#mixed-precision): the arithmetic the client trains
    # in, "fp32" or "bf16" / "fp16" under torch.autocast with fp32 weights. The update is
    # float32 whatever the precision.
    precision: str = "fp32"

    def with_(self, **changes: object) -> FitInstructions:
        return replace(self, **changes)  # type: ignore[arg-type]

    def with_client_steps(self, caps: Mapping[int, int]) -> FitInstructions:
        return replace(self, client_steps=MappingProxyType(dict(caps)))

    def for_client(self, client_id: int) -> FitInstructions:
        """The instructions of one client: the round's, with its own step cap if it has one."""
        cap = self.client_steps.get(int(client_id))
        if cap is None:
            return self if not self.client_steps else replace(self, client_steps=_NO_CAPS)
        full = self.max_steps if self.max_steps > 0 else cap
        return replace(self, max_steps=min(cap, full), client_steps=_NO_CAPS)

    def steps(self, num_samples: np.ndarray) -> np.ndarray:
        """Local steps of clients holding ``num_samples`` samples each (the round's cap)."""
        return local_steps(num_samples, self.local_epochs, self.batch_size, self.max_steps)

    def steps_of(self, client_ids: Sequence[int], num_samples: np.ndarray) -> np.ndarray:
        """Local steps of each client, its own cap applied."""
        steps = self.steps(num_samples)
        if self.client_steps:
            own = zip(client_ids, steps.tolist(), strict=True)
            caps = [self.client_steps.get(int(c), s) for c, s in own]
            steps = np.minimum(steps, np.array(caps, dtype=np.int64))
        return steps

    def samples_processed(self, num_samples: np.ndarray) -> np.ndarray:
        """Samples through forward and backward of clients holding ``num_samples`` each."""
        return samples_processed(num_samples, self.local_epochs, self.batch_size, self.max_steps)


def local_steps(
    num_samples: np.ndarray | int, local_epochs: int, batch_size: int, max_steps: int = 0
) -> np.ndarray:
    """Steps of local SGD: every (possibly partial) batch of every epoch, capped at
    ``max_steps`` when it is positive."""
    n = np.asarray(num_samples, dtype=np.int64)
    steps = local_epochs * -(-n // batch_size)
    return np.minimum(steps, max_steps) if max_steps > 0 else steps


def samples_processed(
    num_samples: np.ndarray | int, local_epochs: int, batch_size: int, max_steps: int = 0
) -> np.ndarray:
    """Samples through forward and backward in ``local_steps``: whole epochs of n samples,
    then full batches of the epoch the cap cut short (only an epoch's last batch is
    partial, and a cut epoch never reaches it)."""
    n = np.asarray(num_samples, dtype=np.int64)
    steps = local_steps(n, local_epochs, batch_size, max_steps)
    per_epoch = np.maximum(-(-n // batch_size), 1)
    full, rest = np.divmod(steps, per_epoch)
    return full * n + rest * batch_size


def steps_within(
    sample_budget: np.ndarray,
    num_samples: np.ndarray,
    local_epochs: int,
    batch_size: int,
    max_steps: int = 0,
) -> np.ndarray:
    """The most local steps whose ``samples_processed`` stays within ``sample_budget``
    (the inverse of ``samples_processed``; never more than the round's own steps)."""
    n = np.maximum(np.asarray(num_samples, dtype=np.int64), 1)
    budget = np.maximum(np.floor(np.asarray(sample_budget, dtype=np.float64)), 0).astype(np.int64)
    per_epoch = -(-n // batch_size)
    full, rest = np.divmod(budget, n)
    steps = full * per_epoch + rest // batch_size
    return np.minimum(steps, local_steps(n, local_epochs, batch_size, max_steps))


@dataclass(frozen=True)
class ClientUpdate:
    client_id: int
    delta: torch.Tensor  # flat float32: local params - global params
    num_samples: int
    # Share of the round's local steps this client finished (1.0: all; less: partial work
    # cut at the deadline). Weighted averages weigh a client by num_samples x this.
    work_fraction: float = 1.0
    # Asynchronous FL (issue 30): how much the update counts for its staleness (1.0 fresh),
    # and the global model it was trained from (None: the model being aggregated into).
    staleness_weight: float = 1.0
    base: torch.Tensor | None = None

    @property
    def weight(self) -> float:
        return self.num_samples * self.work_fraction


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
    # Deployment only (issue 29): the device energy the client reported, and the server's
    # own estimate from its enrolled device and the observed wall time. ``disputed``: the
    # report disagreed with the server beyond deploy.claim_tolerance (or its peers), so
    # measured_energy_j holds the server's estimate and the ledger row is ``disputed``.
    reported_energy_j: float | None = None
    server_estimate_j: float | None = None
    disputed: bool = False
