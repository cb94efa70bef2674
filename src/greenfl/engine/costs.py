"""What a round will ask of a client, priced before it trains: each client's execution
target (its population entry's, or the fastest, least-energy or least-carbon of its
device's targets), and its expected time, energy and carbon (for selectors that weigh
them, for the carbon-aware wait, and for cutting late clients' work at the deadline)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from greenfl.accounting.entries import EntryTable
from greenfl.accounting.estimates import Estimates, estimate_clients
from greenfl.accounting.targets import TargetTable
from greenfl.core.messages import ClientReport, local_steps, samples_processed, steps_within
from greenfl.fleet.population import Population
from greenfl.footprint.intensity import CarbonIntensity
from greenfl.sparse.server import SparseTraining
from greenfl.submodel.policy import WidthCost, WidthPlan


class CostModel:
    """``flops_per_sample``: counted training FLOPs per sample of the model; ``bytes_up``:
    the configured codec's payload for a model-sized update; ``bytes_down``: the float32
    model. ``target_policy``: entry, fastest, energy or carbon (``adapt.target``)."""

    def __init__(
        self,
        population: Population,
        entries: EntryTable,
        targets: TargetTable | None,
        target_policy: str,
        sources: Sequence[CarbonIntensity],
        flops_per_sample: float,
        bytes_up: int,
        bytes_down: int,
        batch_size: int,
        max_steps: int,
        submodel: WidthPlan | None = None,
    ) -> None:
        self.population = population
        self.targets = targets if target_policy != "entry" else None
        self.target_policy = target_policy
        # Each client's profile row: in the targets' table when targets are chosen.
        self.table = self.targets.table if self.targets is not None else entries
        self.sources = sources
        self.flops_per_sample = flops_per_sample
        self.bytes_up = bytes_up
        self.bytes_down = bytes_down
        self.batch_size = batch_size
        self.max_steps = max_steps
        # Width-scaled sub-models (docs/submodels.md): each width's counted cost, and how
        # a client's is chosen. None: every client trains the full model.
        self.submodel = submodel
        # Sparse training (docs/submodels.md): the mask whose kept values (and the mask
        # itself) travel instead of the dense model. None: dense. The composition root sets it.
        self.sparse: SparseTraining | None = None

    def rows(self, clients: np.ndarray, start_s: float, local_epochs: int) -> np.ndarray:
        """Each client's row in ``self.table``: its entry, or its chosen execution target."""
        entry = self.population.entry[clients]
        if self.targets is None:
            return entry

        def cost(rows: np.ndarray) -> np.ndarray:
            est = self._estimate(clients, rows, start_s, local_epochs)
            return est.energy_j if self.target_policy == "energy" else est.carbon_g

        return self.targets.choose(entry, self.target_policy, cost)

    def _estimate(
        self,
        clients: np.ndarray,
        rows: np.ndarray,
        start_s: float | np.ndarray,
        epochs: int,
        width: WidthCost | None = None,
    ) -> Estimates:
        """The full model's cost, or ``width``'s sub-model's."""
        if width is None:
            return self._priced(clients, rows, start_s, epochs, *self._model_cost())
        per_width = (width.flops_per_sample, width.bytes_up, width.bytes_down)
        return self._priced(clients, rows, start_s, epochs, *per_width)

    def _priced(
        self,
        clients: np.ndarray,
        rows: np.ndarray,
        start_s: float | np.ndarray,
        epochs: int,
        flops_per_sample: float | np.ndarray,
        bytes_up: int | np.ndarray,
        bytes_down: int | np.ndarray,
    ) -> Estimates:
        """The clients' estimates at these per-sample FLOPs and bytes (one for all, or one
        per client)."""
        return estimate_clients(
            clients,
            rows,
            self.population,
            self.table,
            self.sources,
            start_s,
            flops_per_sample,
            epochs,
            bytes_up,
            bytes_down,
            batch_size=self.batch_size,
            max_steps=self.max_steps,
        )

    def choose_widths(
        self,
        clients: np.ndarray,
        rows: np.ndarray,
        start_s: float,
        local_epochs: int,
        round_idx: int,
        width_cap: float = 1.0,
    ) -> np.ndarray:
        """Each client's sub-model width this round (all 1.0 without sub-models), priced
        on the rows the round charges, no wider than ``width_cap`` (an adaptive policy's
        arm)."""
        if self.submodel is None:
            return np.ones(len(clients), dtype=np.float64)

        def priced(width: WidthCost) -> Estimates:
            return self._estimate(clients, rows, start_s, local_epochs, width)

        return self.submodel.choose(
            clients,
            round_idx,
            lambda w: priced(w).duration_s,
            lambda w: priced(w).carbon_g,
            width_cap,
        )

    def _width_costs(
        self, widths: np.ndarray | None
    ) -> tuple[float | np.ndarray, int | np.ndarray, int | np.ndarray]:
        """(flops per sample, bytes up, bytes down) of each client at its width, or the
        full model's."""
        if widths is None or self.submodel is None:
            return self._model_cost()
        costs = [self.submodel.cost_of(float(w)) for w in widths]
        return (
            np.array([c.flops_per_sample for c in costs], dtype=np.float64),
            np.array([c.bytes_up for c in costs], dtype=np.float64),
            np.array([c.bytes_down for c in costs], dtype=np.float64),
        )

    def _model_cost(self) -> tuple[float, int, int]:
        """(FLOPs per sample, bytes up, bytes down) of a client of the full model: under a
        sparsity mask, its kept values, and the FLOPs its kernels really run."""
        if self.sparse is None:
            return self.flops_per_sample, self.bytes_up, self.bytes_down
        return self.sparse.expected_cost()

    def estimate(
        self,
        clients: np.ndarray,
        start_s: float,
        local_epochs: int,
        round_idx: int | None = None,
        width_cap: float = 1.0,
    ) -> tuple[Estimates, np.ndarray]:
        """The clients' expected cost at ``start_s``, and the rows it was priced at. With
        sub-models and a ``round_idx``, each client is priced at the width the run's choice
        would give it this round (no wider than ``width_cap``)."""
        rows = self.rows(clients, start_s, local_epochs)
        if self.submodel is None or round_idx is None:
            return self._estimate(clients, rows, start_s, local_epochs), rows
        # The width is one more lever a selector sees (issue 31 item 4): a slow or dirty
        # device that would train a narrow width is priced at that width's cost, as the
        # round will charge it, not at the full model's.
        widths = self.choose_widths(clients, rows, start_s, local_epochs, round_idx, width_cap)
        per_client = self._width_costs(widths)
        return self._priced(clients, rows, start_s, local_epochs, *per_client), rows

    def durations_s(self, clients: np.ndarray, local_epochs: int) -> np.ndarray:
        """The clients' expected download, training and upload time on their own entries:
        what ``estimate`` gives as ``duration_s``, without pricing the grid (the async
        loop plans each dispatch's arrival with it)."""
        # the entry's own row, as ``duration_s`` prices a report
        tb, rows = self.table, self.population.entry[clients]
        if self.targets is not None:
            tb, rows = self.targets.table, self.targets.default_row[rows]
        processed = samples_processed(
            self.population.num_samples[clients], local_epochs, self.batch_size, self.max_steps
        )
        cost = tb.cost(rows, self.flops_per_sample * processed, self.bytes_up, self.bytes_down)
        return np.asarray(cost.total_s, dtype=np.float64)

    def duration_s(self, client_id: int, report: ClientReport) -> float:
        """A report's modelled download, training and upload time on the client's own
        population entry (its FLOPs and bytes as reported)."""
        tb, row = self.table, int(self.population.entry[client_id])
        if self.targets is not None:
            tb, row = self.targets.table, int(self.targets.default_row[row])
        cost = tb.cost(row, np.float64(report.flops), report.bytes_up, report.bytes_down)
        return float(cost.total_s)

    def partial_steps(
        self,
        clients: np.ndarray,
        rows: np.ndarray,
        local_epochs: int,
        batch_size: int,
        deadline_s: float,
        widths: np.ndarray | None = None,
    ) -> dict[int, int]:
        """Step caps of the clients that cannot do the round's work by the deadline: the
        most steps whose download, training and upload all fit in it (the modelled times
        the accounting will charge). A client that cannot fit one step keeps its full work:
        it straggles, and is not aggregated."""
        tb = self.table
        n = self.population.num_samples[clients]
        e, b = local_epochs, batch_size
        full = samples_processed(n, e, b, self.max_steps)
        # each client at its sub-model width (``widths``), else the full model
        flops_per_sample, bytes_up, bytes_down = self._width_costs(widths)
        cost = tb.cost(rows, flops_per_sample * full.astype(np.float64), bytes_up, bytes_down)
        late = cost.total_s > deadline_s
        if not late.any():
            return {}
        # A hair inside the deadline: the accounting sums the same terms in another order.
        compute_budget_s = deadline_s * (1 - 1e-9) - cost.comm_s
        budget = compute_budget_s * tb.flops_per_s[rows] / flops_per_sample
        steps = steps_within(budget, n, e, b, self.max_steps)
        cut = late & (steps >= 1) & (steps < local_steps(n, e, b, self.max_steps))
        return dict(zip(clients[cut].tolist(), steps[cut].tolist(), strict=True))
