"""Privacy accounting with dp-accounting's RDP accountant (``dp_accounting.rdp.RdpAccountant``).

Which accountant. Renyi DP (Mironov 2017; the sampled Gaussian in Mironov, Talwar, Zhang
2019) composes a mechanism run many times by adding its RDP curve, so the state of a run is
a handful of counts and epsilon after any round is one conversion away. The conversion is
dp-accounting's own (``rdp_privacy_accountant.compute_epsilon``): the improved bound of
Canonne, Kamath, Steinke (2020, Prop. 12) / Asoodeh et al. (2020),
eps = rdp(a) + log1p(-1/a) - log(delta a) / (a - 1), minimised over the orders a. The
PLD accountant is tighter but slower and its state is a distribution, not a few numbers.

Central DP (user level), which sampling. The simulator picks a fixed-size cohort of k of the
n clients available in a round, uniformly without replacement. Two ways to account it:

* ``sampling="poisson"`` (the default): each round is
  ``PoissonSampledDpEvent(q = k / n, GaussianDpEvent(sigma))`` under add-or-remove-one
  adjacency. This is what DP-FedAvg papers report (McMahan et al. 2018; Andrew et al. 2021;
  TensorFlow Federated's DP aggregators), so greenfl's epsilons compare with theirs, and for
  k << n a fixed-size cohort and a Poisson cohort of rate k / n are close. It is a
  convention, not a proof for the sampling actually run: fixed-size sampling accounted as
  Poisson can under-report epsilon (Lebeda, Regehr, Kamath, Steinke 2024).
* ``sampling="without_replacement"`` (or ``"fixed"``): each round is
  ``SampledWithoutReplacementDpEvent(n, k, GaussianDpEvent(sigma / 2))`` under replace-one
  adjacency (Wang, Balle, Kasiviswanathan 2019, Thm. 27): exactly the sampling the simulator
  does. Replacing one user changes a sum of updates clipped to C by up to 2C, hence the
  halved noise multiplier; the epsilon is rigorous for this adjacency and larger.

n is the number of clients available in the round (an unavailable client cannot be picked,
so k / n bounds every user's chance of selection), given per round to ``compose_round``.

Local DP (sample level): each client runs DP-SGD on its own data (``privacy.local``), T_c
steps a round, each on a Poisson sample of rate q_c = batch / n_c. A client's epsilon
composes ``PoissonSampledDpEvent(q_c, GaussianDpEvent(sigma))`` over every step of every
round it trained in; ``LocalAccountant.epsilon`` reports the largest over clients (no
amplification from the client selection is claimed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch
from dp_accounting import dp_event
from dp_accounting.rdp import rdp_privacy_accountant as rdp

SAMPLINGS = ("poisson", "without_replacement")
# the config's short name for fixed-size cohorts
_ALIASES = {"fixed": "without_replacement"}


class _QuietNonConvergence(logging.Filter):
    """dp-accounting warns, once per order and curve, when its series for a fractional order
    near 1 does not converge (q around 0.1, sigma around 1) and drops that order. Dropping an
    order can only raise epsilon (a minimum over fewer orders), so nothing is wrong, and a
    run would print a page of warnings every new (k, n)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "failed to converge" not in record.getMessage()


logging.getLogger("absl").addFilter(_QuietNonConvergence())


def _orders(orders: tuple[float, ...] | None) -> np.ndarray:
    return np.asarray(rdp.DEFAULT_RDP_ORDERS if orders is None else orders, dtype=np.float64)


class _RdpCurves:
    """RDP curves of one event kind, each computed once by dp-accounting's RdpAccountant and
    kept: a run's rounds repeat a few (k, n) pairs, and the curve is most of the cost."""

    def __init__(self, orders: np.ndarray, relation: rdp.NeighborRel) -> None:
        self.orders = orders
        self.relation = relation
        self._cache: dict[tuple[object, ...], np.ndarray] = {}

    def of(self, key: tuple[object, ...], event: dp_event.DpEvent) -> np.ndarray:
        curve = self._cache.get(key)
        if curve is None:
            acct = rdp.RdpAccountant(list(self.orders), self.relation)
            acct.compose(event)
            curve = self._cache[key] = acct.rdp
        return curve


