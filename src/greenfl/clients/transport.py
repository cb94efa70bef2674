"""The one seam between the engine and its clients, in simulation and deployment alike.

The engine hands a client a ``Task`` with ``dispatch`` and takes finished work back with
``collect(until_s)``, a completion queue: in simulation the in-process clients train for
real and their completions come at the simulated clock's time (``InProcessTransport``); in
deployment they are real processes over gRPC (``greenfl.deploy.server``). ``fit`` is the
synchronous round as a convenience over the two: dispatch a cohort, collect everything.
Nothing in the strategies, selectors or ledger knows which transport ran."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from greenfl.core.messages import ClientReport, FitInstructions


@dataclass(frozen=True)
class Task:
    """One client's job: train from ``params`` (the global model of round, or model
    version, ``round_idx``) as ``instructions`` say (its own step cap included), dispatched
    at simulated time ``start_s``."""

    round_idx: int
    client_id: int
    params: torch.Tensor
    instructions: FitInstructions
    start_s: float = 0.0


@dataclass(frozen=True)
class Completion:
    """A task's outcome: the client's report, and when it arrived (simulated seconds; a
    deployment gives the seconds since the round's dispatch)."""

    task: Task
    report: ClientReport
    finish_s: float


@dataclass(frozen=True)
class FitProgress:
    """How far the work collected so far has come: clients finished of those dispatched,
    local steps taken of those asked (0 where a transport cannot tell)."""

    clients_done: int
    clients: int
    steps_done: int = 0
    steps: int = 0


ProgressFn = Callable[[FitProgress], None]


@runtime_checkable
class ClientTransport(Protocol):
    def available_clients(self) -> np.ndarray | None:
        """The client ids that can be asked now (a deployment: those connected, which may
        wait for enough of them), or None when any client may be asked."""
        ...

    def expect_updates(self, target: int) -> None:
        """The next ``collect`` may close once ``target`` updates are accepted (a
        deployment with over-selection closes its round early)."""
        ...

    def dispatch(self, task: Task) -> None:
        """Hand ``task`` to its client; returns at once."""
        ...

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        """The completions that arrive by ``until_s`` (None: every dispatched task, each
        completed or failed), in dispatch order. ``progress`` hears how far the work is."""
        ...

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
        progress: ProgressFn | None = None,
        start_s: float = 0.0,
    ) -> list[ClientReport]:
        """A synchronous round started at simulated time ``start_s``: every client of
        ``cohort`` trains from ``global_params``, and their reports come back in cohort
        order."""
        ...

    def close(self) -> None: ...


class Transport:
    """Base of the transports: ``fit`` over ``dispatch`` and ``collect``."""

    def available_clients(self) -> np.ndarray | None:
        return None

    def expect_updates(self, target: int) -> None:
        return None

    def dispatch(self, task: Task) -> None:
        raise NotImplementedError

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        raise NotImplementedError

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
        progress: ProgressFn | None = None,
        start_s: float = 0.0,
    ) -> list[ClientReport]:
        for cid in cohort:
            self.dispatch(Task(round_idx, int(cid), global_params, instructions, start_s))
        done = {c.task.client_id: c.report for c in self.collect(None, progress)}
        return [done[int(cid)] for cid in cohort]

    def close(self) -> None:
        return None


class TransportWrapper(Transport):
    """Base of the transports that wrap another (validation, simulated attacks, SecAgg's
    price): everything is the inner transport's, but what a subclass changes in
    ``collect``'s batch (``_collected``)."""

    def __init__(self, inner: ClientTransport) -> None:
        self.inner = inner

    def available_clients(self) -> np.ndarray | None:
        return self.inner.available_clients()

    def expect_updates(self, target: int) -> None:
        self.inner.expect_updates(target)

    def dispatch(self, task: Task) -> None:
        self.inner.dispatch(task)

    def collect(
        self, until_s: float | None = None, progress: ProgressFn | None = None
    ) -> list[Completion]:
        return self._collected(self.inner.collect(until_s, progress))

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        return batch

    def close(self) -> None:
        self.inner.close()


def with_reports(batch: list[Completion], reports: Sequence[ClientReport]) -> list[Completion]:
    """``batch`` with its reports replaced, in order."""
    return [Completion(c.task, r, c.finish_s) for c, r in zip(batch, reports, strict=True)]
