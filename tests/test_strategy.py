import math

import torch

from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.strategy.fedavg import FedAvg
from greenfl.strategy.fedavgm import FedAvgM, FedAvgMParams
from greenfl.strategy.fedopt import (
    FedAdagrad,
    FedAdagradParams,
    FedAdam,
    FedAdamParams,
    FedYogi,
    FedYogiParams,
)
from greenfl.strategy.fedprox import FedProx, FedProxParams
from greenfl.strategy.robust import Median, TrimmedMean, TrimmedMeanParams

G = torch.tensor([1.0, -2.0])
U = [ClientUpdate(0, torch.tensor([1.0, 0.0]), 10), ClientUpdate(1, torch.tensor([-2.0, 3.0]), 30)]
# weights 0.25 / 0.75: mean delta = [0.25*1 + 0.75*-2, 0.75*3] = [-1.25, 2.25]
D = (-1.25, 2.25)


def test_fedavg_is_sample_weighted() -> None:
    out = FedAvg().aggregate(G, U)
    assert torch.allclose(out, torch.tensor([1.0 - 1.25, -2.0 + 2.25]))


def test_fedavgm_momentum_over_two_rounds() -> None:
    s = FedAvgM(FedAvgMParams(server_lr=0.5, server_momentum=0.9))
    x1 = s.aggregate(G, U)  # v = d
    x2 = s.aggregate(x1, U)  # v = 0.9 d + d
    for i in range(2):
        assert math.isclose(float(x1[i]), float(G[i]) + 0.5 * D[i], rel_tol=1e-6)
        assert math.isclose(float(x2[i]), float(x1[i]) + 0.5 * 1.9 * D[i], rel_tol=1e-6)


def test_fedprox_configures_mu_and_averages() -> None:
    s = FedProx(FedProxParams(mu=0.3))
    ins = s.configure(1, FitInstructions(1, 16, 0.1))
    assert ins.prox_mu == 0.3
    assert torch.allclose(s.aggregate(G, U), FedAvg().aggregate(G, U))


def _one_step(cls, **kw):  # noqa: ANN001, ANN202
    s = cls(cls.Params(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3, **kw))
    return s.aggregate(G, U), s


def test_fedadam_one_step_by_hand() -> None:
    x, s = _one_step(FedAdam)
    for i, d in enumerate(D):
        m = 0.1 * d
        v = 0.01 * d * d
        assert math.isclose(
            float(x[i]), float(G[i]) + 0.1 * m / (math.sqrt(v) + 1e-3), rel_tol=1e-5
        )
    assert set(s.state_dict()) == {"m", "v"}


def test_fedyogi_one_step_by_hand() -> None:
    x, _ = _one_step(FedYogi)
    for i, d in enumerate(D):
        m = 0.1 * d
        v = 0.0 - 0.01 * d * d * math.copysign(1.0, 0.0 - d * d)  # = 0.01 d^2
        assert math.isclose(
            float(x[i]), float(G[i]) + 0.1 * m / (math.sqrt(v) + 1e-3), rel_tol=1e-5
        )


def test_fedyogi_differs_from_adam_on_second_step() -> None:
    adam = FedAdam(FedAdamParams(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3))
    yogi = FedYogi(FedYogiParams(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3))
    small = [ClientUpdate(0, torch.tensor([0.01, 0.01]), 1)]
    a = adam.aggregate(adam.aggregate(G, U), small)
    y = yogi.aggregate(yogi.aggregate(G, U), small)
    assert not torch.allclose(a, y)


def test_fedadagrad_accumulates() -> None:
    s = FedAdagrad(FedAdagradParams(server_lr=0.1, beta1=0.0, beta2=0.99, tau=1e-3))
    x1 = s.aggregate(G, U)
    assert torch.allclose(s.v, torch.tensor([D[0] ** 2, D[1] ** 2]))
    s.aggregate(x1, U)
    assert torch.allclose(s.v, torch.tensor([2 * D[0] ** 2, 2 * D[1] ** 2]))


def test_state_roundtrip() -> None:
    a = FedAdam(FedAdamParams(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3))
    a.aggregate(G, U)
    b = FedAdam(FedAdamParams(server_lr=0.1, beta1=0.9, beta2=0.99, tau=1e-3))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.aggregate(G, U), b.aggregate(G, U))


def test_robust_aggregators_ignore_an_outlier() -> None:
    ups = [ClientUpdate(i, torch.tensor([1.0]), 1) for i in range(4)]
    ups.append(ClientUpdate(9, torch.tensor([1e6]), 1000))
    zero = torch.zeros(1)
    assert float(Median().aggregate(zero, ups)) == 1.0
    assert float(TrimmedMean(TrimmedMeanParams(trim_fraction=0.2)).aggregate(zero, ups)) == 1.0
    assert float(FedAvg().aggregate(zero, ups)) > 1e5


def test_median_matches_numpy_for_even_and_odd_counts() -> None:
    import numpy as np

    from greenfl.strategy.robust import Median

    rng = np.random.default_rng(0)
    for count in (4, 5):
        deltas = rng.normal(size=(count, 7)).astype(np.float32)
        ups = [ClientUpdate(i, torch.from_numpy(d), 1) for i, d in enumerate(deltas)]
        got = Median().aggregate(torch.zeros(7), ups).numpy()
        np.testing.assert_allclose(got, np.median(deltas, axis=0), rtol=1e-6, atol=1e-7)
