"""Differential privacy: the RDP accountants against an independent computation, DP-FedAvg's
clipping, denominator, noise and adaptive clip, and local DP-SGD through Opacus."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from greenfl.clients.trainer import SequentialTrainer, train_one
from greenfl.clients.vectorised import VectorisedTrainer
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.core.params import get_flat, set_flat
from greenfl.privacy import (
    CentralAccountant,
    DPFedAvg,
    LocalAccountant,
    PrivacyBudget,
    update_noise_multiplier,
)
from greenfl.privacy.local import dp_sgd_train
from greenfl.strategy.fedavgm import FedAvgM

INT_ORDERS = tuple(range(2, 257))


# ---- an independent RDP of the sampled Gaussian ----------------------------------------
def _rdp_sampled_gaussian(q: float, sigma: float, alpha: int) -> float:
    """Mironov, Talwar, Zhang 2019, Sec. 3.3, integer alpha:
    A_alpha = sum_k C(alpha, k) (1 - q)^(alpha - k) q^k exp((k^2 - k) / (2 sigma^2)),
    RDP(alpha) = log(A_alpha) / (alpha - 1)."""
    logs = [
        math.lgamma(alpha + 1)
        - math.lgamma(k + 1)
        - math.lgamma(alpha - k + 1)
        + k * math.log(q)
        + (alpha - k) * math.log1p(-q)
        + (k * k - k) / (2 * sigma**2)
        for k in range(alpha + 1)
    ]
    top = max(logs)
    return (top + math.log(sum(math.exp(v - top) for v in logs))) / (alpha - 1)


def _epsilon(rdp_by_order: dict[int, float], delta: float) -> float:
    """The conversion dp-accounting uses (Canonne-Kamath-Steinke 2020 Prop. 12 / Asoodeh et
    al.): eps = rdp + log1p(-1/a) - log(delta a) / (a - 1), minimised over the orders."""
    return min(
        r + math.log1p(-1 / a) - math.log(delta * a) / (a - 1) for a, r in rdp_by_order.items()
    )


def _independent_epsilon(q: float, sigma: float, rounds: int, delta: float) -> float:
    return _epsilon({a: rounds * _rdp_sampled_gaussian(q, sigma, a) for a in INT_ORDERS}, delta)


def _central(q_k: int, q_n: int, sigma: float, rounds: int, **kw: object) -> CentralAccountant:
    acct = CentralAccountant(sigma, **kw)  # type: ignore[arg-type]
    for _ in range(rounds):
        acct.compose_round(q_k, q_n)
    return acct


def test_central_epsilon_matches_an_independent_rdp_computation() -> None:
    expected = _independent_epsilon(0.01, 1.1, 1000, 1e-5)
    assert 0.5 < expected < 5  # a meaningful regime, not a degenerate corner
    # the same integer orders: the same number up to rounding
    exact = _central(10, 1000, 1.1, 1000, orders=INT_ORDERS).epsilon(1e-5)
    assert exact == pytest.approx(expected, rel=1e-6)
    # dp-accounting's default orders add fractional ones: within 1%, never above
    default = _central(10, 1000, 1.1, 1000).epsilon(1e-5)
    assert default == pytest.approx(expected, rel=0.01)
    assert default <= expected * (1 + 1e-9)


def test_without_sampling_the_gaussian_closed_form() -> None:
    # q = 1: the plain Gaussian mechanism, RDP(a) = a / (2 sigma^2) per round
    sigma, rounds, delta = 2.0, 50, 1e-6
    expected = _epsilon({a: rounds * a / (2 * sigma**2) for a in INT_ORDERS}, delta)
    got = _central(7, 7, sigma, rounds, orders=INT_ORDERS).epsilon(delta)
    assert got == pytest.approx(expected, rel=1e-9)


def test_epsilon_grows_with_rounds_and_shrinks_with_noise() -> None:
    eps_rounds = [_central(10, 1000, 1.1, r).epsilon(1e-5) for r in (10, 100, 1000)]
    assert eps_rounds[0] < eps_rounds[1] < eps_rounds[2]
    eps_sigma = [_central(10, 1000, s, 100).epsilon(1e-5) for s in (0.8, 1.1, 2.0)]
    assert eps_sigma[0] > eps_sigma[1] > eps_sigma[2]
    assert CentralAccountant(1.0).epsilon(1e-5) == 0.0


def test_fixed_size_sampling_option_is_more_conservative() -> None:
    poisson = _central(10, 1000, 1.1, 100).epsilon(1e-5)
    wor = _central(10, 1000, 1.1, 100, sampling="without_replacement").epsilon(1e-5)
    assert wor > poisson
    fixed = _central(10, 1000, 1.1, 100, sampling="fixed").epsilon(1e-5)  # the config's name
    assert fixed == wor
    with pytest.raises(ValueError):
        CentralAccountant(1.0, sampling="shuffled")


def test_accountant_state_rebuilds_the_same_epsilon() -> None:
    acct = CentralAccountant(1.1)
    for n in (1000, 900, 1000, 800):
        acct.compose_round(10, n)
    again = CentralAccountant(1.1)
    again.load_state_dict(acct.state_dict())
    assert again.rounds == 4 and again.epsilon(1e-5) == acct.epsilon(1e-5)
    with pytest.raises(ValueError):
        CentralAccountant(1.2).load_state_dict(acct.state_dict())


def test_budget_stops_before_the_round_that_would_exceed_it() -> None:
    acct = CentralAccountant(1.1)
    budget = PrivacyBudget(epsilon_budget=1.0, delta=1e-5)
    rounds = 0
    while not budget.next_round_exceeds(acct, 10, 1000):
        acct.compose_round(10, 1000)
        rounds += 1
        assert acct.epsilon(1e-5) <= 1.0
    assert rounds > 0
    assert acct.epsilon_after_next(1e-5, 10, 1000) > 1.0
    assert not PrivacyBudget(None, 1e-5).next_round_exceeds(acct, 10, 1000)  # no budget


def test_local_accountant_is_per_client_and_reports_the_worst() -> None:
    acct = LocalAccountant(1.1, orders=INT_ORDERS)
    acct.compose_client(3, 0.01, 600)
    acct.compose_client(5, 0.01, 300)
    acct.compose_client(3, 0.01, 400)  # a second participation composes on the first
    expected = _independent_epsilon(0.01, 1.1, 1000, 1e-5)
    assert acct.client_epsilon(3, 1e-5) == pytest.approx(expected, rel=1e-6)
    assert acct.epsilon(1e-5) == acct.client_epsilon(3, 1e-5)
    assert acct.client_epsilon(5, 1e-5) < acct.epsilon(1e-5)
    planned = {5: (0.01, 2000)}
    assert acct.epsilon_after(1e-5, planned) > acct.epsilon(1e-5)
    assert PrivacyBudget(acct.epsilon(1e-5) * 1.01, 1e-5).next_local_round_exceeds(acct, planned)
    again = LocalAccountant(1.1, orders=INT_ORDERS)
    again.load_state_dict(acct.state_dict())
    assert again.epsilon(1e-5) == acct.epsilon(1e-5)


# ---- DP-FedAvg ---------------------------------------------------------------------------
def _u(values: list[float], num_samples: int = 1) -> ClientUpdate:
    return ClientUpdate(0, torch.tensor(values, dtype=torch.float32), num_samples)


def test_updates_are_clipped_and_averaged_over_the_fixed_denominator() -> None:
    # norms 5 (clipped to 2: [1.2, 1.6]) and 1 (kept); any sample counts weigh the same
    updates = [_u([3.0, 4.0], num_samples=500), _u([0.6, 0.8], num_samples=1)]
    dp = DPFedAvg(clip_norm=2.0, noise_multiplier=0.0, expected_clients=4)
    out = dp.aggregate(torch.zeros(2), updates)
    assert torch.allclose(out, torch.tensor([1.8, 2.4]) / 4)
    facts = dp.last_round
    assert facts is not None and (facts.num_updates, facts.num_clipped) == (2, 1)
    assert facts.clip_norm == facts.next_clip_norm == 2.0
    # the denominator is expected_clients, not the number of updates that arrived
    half = DPFedAvg(clip_norm=2.0, noise_multiplier=0.0, expected_clients=2)
    assert torch.allclose(half.aggregate(torch.ones(2), updates), 1 + torch.tensor([1.8, 2.4]) / 2)


def test_noise_has_the_calibrated_std() -> None:
    sigma, clip, m, d = 1.3, 0.7, 5, 400_000
    dp = DPFedAvg(clip_norm=clip, noise_multiplier=sigma, expected_clients=m, seed=3)
    out = dp.aggregate(torch.zeros(d), [ClientUpdate(0, torch.zeros(d), 1)])
    target = sigma * clip / m
    assert float(out.std()) == pytest.approx(target, rel=0.01)
    assert abs(float(out.mean())) < 5 * target / math.sqrt(d)
    assert dp.last_round is not None and dp.last_round.noise_std == pytest.approx(target)


def test_noise_repeats_with_the_seed_and_differs_by_round_and_seed() -> None:
    def run(seed: int, rounds: int) -> list[torch.Tensor]:
        dp = DPFedAvg(clip_norm=1.0, noise_multiplier=1.0, expected_clients=3, seed=seed)
        base = FitInstructions(1, 8, 0.1)
        outs = []
        for r in range(1, rounds + 1):
            dp.configure(r, base)
            outs.append(dp.aggregate(torch.zeros(50), [_u([1.0] * 50)]))
        return outs

    a, b, c = run(7, 2), run(7, 2), run(8, 2)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(a[0], a[1]) and not torch.equal(a[0], c[0])


def test_adaptive_clip_moves_towards_the_target_quantile() -> None:
    # noise off: norms 0.5, 0.8, 0.9 are unclipped at C = 1, 3.0 is not
    dp = DPFedAvg(
        clip_norm=1.0,
        noise_multiplier=0.0,
        expected_clients=4,
        adaptive_clip=True,
        target_quantile=0.5,
        clip_lr=0.2,
        clip_count_stddev=0.0,
    )
    updates = [_u([n, 0.0]) for n in (0.5, 0.8, 0.9, 3.0)]
    dp.aggregate(torch.zeros(2), updates)
    fraction = (3 - 4 / 2) / 4 + 0.5  # centred count over the fixed denominator: 0.75
    assert dp.last_round is not None
    assert dp.last_round.unclipped_fraction == pytest.approx(fraction)
    assert dp.clip_norm == pytest.approx(math.exp(-0.2 * (fraction - 0.5)))  # 0.9512
    # repeated, the clip settles around the median norm of a fixed set of updates
    norms = [_u([n, 0.0]) for n in (1.0, 2.0, 3.0, 4.0, 5.0)]
    dp = DPFedAvg(
        clip_norm=0.1,
        noise_multiplier=0.0,
        expected_clients=5,
        adaptive_clip=True,
        clip_count_stddev=0.0,
    )
    for _ in range(200):
        dp.aggregate(torch.zeros(2), norms)
    assert 2.0 <= dp.clip_norm <= 4.0


def test_noise_multiplier_split_between_update_and_count() -> None:
    # Andrew et al.: sigma^-2 = z^-2 + (2 sigma_b)^-2
    z = update_noise_multiplier(1.0, 5.0)
    assert z == pytest.approx((1 - 1 / 100) ** -0.5)
    assert z**-2 + (2 * 5.0) ** -2 == pytest.approx(1.0)
    dp = DPFedAvg(clip_norm=1.0, noise_multiplier=1.0, expected_clients=100, adaptive_clip=True)
    assert dp.clip_count_stddev == 5.0 and dp.update_noise_multiplier == pytest.approx(z)
    with pytest.raises(ValueError):
        update_noise_multiplier(1.0, 0.5)  # the count would need the whole budget


def test_state_resumes_exactly_with_an_inner_strategy() -> None:
    def make() -> DPFedAvg:
        return DPFedAvg(
            FedAvgM(),
            clip_norm=1.0,
            noise_multiplier=0.8,
            expected_clients=3,
            seed=1,
            adaptive_clip=True,
            clip_count_stddev=1.0,
        )

    def step(dp: DPFedAvg, g: torch.Tensor, r: int) -> torch.Tensor:
        dp.configure(r, FitInstructions(1, 8, 0.1))
        return dp.aggregate(g, [_u([0.3 * r, -0.2, 1.5]), _u([2.0, 0.1, 0.0])])

    first, g = make(), torch.zeros(3)
    for r in (1, 2):
        g = step(first, g, r)
    state = {k: v.clone() for k, v in first.state_dict().items()}
    assert any(k.startswith("inner.") for k in state)
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.clip_norm == first.clip_norm
    assert torch.equal(step(resumed, g, 3), step(first, g, 3))
    assert resumed.clip_norm == first.clip_norm
    assert first.aggregation_flops(10, 100) > FedAvgM().aggregation_flops(1, 100)


# ---- local DP-SGD ------------------------------------------------------------------------
def _blobs(n: int, seed: int = 0, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 4, generator=g) + 2.0 * (2 * y[:, None] - 1).float()
    return x * scale, y


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float(nn.functional.cross_entropy(model(x), y))


def test_per_sample_gradients_are_clipped() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = _blobs(40, scale=30.0)  # large inputs: every per-sample gradient is far above C
    g = get_flat(model)
    lr, clip = 0.1, 0.05
    # q = 1 (a batch of all data): each step moves at most lr * C
    full = FitInstructions(3, 40, lr)
    res = dp_sgd_train(model, g, x, y, full, noise_multiplier=0.0, max_grad_norm=clip, seed=1)
    assert res.steps == 3 and res.sample_rate == 1.0
    assert float(res.delta.norm()) <= lr * res.steps * clip * (1 + 1e-5)
    assert torch.equal(get_flat(model), g)  # the caller's model is untouched
    plain = train_one(model, g, x, y, 0, full, 1)
    assert float(plain.delta.norm()) > 10 * lr * res.steps * clip  # clipping did something
    # Poisson batches: a step moves at most lr * C * |batch| / expected batch
    small = FitInstructions(2, 10, lr)
    res = dp_sgd_train(model, g, x, y, small, noise_multiplier=0.0, max_grad_norm=clip, seed=2)
    assert res.steps == 8 and res.sample_rate == pytest.approx(0.25)
    assert float(res.delta.norm()) <= lr * clip * res.samples_processed / 10 * (1 + 1e-5)


def test_dp_sgd_still_learns_an_easy_problem() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2))
    x, y = _blobs(400, seed=1)
    g = get_flat(model)
    ins = FitInstructions(5, 40, 0.5)
    res = dp_sgd_train(model, g, x, y, ins, noise_multiplier=1.0, max_grad_norm=1.0, seed=4)
    before = _loss(model, x, y)
    set_flat(model, g + res.delta)
    assert _loss(model, x, y) < 0.5 * before


class _TinyData:
    name, num_clients, input_shape, num_classes = "tiny", 3, (4,), 2

    def client_sizes(self) -> np.ndarray:
        return np.array([30, 50, 20], dtype=np.int64)

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return _blobs(int(self.client_sizes()[client_id]), seed=client_id)

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.client_data(client_id)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return _blobs(50, seed=9)


def test_trainers_take_the_dp_path_when_instructed() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 2))
    g, ds = get_flat(model), _TinyData()
    plain = FitInstructions(1, 10, 0.1)
    dp = plain.with_(dp_noise_multiplier=1.0, dp_max_grad_norm=0.5)
    seq = SequentialTrainer().train(model, g, ds, [0, 2], dp, round_idx=1, seed=5)
    again = SequentialTrainer().train(model, g, ds, [0, 2], dp, round_idx=1, seed=5)
    off = SequentialTrainer().train(model, g, ds, [0, 2], plain, round_idx=1, seed=5)
    assert all(torch.equal(a.delta, b.delta) for a, b in zip(seq, again, strict=True))
    assert not torch.equal(seq[0].delta, off[0].delta)
    assert [r.steps for r in seq] == [3, 2]
    # the vectorised trainer hands DP-SGD to the sequential path: the same results
    vec = VectorisedTrainer().train(model, g, ds, [0, 2], dp, round_idx=1, seed=5)
    assert all(torch.equal(a.delta, b.delta) for a, b in zip(seq, vec, strict=True))


def test_models_opacus_cannot_train_are_refused() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    x, y = _blobs(20)
    with pytest.raises(ValueError, match="local DP-SGD"):
        dp_sgd_train(model, get_flat(model), x, y, FitInstructions(1, 10, 0.1), 1.0, 1.0, 0)
