"""Issue 29 item 3: no single lying client can buy selection share with its self-reports.

Every scoring selector (oort, carbon, energy, fedzero, autofl) is run for 30 rounds on the
same small world, per liar and seed: once with every client honest, once with one client
lying. Two lies: a finite training loss of 1e30 (only inf is refused at the wire), and a
claimed data size of a million samples (a deployment's local-data ``num_samples``) with,
in the same breath, a tiny energy report. Reported energy never reaches a selector: the
context's estimates are the server's model of the client's enrolled device (fixed per
client here), so the second lie is the claimed size alone as far as selection goes.

The bound, derived from the clipping (greenfl.selection.utility): a clipped claim is
worth at most the peers' ``clip_percentile``-th percentile, which (one liar, n >= 2) is
at most the largest honest peer's value. So a lie is worth no more than telling the
truth as the top peer: the liar's share is at most the share the same client would have
if it honestly had the largest loss and the largest data of its peers (the "ceiling"
run), plus ``TOL`` for one effect the derivation leaves out: the ceiling is taken over
each peer's *latest* report, and a peer not picked lately still shows an older, higher
loss. Within a run the liar therefore stays within ``share(ceiling) - share(honest) +
TOL`` of its honest share, and never above ``ABS_BOUND`` (0.45) over it in this world.
Raw self-reports (``clip_percentile = 100``: the liar's own 1e30 sets the ceiling) break
that bound, which the last test checks, so the test can fail."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from greenfl.fleet import Population, load_fleet
from greenfl.selection import make
from greenfl.selection.base import LearningSelector, SelectionContext, UtilityInputs
from greenfl.selection.utility import robust_ceiling, statistical_utility

SELECTORS = ("oort", "carbon", "energy", "fedzero", "autofl")
N_CLIENTS, K, ROUNDS = 20, 4, 30
SEEDS = (0, 1, 2)
LIARS = (0, 5, 11, 17)  # a few clients of each world, whatever their honest standing
TOL = 0.05  # stale peer reports above the ceiling run's (module docstring)
ABS_BOUND = 0.45  # largest rise over the honest share, this world (measured 0.42: oort)


def _world(seed: int) -> dict[str, np.ndarray]:
    """A fleet's worth of clients: sample counts, modelled costs and how hard each one's
    data is (its loss, relative to the others')."""
    rng = np.random.default_rng(seed)
    energy_j = rng.lognormal(3.0, 0.5, N_CLIENTS)
    return {
        "samples": rng.integers(20, 200, N_CLIENTS),
        "energy_j": energy_j,
        "carbon_g": energy_j * rng.uniform(30, 700, N_CLIENTS) / 3.6e6 * 1e3,
        "duration_s": rng.lognormal(2.0, 0.3, N_CLIENTS),
        "hardness": rng.uniform(0.5, 2.5, N_CLIENTS),
    }


def share_of(selector: str, seed: int, liar: int, lie: str, clip_percentile: float = 95.0) -> float:
    """The liar's share of the rounds in which it is picked (``lie``: "none", "loss" or
    "samples")."""
    w = _world(seed)
    if lie == "ceiling":  # honest, at the top of its peers in both loss and size
        others = np.arange(N_CLIENTS) != liar
        w["hardness"][liar] = w["hardness"][others].max()
        w["samples"][liar] = w["samples"][others].max()
    params = {} if selector == "autofl" else {"clip_percentile": clip_percentile}
    sel = make(selector, **params)
    samples = w["samples"].copy()
    if lie == "samples":
        samples[liar] = 1_000_000
    pop = Population.assign(load_fleet("builtin"), samples, seed)
    # A deployment where every client trains on its own data: every count is a claim.
    inputs = UtilityInputs(
        loss=np.full(N_CLIENTS, np.nan, np.float32),
        samples=pop.num_samples,
        samples_claimed=np.ones(N_CLIENTS, dtype=bool),
    )
    participation = np.zeros(N_CLIENTS, np.int32)
    last_selected = np.full(N_CLIENTS, -1, np.int32)
    rng = np.random.default_rng([seed, 1])
    candidates = np.arange(N_CLIENTS)
    picked_rounds = 0
    accuracy = 0.1
    for r in range(1, ROUNDS + 1):
        ctx = SelectionContext(
            round_idx=r,
            now_s=0.0,
            population=pop,
            participation=participation,
            last_selected=last_selected,
            last_loss=inputs.loss,
            est_energy_j=w["energy_j"],
            est_carbon_g=w["carbon_g"],
            est_duration_s=w["duration_s"],
            utility=inputs,
        )
        cohort = np.asarray(sel.select(candidates, K, ctx, rng), dtype=np.int64)
        assert len(cohort) == K and len(set(cohort.tolist())) == K
        picked_rounds += int(liar in cohort)
        progress = 0.97**r  # every client's loss falls as the model trains
        loss = w["hardness"][cohort] * progress
        if lie == "loss":
            loss[cohort == liar] = 1e30
        inputs.loss[cohort] = loss
        last_selected[cohort] = r
        participation[cohort] += 1
        if isinstance(sel, LearningSelector):
            before, accuracy = accuracy, 1.0 - 0.9 * progress
            sel.observe(before, accuracy)
    return picked_rounds / ROUNDS


@functools.cache
def mean_share(selector: str, liar: int, lie: str, clip_percentile: float = 95.0) -> float:
    return float(np.mean([share_of(selector, s, liar, lie, clip_percentile) for s in SEEDS]))


@pytest.mark.parametrize("lie", ["loss", "samples"])
@pytest.mark.parametrize("selector", SELECTORS)
def test_a_lie_is_worth_no_more_than_being_the_top_peer(selector: str, lie: str) -> None:
    for liar in LIARS:
        honest = mean_share(selector, liar, "none")
        ceiling = mean_share(selector, liar, "ceiling")
        lying = mean_share(selector, liar, lie)
        assert lying <= ceiling + TOL, (
            f"{selector}, client {liar} lying about {lie}: share {lying:.3f}, above the "
            f"{ceiling:.3f} of an honest top peer (honest: {honest:.3f})"
        )
        assert lying - honest <= ABS_BOUND, (selector, liar, lie, honest, lying)


def test_autofl_rests_on_observations_only() -> None:
    # AutoFL's reward is the server's accuracy gain per modelled gram: no lie moves it.
    for liar in LIARS:
        honest = mean_share("autofl", liar, "none")
        assert mean_share("autofl", liar, "loss") == honest
        assert mean_share("autofl", liar, "samples") == honest


@pytest.mark.parametrize("lie", ["loss", "samples"])
def test_raw_self_reports_break_the_bound(lie: str) -> None:
    # clip_percentile = 100: the largest claim, the liar's own, is the ceiling (the code
    # before item 3). Oort then hands some liar a share far above an honest top peer's.
    excess = max(
        mean_share("oort", liar, lie, 100.0) - mean_share("oort", liar, "ceiling", 100.0)
        for liar in LIARS
    )
    assert excess > TOL + 0.05, excess


def test_the_ceiling_is_an_observed_value_below_one_outlier() -> None:
    # Ten honest losses 1..10 and one liar at 1e30: the 95th percentile by numpy's default
    # (linear) method would be 5e29, halfway to the lie; "lower" gives the peer's 10.
    losses = np.array([*range(1, 11), 1e30])
    assert robust_ceiling(losses, 95.0) == 10.0
    assert robust_ceiling(np.array([np.nan, np.inf]), 95.0) is None
    # 20 values: the ceiling is the 19th smallest (index floor(0.95 x 19) = 18), the
    # second largest, so one liar never sets it; with two liars it is the second liar.
    v = np.arange(1.0, 21.0)
    assert robust_ceiling(v, 95.0) == 19.0
    assert robust_ceiling(v, 100.0) == 20.0


def _context(pop: Population, loss: np.ndarray) -> SelectionContext:
    """Round 2 of a run in which every client was picked once, with these losses."""
    n = pop.size
    return SelectionContext(
        round_idx=2,
        now_s=0.0,
        population=pop,
        participation=np.zeros(n, np.int32),
        last_selected=np.ones(n, np.int32),
        last_loss=loss,
    )


def test_utility_clips_claims_and_trusts_known_counts() -> None:
    n = 5
    pop = Population.assign(load_fleet("builtin"), np.array([10, 20, 30, 40, 1_000_000]), 0)
    loss = np.array([1.0, 2.0, 3.0, 4.0, 1e30], dtype=np.float32)
    ctx = _context(pop, loss)
    ids = np.arange(n)
    # Counts known to the server (no utility inputs: a simulation's partition): kept.
    # Ceiling of the losses: index floor(0.95 x 4) = 3 of the sorted values, 4.0.
    u = statistical_utility(ids, ctx)
    np.testing.assert_allclose(u, [10.0, 40.0, 90.0, 160.0, 4_000_000.0], rtol=1e-12)
    # Counts claimed by clients 3 and 4: clipped to the counts' ceiling, 40 (index 3).
    claimed = np.array([False, False, False, True, True])
    ctx.utility = UtilityInputs(loss, pop.num_samples, claimed)
    u = statistical_utility(ids, ctx)
    np.testing.assert_allclose(u, [10.0, 40.0, 90.0, 160.0, 160.0], rtol=1e-12)
    # A client never seen is scored at the ceiling, not at the liar's 1e30.
    loss[1] = np.nan
    u = statistical_utility(ids, ctx)
    # Ceiling of the finite 1, 3, 4, 1e30: index floor(0.95 x 3) = 2, 4.0.
    np.testing.assert_allclose(u[1], 20.0 * 4.0, rtol=1e-12)


def test_a_joined_clients_declared_count_is_clipped_without_utility_inputs() -> None:
    """The engine passes no utility inputs: the population itself marks the counts that
    a deployed client declared (sessions.apply_joins), and selection clips those."""
    from greenfl.deploy.server.sessions import apply_joins

    n = 5
    pop = Population.assign(load_fleet("builtin"), np.array([10, 20, 30, 40, 50]), 0)
    loss = np.ones(n, dtype=np.float32)
    ctx = _context(pop, loss)
    ids = np.arange(n)
    # client 4 joins with its own data and declares a million samples
    apply_joins(pop, {}, {4: 1_000_000})
    assert pop.num_samples[4] == 1_000_000  # it weighs by its claim (capped elsewhere)
    # Its utility is clipped to the counts' ceiling: sorted 10, 20, 30, 40, 1e6, index
    # floor(0.95 x 4) = 3, 40; the partition counts are the server's own and kept.
    u = statistical_utility(ids, ctx)
    np.testing.assert_allclose(u, [10.0, 20.0, 30.0, 40.0, 40.0], rtol=1e-12)
