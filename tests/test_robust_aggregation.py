"""The Byzantine-robust strategies (issue 17): hand-computed aggregates on tiny vectors,
the tolerance each declares and refuses past, the round kept unchanged when drop-outs leave
too few updates, FLOPs counted by hand, repeatable clip noise, and one huge outlier."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from greenfl import strategy
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientUpdate, FitInstructions
from greenfl.factories import run_strategy_for
from greenfl.strategy.clipping import CenteredClip, CenteredClipParams, NormClip, NormClipParams
from greenfl.strategy.fedavg import FedAvg
from greenfl.strategy.geomedian import GeometricMedian, GeometricMedianParams
from greenfl.strategy.krum import Bulyan, Krum, MultiKrum, MultiKrumParams
from greenfl.strategy.robust import Median, TrimmedMean, TrimmedMeanParams
from greenfl.strategy.tolerance import ByzantineParams, check_tolerance

ROBUST = ["krum", "multikrum", "bulyan", "geomedian", "centered_clip", "clip", "median",
          "trimmed_mean"]  # fmt: skip


def ups(*deltas: tuple[float, ...], samples: int = 1) -> list[ClientUpdate]:
    return [
        ClientUpdate(i, torch.tensor(d, dtype=torch.float32), samples) for i, d in enumerate(deltas)
    ]


def close(got: torch.Tensor, expected: tuple[float, ...], tol: float = 1e-6) -> None:
    assert torch.allclose(got, torch.tensor(expected), atol=tol, rtol=0), (got, expected)


# ---- Krum and Multi-Krum -----------------------------------------------------------------

# n = 5, f = 1: each score sums the k = n - f - 2 = 2 smallest squared distances.
KRUM = ups((1, 1), (2, 1), (1, 3), (3, 3), (11, 1))
# squared distances (a..e in order):
#   a-b 1   a-c 4   a-d 4+4=8    a-e 100
#   b-c 1+4=5       b-d 1+4=5    b-e 81
#   c-d 4           c-e 100+4=104
#   d-e 64+4=68
# scores: a {1,4,8,100} -> 1+4 = 5;  b {1,5,5,81} -> 1+5 = 6;  c {4,5,4,104} -> 4+4 = 8
#         d {8,5,4,68}  -> 4+5 = 9;  e {100,81,104,68} -> 68+81 = 149
G = torch.tensor([0.5, -0.5])


def test_krum_scores_and_choice_by_hand() -> None:
    k = Krum(ByzantineParams(byzantine=1))
    assert k.scores(KRUM).tolist() == pytest.approx([5.0, 6.0, 8.0, 9.0, 149.0])
    close(k.aggregate(G, KRUM), (0.5 + 1, -0.5 + 1))  # a = (1, 1) wins


def test_multikrum_selection_by_hand() -> None:
    # m = n - f = 4: the four best scores a, b, c, d; their mean
    # ((1+2+1+3)/4, (1+1+3+3)/4) = (1.75, 2.0)
    m = MultiKrum(MultiKrumParams(byzantine=1))
    assert m.selection(KRUM) == [0, 1, 2, 3]
    close(m.aggregate(torch.zeros(2), KRUM), (1.75, 2.0))
    # m = 2: a and b, mean ((1+2)/2, (1+1)/2) = (1.5, 1.0)
    close(
        MultiKrum(MultiKrumParams(byzantine=1, selected=2)).aggregate(torch.zeros(2), KRUM),
        (1.5, 1.0),
    )
    # m = 9 asked, but at most n - f = 4 are taken
    assert MultiKrum(MultiKrumParams(byzantine=1, selected=9)).selected_count(5) == 4


# ---- Bulyan ------------------------------------------------------------------------------

# n = 7, f = 1: theta = n - 2f = 5 picks, beta = theta - 2f = 3 values kept per coordinate.
BULYAN = ups((4, 3), (4, 1), (1, 3), (0, 0), (0, 1), (0, 3), (20, -20))
# squared distances (u0..u6):
#        u1  u2  u3  u4  u5  u6
#   u0    4   9  25  20  16 785
#   u1       13  17  16  20 697
#   u2           10   5   1 890
#   u3                1   9 800
#   u4                    4 841
#   u5                      929
# pick 1, pool of 7, k = 7-1-2 = 4: u0 4+9+16+20=49, u1 4+13+16+17=50, u2 1+5+9+10=25,
#   u3 1+9+10+17=37, u4 1+4+5+16=26, u5 1+4+9+16=30, u6 huge -> u2
# pick 2, pool {0,1,3,4,5,6}, k = 3: u0 4+16+20=40, u1 4+16+17=37, u3 1+9+17=27,
#   u4 1+4+16=21, u5 4+9+16=29 -> u4
# pick 3, pool {0,1,3,5,6}, k = 2: u0 4+16=20, u1 4+17=21, u3 9+17=26, u5 9+16=25 -> u0
# pick 4, pool {1,3,5,6}, k = 1: u1 17, u3 9, u5 9 -> a tie, the first listed: u3
# pick 5, pool {1,5,6}, k = 1 (n-f-2 = 0 floored at one): u1 20, u5 20 -> tie: u1
# selected u2 u4 u0 u3 u1 = (1,3) (0,1) (4,3) (0,0) (4,1)
# x sorted 0 0 1 4 4, median 1, gaps 1 1 0 3 3 -> the 3 nearest 1, 0, 0 -> mean 1/3
# y sorted 0 1 1 3 3, median 1, gaps 1 0 0 2 2 -> the 3 nearest 1, 1, 0 -> mean 2/3


def test_bulyan_selection_and_result_by_hand() -> None:
    b = Bulyan(ByzantineParams(byzantine=1))
    assert b.selection(BULYAN) == [2, 4, 0, 3, 1]
    close(b.aggregate(torch.zeros(2), BULYAN), (1 / 3, 2 / 3))


def test_bulyan_without_attackers_is_the_plain_mean() -> None:
    # f = 0: theta = beta = n; mean ((1+2+1+3+11)/5, (1+1+3+3+1)/5) = (3.6, 1.8)
    close(Bulyan().aggregate(torch.zeros(2), KRUM), (3.6, 1.8))


# ---- geometric median --------------------------------------------------------------------


def _scipy_geomedian(points: np.ndarray) -> np.ndarray:
    from scipy.optimize import minimize

    def total_distance(z: np.ndarray) -> float:
        return float(np.linalg.norm(points - z, axis=1).sum())

    res = minimize(total_distance, points.mean(axis=0), method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000})  # fmt: skip
    return res.x


def test_geomedian_of_an_equilateral_triangle_is_its_fermat_point() -> None:
    # every angle is 60 degrees < 120, so the Fermat point is the centre: (1, sqrt(3)/3)
    tri = ups((0, 0), (2, 0), (1, math.sqrt(3)))
    got = GeometricMedian(GeometricMedianParams(iterations=200, tolerance=0.0)).aggregate(
        torch.zeros(2), tri
    )
    close(got, (1.0, math.sqrt(3) / 3), tol=1e-5)


def test_geomedian_matches_an_independent_minimisation() -> None:
    points = np.array([[0, 0], [4, 0], [1, 3], [5, 5], [-2, 1]], dtype=np.float64)
    expected = _scipy_geomedian(points)
    updates = ups(*[tuple(p) for p in points.tolist()])
    got = GeometricMedian(GeometricMedianParams(iterations=500, tolerance=0.0)).aggregate(
        torch.zeros(2), updates
    )
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)
    # the mean (1.6, 1.8) is not it: the test tells the two apart
    assert np.linalg.norm(expected - points.mean(axis=0)) > 0.1


def test_geomedian_weighted_follows_the_heavy_point() -> None:
    # weights 3, 1, 1: the heavy point's weight 3 exceeds |(1,0) + (0,1)| = sqrt(2), the pull
    # of the other two unit vectors, so the weighted geometric median is (0, 0) itself
    pts = [ClientUpdate(i, torch.tensor(xy), w) for i, (xy, w) in
           enumerate([([0.0, 0.0], 3), ([1.0, 0.0], 1), ([0.0, 1.0], 1)])]  # fmt: skip
    weighted = GeometricMedian(GeometricMedianParams(iterations=500, tolerance=0.0, weighted=True))
    close(weighted.aggregate(torch.zeros(2), pts), (0.0, 0.0), tol=1e-4)
    # unweighted, the right-angled corner is not the median (the angle, 90, is below 120)
    plain = GeometricMedian(GeometricMedianParams(iterations=500, tolerance=0.0)).aggregate(
        torch.zeros(2), pts
    )
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(plain.numpy(), _scipy_geomedian(corners), atol=1e-4)


# ---- centered clipping -------------------------------------------------------------------


def test_centered_clip_iterates_by_hand_and_resumes_exactly() -> None:
    cc = CenteredClip(CenteredClipParams(radius=1.0, iterations=1))
    # round 1, centre v = 0: (3,4) has norm 5 -> (0.6, 0.8); (0.6,-0.8) has norm 1 -> kept;
    # (-0.3,0) has norm 0.3 -> kept; sum (0.9, 0) / 3 -> v = (0.3, 0)
    r1 = ups((3, 4), (0.6, -0.8), (-0.3, 0))
    close(cc.aggregate(torch.ones(2), r1), (1.3, 1.0))
    close(cc.state_dict()["centre"], (0.3, 0.0))
    # round 2 from v = (0.3, 0): differences (0,2) -> norm 2 -> (0,1); (3,-4) -> (0.6,-0.8);
    # (0.3,-0.2) -> norm 0.36 -> kept; sum (0.9, 0.0) / 3 = (0.3, 0) -> v = (0.6, 0)
    r2 = ups((0.3, 2), (3.3, -4), (0.6, -0.2))
    resumed = CenteredClip(CenteredClipParams(radius=1.0, iterations=1))
    resumed.load_state_dict({k: v.clone() for k, v in cc.state_dict().items()})
    close(cc.aggregate(torch.zeros(2), r2), (0.6, 0.0))
    assert torch.equal(resumed.aggregate(torch.zeros(2), r2), cc.state_dict()["centre"])


def test_centered_clip_iterations_repeat_the_step_and_survive_a_zero_difference() -> None:
    xs = [(3.0, 4.0), (0.0, 0.0), (-1.0, 0.5)]
    v = [0.0, 0.0]
    for _ in range(3):  # the update rule, in plain Python
        step = [0.0, 0.0]
        for x in xs:
            d = [x[0] - v[0], x[1] - v[1]]
            norm = math.hypot(*d)
            s = 1.0 if norm == 0 else min(1.0, 0.5 / norm)
            step = [step[0] + d[0] * s / 3, step[1] + d[1] * s / 3]
        v = [v[0] + step[0], v[1] + step[1]]
    got = CenteredClip(CenteredClipParams(radius=0.5, iterations=3)).aggregate(
        torch.zeros(2), ups(*xs)
    )
    close(got, tuple(v))
    # the first iteration starts at (0,0) = the second update: its zero difference adds 0
    assert not torch.isnan(got).any()


# ---- clip --------------------------------------------------------------------------------


def test_clip_then_mean_by_hand() -> None:
    # clip_norm 1: (3,4) norm 5 -> (0.6,0.8); (0.3,0.4) norm 0.5 -> kept; (0,-2) -> (0,-1)
    # mean (0.9/3, 0.2/3) = (0.3, 0.0667), added to (1, 1)
    got = NormClip(NormClipParams(norm=1.0)).aggregate(
        torch.ones(2), ups((3, 4), (0.3, 0.4), (0, -2))
    )
    close(got, (1.3, 1 + 0.2 / 3))


def test_clip_noise_is_repeatable_per_seed_and_round() -> None:
    three = ups((3, 4), (0.3, 0.4), (0, -2))
    a, b = (
        NormClip(NormClipParams(noise_std=0.1, seed=7)),
        NormClip(NormClipParams(noise_std=0.1, seed=7)),
    )
    a.configure(4, FitInstructions(1, 16, 0.1))
    b.configure(4, FitInstructions(1, 16, 0.1))
    first = a.aggregate(torch.zeros(2), three)
    assert torch.equal(first, b.aggregate(torch.zeros(2), three))
    # noise = aggregate - the noiseless clipped mean, and it is the round's own draw
    noiseless = NormClip().aggregate(torch.zeros(2), three)
    assert torch.allclose(first - noiseless, a.noise(4, 2))
    assert not torch.equal(a.noise(4, 2), a.noise(5, 2))
    assert not torch.equal(
        a.noise(4, 2), NormClip(NormClipParams(noise_std=0.1, seed=8)).noise(4, 2)
    )
    # absolute std per coordinate
    assert abs(float(a.noise(0, 200_000).std()) - 0.1) < 2e-3
    # without configure the counter goes on from the state, so a resume draws the same
    c = NormClip(NormClipParams(noise_std=0.1, seed=7))
    c.aggregate(torch.zeros(2), three)
    d = NormClip(NormClipParams(noise_std=0.1, seed=7))
    d.load_state_dict(c.state_dict())
    assert torch.equal(c.aggregate(torch.zeros(2), three), d.aggregate(torch.zeros(2), three))


# ---- tolerance ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "n", "f", "needed"),
    [
        ("krum", {"byzantine": 2}, 6, 2, 7),  # n >= 2f + 3
        ("multikrum", {"byzantine": 1}, 4, 1, 5),
        ("bulyan", {"byzantine": 2}, 10, 2, 11),  # n >= 4f + 3
        ("median", {"byzantine": 2}, 4, 2, 5),  # f < n/2
        ("geomedian", {"byzantine": 3}, 6, 3, 7),
        ("trimmed_mean", {"byzantine": 2}, 10, 2, 20),  # int(0.1 n) >= 2
        ("centered_clip", {"byzantine": 1}, 9, 1, 10),  # f/n <= 0.1
    ],
)
def test_tolerance_refusal_names_strategy_f_n_and_the_n_needed(
    name: str, kwargs: dict, n: int, f: int, needed: int
) -> None:
    s = strategy.make(name, **kwargs)
    with pytest.raises(ConfigError) as err:
        check_tolerance(s, n, f)
    assert str(err.value) == (
        f"strategy {name!r} cannot tolerate f={f} Byzantine updates among n={n} clients per "
        f"round: it needs n >= {needed}"
    )
    check_tolerance(s, needed, f)  # and the n it names is enough
    assert s.max_byzantine(needed) >= f > s.max_byzantine(needed - 1)


def test_tolerance_refuses_what_no_cohort_honours() -> None:
    for s in (NormClip(), FedAvg(), strategy.make("fedadam")):
        with pytest.raises(ConfigError, match=r"cannot tolerate f=1 .* n=10 .*nor among any"):
            check_tolerance(s, 10, 1)
        check_tolerance(s, 10, 0)
    with pytest.raises(ConfigError, match="'clip' cannot tolerate f=1"):
        strategy.make("clip", byzantine=1)


def test_tolerance_refuses_a_strategy_built_for_fewer_attackers() -> None:
    with pytest.raises(ConfigError, match="built for byzantine=0 .* f=1"):
        check_tolerance(Krum(), 10, 1)
    with pytest.raises(ConfigError, match="byzantine: Input should be greater than or equal to 0"):
        strategy.make("krum", byzantine=-1)


def test_max_byzantine_rules() -> None:
    assert [Krum().max_byzantine(n) for n in (2, 3, 4, 5, 7)] == [-1, 0, 0, 1, 2]
    assert [Bulyan().max_byzantine(n) for n in (2, 3, 6, 7, 11)] == [-1, 0, 0, 1, 2]
    assert [Median().max_byzantine(n) for n in (1, 2, 3, 5)] == [0, 0, 1, 2]
    assert [GeometricMedian().max_byzantine(n) for n in (1, 4, 5)] == [0, 1, 2]
    assert [
        TrimmedMean(TrimmedMeanParams(trim_fraction=0.1)).max_byzantine(n) for n in (2, 3, 19, 20)
    ] == [0, 1, 1, 2]
    assert [CenteredClip().max_byzantine(n) for n in (9, 10, 25)] == [0, 1, 2]
    assert [NormClip().max_byzantine(n) for n in (1, 100)] == [0, 0]


# ---- too few updates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kwargs", "n"),
    [
        ("krum", {"byzantine": 1}, 4),
        ("multikrum", {"byzantine": 1}, 4),
        ("bulyan", {"byzantine": 1}, 6),
        ("median", {"byzantine": 2}, 4),
        ("geomedian", {"byzantine": 1}, 2),
        ("trimmed_mean", {"byzantine": 1}, 2),
        ("centered_clip", {"byzantine": 1}, 9),
        ("krum", {}, 2),  # even f = 0 needs three updates
    ],
)
def test_too_few_updates_keep_the_model_unchanged(name: str, kwargs: dict, n: int) -> None:
    s = strategy.make(name, **kwargs)
    state_before = {k: v.clone() for k, v in s.state_dict().items()}
    g = torch.tensor([1.0, 2.0])
    out = s.aggregate(g, ups(*[(float(i), -float(i)) for i in range(n)]))
    assert torch.equal(out, g) and out is not g
    assert s.skipped_rounds == 1
    assert s.aggregation_flops(n, 2) == 0  # nothing computed, nothing counted
    assert s.state_dict().keys() == state_before.keys()


@pytest.mark.parametrize("name", ROBUST)
def test_an_empty_round_keeps_the_model(name: str) -> None:
    g = torch.tensor([1.0, 2.0])
    assert torch.equal(strategy.make(name).aggregate(g, []), g)


# ---- FLOPs -------------------------------------------------------------------------------


def test_aggregation_flops_by_hand() -> None:
    p = 10
    # krum, n = 5, f = 1 (k = 2): 10 pairs x 3p = 300; scores 5 x (sort of 4 = 4 log2 4 = 8,
    # plus k-1 = 1 add) = 45; argmin 4; add to the model 10
    assert Krum(ByzantineParams(byzantine=1)).aggregation_flops(5, p) == 300 + 45 + 4 + 10
    # multikrum, m = 4: 300 + 45, sort of 5 scores round(5 log2 5 = 11.6) = 12, mean (4+1)p
    assert MultiKrum(MultiKrumParams(byzantine=1)).aggregation_flops(5, p) == 300 + 45 + 12 + 50
    # bulyan, n = 7, f = 1, theta 5, beta 3: 21 pairs x 30 = 630; picks over pools 7..3:
    #   r=7 k=4: 7 (sort 6 = round(15.5) = 16, +3) + 6 = 139;  r=6 k=3: 6 (12 + 2) + 5 = 89
    #   r=5 k=2: 5 (8 + 1) + 4 = 49;  r=4 k=1: 4 (sort 3 = round(4.75) = 5) + 3 = 23
    #   r=3 k=1: 3 (sort 2 = 2) + 2 = 8;  together 308
    #   per coordinate: 2 sorts of 5 (24), median 2, gaps 2x5 = 10, mean of 3 plus add 4 = 40
    assert Bulyan(ByzantineParams(byzantine=1)).aggregation_flops(7, p) == 630 + 308 + 40 * p
    assert Bulyan().aggregation_flops(5, p) == (5 + 1) * p  # f = 0: the mean
    # geomedian, n = 3, p = 2, 4 iterations (the bound, before any aggregate):
    # start: sort 3 values per coordinate, round(3 log2 3) = 5, x p = 10; the middle pair's
    # mean 2p = 4; distances 3np + 3n = 18 + 9; then the add p = 2: 43.
    # Per iteration 5np + 7n + 3 = 30 + 21 + 3 = 54
    gm = GeometricMedian(GeometricMedianParams(iterations=4))
    assert gm.aggregation_flops(3, 2) == 43 + 4 * 54
    weighted = GeometricMedian(GeometricMedianParams(iterations=4, weighted=True))
    assert weighted.aggregation_flops(3, 2) == 43 + 216 + 6
    # after an aggregate that stopped early, its own k iterations are counted
    early = GeometricMedian(GeometricMedianParams(iterations=50))
    early.aggregate(torch.zeros(2), ups((0, 0), (2, 0), (1, 2)))
    assert early.last_iterations is not None and 1 <= early.last_iterations < 50
    assert early.aggregation_flops(3, 2) == 43 + early.last_iterations * 54
    # n differs: sort round(4 x 2) = 8 x p = 16, + 2p + 3np + 3n + p = 4 + 24 + 12 + 2
    assert early.aggregation_flops(4, 2) == 16 + 4 + 24 + 12 + 2 + 50 * (40 + 28 + 3)
    # centered clip, n = 3, p = 2, L = 3: 3 (5np + 3n + p = 30 + 9 + 2 = 41) + p = 125
    assert CenteredClip(CenteredClipParams(iterations=3)).aggregation_flops(3, 2) == 125
    # clip, n = 3, p = 2: 4np + 3n + p = 24 + 9 + 2 = 35; noise 3p more
    assert NormClip().aggregation_flops(3, 2) == 35
    assert NormClip(NormClipParams(noise_std=0.5)).aggregation_flops(3, 2) == 41


# ---- one huge outlier --------------------------------------------------------------------


@pytest.mark.parametrize("name", ROBUST)
def test_each_robust_strategy_bounds_a_scaled_outlier_that_fedavg_follows(name: str) -> None:
    rng = np.random.default_rng(0)
    honest = [tuple(float(v) for v in 1.0 + 0.1 * rng.normal(size=3)) for _ in range(9)]
    boosted = tuple(1e6 * v for v in honest[0])
    # the attacker also claims many samples: unweighted rules must not care
    updates = [*ups(*honest), ClientUpdate(9, torch.tensor(boosted), 10**9)]
    f = 0 if name == "clip" else 1
    out = strategy.make(name, byzantine=f).aggregate(torch.zeros(3), updates)
    assert float(torch.linalg.vector_norm(out)) < 5.0, (name, out)
    assert float(torch.linalg.vector_norm(FedAvg().aggregate(torch.zeros(3), updates))) > 1e5


def test_registry_names_are_the_public_contract() -> None:
    for name in ROBUST:
        assert strategy.make(name).name == name
        assert name in strategy.STRATEGIES


def test_geomedian_is_not_dragged_by_two_updates_scaled_a_millionfold() -> None:
    # 8 honest updates near (1, 1, ...) and 2 attackers at 1e6 x that: started at the mean
    # (2e5 away), 10 Weiszfeld steps ended ~1e4 from the honest cluster; from the
    # coordinate-wise median they stay within it.
    gen = torch.Generator().manual_seed(0)
    honest = [torch.ones(50) + 0.1 * torch.randn(50, generator=gen) for _ in range(8)]
    bad = [1e6 * torch.ones(50), 1e6 * torch.ones(50)]
    updates = [ClientUpdate(i, d, 10) for i, d in enumerate(honest + bad)]
    got = GeometricMedian(GeometricMedianParams(byzantine=2)).aggregate(torch.zeros(50), updates)
    assert float(torch.linalg.vector_norm(got - torch.ones(50))) < 1.0


def test_clipping_is_held_to_an_explicit_byzantine_count_only(tiny_config: RunConfig) -> None:
    # 40% attackers in a cohort of 5 expect 2 of them. Krum out-votes attackers, so it is
    # held to those 2 (it needs n >= 2f + 3 = 7); centered clipping bounds each update's
    # pull instead, so only an explicit strategy.byzantine holds it (f/n <= 0.1: none of 5).
    attack = {"attack.name": "sign_flip", "attack.fraction": 0.4, "train.clients_per_round": 5}
    with pytest.raises(ConfigError, match="krum"):
        run_strategy_for(tiny_config.replace(**attack, **{"strategy.name": "krum"}))
    clipped = run_strategy_for(tiny_config.replace(**attack, **{"strategy.name": "centered_clip"}))
    assert isinstance(clipped, CenteredClip) and clipped.num_byzantine == 0
    with pytest.raises(ConfigError, match="centered_clip"):
        run_strategy_for(
            tiny_config.replace(
                **attack, **{"strategy.name": "centered_clip", "strategy.params.byzantine": 1}
            )
        )
