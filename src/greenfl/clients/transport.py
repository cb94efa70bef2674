"""The one seam between the round loop and its clients. The loop asks a ClientTransport to
have a cohort train; in simulation that happens in-process (``InProcessTransport``), in
deployment over gRPC (``greenfl.deploy.server.GrpcTransport``). Nothing in the strategies,
selectors or ledger knows which. Every hook the loop calls is declared here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from greenfl.core.messages import ClientReport, FitInstructions


@runtime_checkable
class ClientTransport(Protocol):
    def available_clients(self) -> np.ndarray | None:
        """The client ids that can be asked this round (a deployment: those connected now,
        which may wait for enough of them), or None when any client may be asked."""
        ...

    def expect_updates(self, target: int) -> None:
        """The next ``fit`` may close once ``target`` updates are accepted."""
        ...

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
    ) -> list[ClientReport]: ...

    def close(self) -> None: ...


class TransportWrapper:
    """Base of the transports that wrap another (validation, simulated attacks, SecAgg's
    price): everything but ``fit`` is the inner transport's."""

    def __init__(self, inner: ClientTransport) -> None:
        self.inner = inner

    def available_clients(self) -> np.ndarray | None:
        return self.inner.available_clients()

    def expect_updates(self, target: int) -> None:
        self.inner.expect_updates(target)

    def close(self) -> None:
        self.inner.close()