def _same_sigma(state: Mapping[str, torch.Tensor], noise_multiplier: float) -> None:
    """A snapshot's accountant state is only valid for the noise it was accounted with."""
    sigma = float(state["noise_multiplier"].item())
    if sigma != noise_multiplier:
        raise ValueError(
            f"the snapshot was accounted with noise_multiplier {sigma}, "
            f"this run has {noise_multiplier}"
        )


def epsilon_of(rdp_curve: np.ndarray, orders: np.ndarray, delta: float) -> float:
    """Epsilon at ``delta`` of an RDP curve, by dp-accounting's conversion."""
    if not np.any(rdp_curve):
        return 0.0
    return float(rdp.compute_epsilon(orders, rdp_curve, delta)[0])


class CentralAccountant:
    """User-level epsilon of DP-FedAvg: one sampled Gaussian mechanism of total noise
    multiplier ``noise_multiplier`` per round (the DPFedAvg wrapper's, count query
    included). State: the (k, n) of every round composed, so a resume rebuilds the same
    curve by the same additions."""

    def __init__(
        self,
        noise_multiplier: float,
        sampling: str = "poisson",
        orders: tuple[float, ...] | None = None,
    ) -> None:
        if noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be positive, got {noise_multiplier}")
        sampling = _ALIASES.get(sampling, sampling)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.noise_multiplier = float(noise_multiplier)
        self.sampling = sampling
        self.orders = _orders(orders)
        relation = (
            rdp.NeighborRel.ADD_OR_REMOVE_ONE
            if sampling == "poisson"
            else rdp.NeighborRel.REPLACE_ONE
        )
        self._curves = _RdpCurves(self.orders, relation)
        self._rdp = np.zeros_like(self.orders)
        self._rounds: list[tuple[int, int]] = []

    @property
    def rounds(self) -> int:
        return len(self._rounds)

    def _curve(self, cohort_size: int, population_size: int) -> np.ndarray:
        k, n = int(cohort_size), int(population_size)
        if not 0 <= k <= n or n < 1:
            raise ValueError(f"a cohort of {k} from {n} available clients is not a sample")
        if self.sampling == "poisson":
            event: dp_event.DpEvent = dp_event.PoissonSampledDpEvent(
                k / n, dp_event.GaussianDpEvent(self.noise_multiplier)
            )
        else:
            event = dp_event.SampledWithoutReplacementDpEvent(
                n, k, dp_event.GaussianDpEvent(self.noise_multiplier / 2)
            )
        return self._curves.of((k, n), event)

    def compose_round(self, cohort_size: int, population_size: int) -> None:
        """One round: ``cohort_size`` clients picked from ``population_size`` available."""
        curve = self._curve(cohort_size, population_size)
        self._rdp = self._rdp + curve
        self._rounds.append((int(cohort_size), int(population_size)))

    def epsilon(self, delta: float) -> float:
        return epsilon_of(self._rdp, self.orders, delta)

    def epsilon_after_next(self, delta: float, cohort_size: int, population_size: int) -> float:
        """Epsilon if one more such round were composed (nothing is composed)."""
        return epsilon_of(self._rdp + self._curve(cohort_size, population_size), self.orders, delta)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "rounds": torch.tensor(self._rounds, dtype=torch.int64).reshape(-1, 2),
            "noise_multiplier": torch.tensor(self.noise_multiplier, dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        _same_sigma(state, self.noise_multiplier)
        self._rdp = np.zeros_like(self.orders)
        self._rounds = []
        for k, n in state["rounds"].tolist():
            self.compose_round(k, n)


class LocalAccountant:
    """Sample-level epsilon of local DP-SGD, per client: each participation composes
    ``steps`` Poisson-sampled Gaussian steps of rate ``sample_rate``. ``epsilon`` is the
    largest over clients. State: every participation (client, rate, steps)."""

    def __init__(self, noise_multiplier: float, orders: tuple[float, ...] | None = None) -> None:
        if noise_multiplier <= 0:
            raise ValueError(f"noise_multiplier must be positive, got {noise_multiplier}")
        self.noise_multiplier = float(noise_multiplier)
        self.orders = _orders(orders)
        self._curves = _RdpCurves(self.orders, rdp.NeighborRel.ADD_OR_REMOVE_ONE)
        self._rdp: dict[int, np.ndarray] = {}
        self._history: list[tuple[int, float, int]] = []
        # Epsilon per client at one delta: a round changes only its cohort's, and thousands
        # of conversions a round would cost seconds.
        self._eps: dict[int, float] = {}
        self._eps_delta: float | None = None

    def _step_curve(self, sample_rate: float) -> np.ndarray:
        q = float(sample_rate)
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"sample_rate must lie in [0, 1], got {q}")
        event = dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(self.noise_multiplier))
        return self._curves.of((q,), event)

    def compose_client(self, client_id: int, sample_rate: float, steps: int) -> None:
        """One client's round of DP-SGD: ``steps`` steps at ``sample_rate``."""
        curve = self._step_curve(sample_rate) * int(steps)
        cid = int(client_id)
        self._rdp[cid] = self._rdp.get(cid, np.zeros_like(self.orders)) + curve
        self._eps.pop(cid, None)
        self._history.append((cid, float(sample_rate), int(steps)))

    def client_epsilon(self, client_id: int, delta: float) -> float:
        curve = self._rdp.get(int(client_id))
        return 0.0 if curve is None else epsilon_of(curve, self.orders, delta)

    def epsilon(self, delta: float) -> float:
        """The largest sample-level epsilon of any client so far."""
        if delta != self._eps_delta:
            self._eps, self._eps_delta = {}, delta
        for cid, curve in self._rdp.items():
            if cid not in self._eps:
                self._eps[cid] = epsilon_of(curve, self.orders, delta)
        return max(self._eps.values(), default=0.0)

    def epsilon_after(self, delta: float, planned: Mapping[int, tuple[float, int]]) -> float:
        """The largest epsilon if the clients in ``planned`` (client -> (sample_rate, steps))
        trained one more round (nothing is composed)."""
        worst = self.epsilon(delta)
        for cid, (q, steps) in planned.items():
            curve = self._rdp.get(int(cid), np.zeros_like(self.orders))
            curve = curve + self._step_curve(q) * int(steps)
            worst = max(worst, epsilon_of(curve, self.orders, delta))
        return worst

    def state_dict(self) -> dict[str, torch.Tensor]:
        ids = [h[0] for h in self._history]
        return {
            "client_ids": torch.tensor(ids, dtype=torch.int64),
            "sample_rates": torch.tensor([h[1] for h in self._history], dtype=torch.float64),
            "steps": torch.tensor([h[2] for h in self._history], dtype=torch.int64),
            "noise_multiplier": torch.tensor(self.noise_multiplier, dtype=torch.float64),
        }

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        _same_sigma(state, self.noise_multiplier)
        self._rdp, self._eps, self._history = {}, {}, []
        rows = zip(
            state["client_ids"].tolist(),
            state["sample_rates"].tolist(),
            state["steps"].tolist(),
            strict=True,
        )
        for cid, q, steps in rows:
            self.compose_client(cid, q, steps)


def dp_sgd_sample_rate(batch_size: int, num_samples: int) -> float:
    """The Poisson rate of local DP-SGD: batch / n (1 when the batch holds all data)."""
    return min(1.0, batch_size / max(int(num_samples), 1))
