"""Claims checked against the server's observations and the client's peers (issue 29, item
2), replays refused (item 4), and acknowledgements and refused uploads (item 9). Expected
figures are worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression import CODECS  # noqa: F401  (registers the codecs)
from greenfl.config import CompressionConfig
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.checks import (
    REFUSED_UPLOAD_SLACK_BYTES,
    ClaimRules,
    UpdateRules,
    judge_update,
)
from greenfl.deploy.server.claims import (
    PeerFigures,
    PeerStats,
    judge_claims,
    plausible_samples,
    robust_outlier,
    server_estimate_j,
)
from greenfl.deploy.server.plausible import RoundModel, check_plausible
from greenfl.deploy.server.quarantine import Quarantine
from greenfl.deploy.server.replay import ReplayGuard, relative_distance, sketch_of
from greenfl.deploy.server.sessions import Pending
from greenfl.deploy.wire import params_to_pb
from greenfl.factories import codec_for

# A phone: 3.5 W active, 1e9 FLOP/s; the task asks 2e9 FLOPs, so 2 s of compute, 7 J.
PHONE = RoundModel(expected_flops=2e9, flops_per_s=1e9, power_w=3.5, timeout_s=300.0, factor=10)
TOL = 3.0


def test_the_server_estimate_is_the_enrolled_power_over_the_time_it_needed() -> None:
    assert server_estimate_j(PHONE, wall_s=10.0) == pytest.approx(7.0)  # 3.5 W x 2 s
    assert server_estimate_j(PHONE, wall_s=1.0) == pytest.approx(3.5)  # capped at 1 s seen
    assert server_estimate_j(PHONE, wall_s=None) == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("ratio", "disputed"),
    [(100.0, True), (500.0, True), (1 / 9.9, True), (0.1, True), (2.9, False), (1 / 2.9, False)],
)
def test_energy_outside_the_tolerance_is_disputed(ratio: float, disputed: bool) -> None:
    # The lies (350 W and 1,750 W for a 3.5 W phone, and 1/9.9x) passed the hard
    # bounds: MAX_CLIENT_POWER_W (2,000 W) believes any meter up to a workstation's.
    claim_j = 7.0 * ratio
    check_plausible(2e9, 2.0, claim_j, 10.0, PHONE)  # no UpdateRejected
    v = judge_claims(PHONE, claim_j, 10.0, TOL, declared=False)
    assert v.server_estimate_j == pytest.approx(7.0)
    assert v.reported_energy_j == claim_j
    assert (v.dispute is not None) is disputed
    if disputed:
        assert f"{ratio:.3g}x the server's estimate 7 J" in v.dispute


def test_declared_samples_the_device_could_not_have_trained_on_are_disputed() -> None:
    # 1,000,000 declared samples whose work needs 1,000 s on the enrolled phone, 333 s at
    # its peak (3x its profile's rate); the server saw the task out 2 s: disputed.
    big = RoundModel(1e12, 1e9, 3.5, 3600.0, 10)
    v = judge_claims(big, None, 2.0, TOL, declared=True)
    assert (
        v.dispute is not None and "needs 1000 s" in v.dispute and "333.3 s at its peak" in v.dispute
    )
    # it could have done 2 / 1000 of them at its profile's rate: 2,000 samples
    assert plausible_samples(big, 2.0, 1_000_000) == 2_000
    # a partition the server assigned is never "declared"
    assert judge_claims(big, None, 2.0, TOL, declared=False).dispute is None


def test_robust_outliers_among_peers() -> None:
    peers = [0.0, 0.1, -0.1, 0.05, -0.05]  # log ratios around 1x; MAD 0.05 -> floor 0.25
    assert robust_outlier(math.log(10.0), peers, 6.0) == pytest.approx(math.log(10) / 0.25)
    assert robust_outlier(math.log(3.0), peers, 6.0) is None  # z = 4.4
    assert robust_outlier(math.log(10.0), peers[:4], 6.0) is None  # too few figures


def test_peer_stats_judge_a_client_against_the_others_of_its_class() -> None:
    stats = PeerStats(threshold=6.0)
    for cid in range(3):
        for r in range(2):
            stats.add("phone-mid", cid, PeerFigures(0.02 * (cid - 1 + r), 0.0))
    liar = PeerFigures(math.log(100.0), 0.0)
    assert "reported energy / estimate is 100" in (stats.judge("phone-mid", 9, liar) or "")
    assert stats.judge("rpi4", 9, liar) is None  # no peers in that class
    # its own history does not vouch for it: client 0 is judged against 1 and 2 only
    assert stats.judge("phone-mid", 0, liar) is None  # two other clients: too few
    fast = PeerFigures(None, math.log(1 / 1000))  # 1000x quicker than its peers
    assert "wall time / modelled compute" in (stats.judge("phone-mid", 9, fast) or "")


SPEC = ParamSpec.of(torch.nn.Linear(3, 2))  # 8 values
RULES = UpdateRules(codec_for(CompressionConfig()), SPEC, 10_000_000, max_update_norm=None)


def update(
    delta: torch.Tensor, energy_j: float | None, compute_s: float = 2.0, cid: int = 5
) -> pb.Update:
    fp = pb.Footprint(flops=2e9, compute_s=compute_s)
    if energy_j is not None:
        fp.energy_j = energy_j
    return pb.Update(
        protocol_version=PROTOCOL_VERSION,
        client_id=cid,
        round=3,
        task_id="t",
        tensors=pb.TensorList(tensors=params_to_pb(delta, SPEC)),
        num_samples=10,
        loss=0.5,
        footprint=fp,
    )


def pending() -> Pending:
    import time

    # delivered 10 s ago: the server saw the task out ~10 s
    return Pending("t", "s", 3, 1000, 10, delivered_at=time.monotonic() - 10.0, model=PHONE)


def rules(stats: PeerStats | None = None) -> ClaimRules:
    return ClaimRules(TOL, "phone-mid", False, stats or PeerStats(6.0), flag=None)


def test_a_100x_energy_report_is_disputed_and_charged_the_estimate() -> None:
    d = torch.randn(SPEC.numel)
    r = judge_update(update(d, 700.0), 500, 5, pending(), RULES, rules())
    assert r.status == "completed" and r.disputed and r.delta is not None
    assert r.reported_energy_j == 700.0
    assert r.server_estimate_j == pytest.approx(7.0, rel=1e-3)
    assert r.measured_energy_j == pytest.approx(7.0, rel=1e-3) and r.energy_estimated
    assert r.reason is not None and r.reason.startswith("disputed: reported 700 J, 100x")
    honest = judge_update(update(d, 8.0), 500, 5, pending(), RULES, rules())
    assert not honest.disputed and honest.measured_energy_j == 8.0
    assert honest.server_estimate_j == pytest.approx(7.0, rel=1e-3)


def test_a_self_described_clients_rows_carry_the_flag() -> None:
    flagged = ClaimRules(TOL, "jetson-nano", False, PeerStats(6.0), flag="self-described: x")
    r = judge_update(update(torch.randn(SPEC.numel), 7.0), 500, 5, pending(), RULES, flagged)
    assert r.status == "completed" and r.reason == "self-described: x"


def test_a_refused_oversized_update_is_charged_no_more_than_an_honest_one() -> None:
    # 100 MB against a 1 MB limit: rejected; its upload charged at most the task's size
    # (1,000 bytes) + 64 KiB, not 100 MB (18 kJ of modelled network energy in the issue).
    small = UpdateRules(RULES.codec, SPEC, 1_000_000, None)
    r = judge_update(update(torch.randn(SPEC.numel), 7.0), 100_000_000, 5, pending(), small)
    assert r.status == "rejected" and "exceeds" in (r.reason or "")
    assert r.bytes_up == 1000 + REFUSED_UPLOAD_SLACK_BYTES


def test_peer_outliers_are_quarantined_and_a_class_off_its_profile_is_not() -> None:
    # Every client's meter reads 15x the phone's profile (a laptop's CPU): each report is
    # disputed (charged the 7 J estimate) but none is an outlier among its peers...
    stats, q = PeerStats(6.0), Quarantine(rounds=5)
    for round_idx in (1, 2):
        honest = [
            judge_update(update(torch.randn(SPEC.numel), 105.0, cid=c), 500, c, pending(),
                         RULES, rules(stats))
            for c in range(4)
        ]  # fmt: skip
        assert all(r.disputed and r.reason.startswith("disputed: ") for r in honest)
        q.record(round_idx, honest)
    assert all(q.reason(c, 3) is None for c in range(4))
    # ... while one at 100x among them is (log(100/15) = 1.9 > 6 x 0.25), twice: quarantined
    for round_idx in (3, 4):
        r = judge_update(update(torch.randn(SPEC.numel), 700.0, cid=9), 500, 9, pending(),
                         RULES, rules(stats))  # fmt: skip
        assert r.disputed and (r.reason or "").startswith("outlier: reported energy / estimate")
        q.record(round_idx, [r])
    assert (q.reason(9, 5) or "").startswith("quarantined until round 10")


# ---- replay ---------------------------------------------------------------------------
def test_replays_of_own_and_others_updates_are_refused() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50_000, generator=g)
    guard = ReplayGuard(distance=1e-3)
    guard.accept(7, 1, sketch_of(a))
    # free riding: its round-1 update again in round 2, and a hair off in round 3
    assert "identical to the client's own update of round 1" in (
        guard.reason(7, 2, sketch_of(a.clone())) or ""
    )
    nudged = a + 1e-5 * torch.randn(50_000, generator=g)
    assert "own update of round 1" in (guard.reason(7, 3, sketch_of(nudged)) or "")
    # another client's update of the same round
    guard.accept(8, 3, sketch_of(a * 0.5 + 1.0))
    assert "client 8's in this round" in (guard.reason(9, 3, sketch_of(a * 0.5 + 1.0)) or "")
    # an honest next update (independent training noise) and a zero update pass
    assert guard.reason(7, 3, sketch_of(torch.randn(50_000, generator=g))) is None
    assert guard.reason(7, 3, sketch_of(torch.zeros(50_000))) is None


def test_the_sketch_distance_tracks_the_true_one() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(100_000, generator=g)
    for rel in (1e-4, 1e-2, 0.5):
        noise = torch.randn(100_000, generator=g)
        b = a + rel * noise * a.norm() / noise.norm()
        true = float((a - b).norm() / max(a.norm(), b.norm()))
        # count sketch of 512 buckets: ~6% relative error (one sigma); allow 25%
        assert relative_distance(sketch_of(a), sketch_of(b)) == pytest.approx(true, rel=0.25)
    assert np.isclose(relative_distance(sketch_of(a), sketch_of(a.clone())), 0.0)
    # a difference that cancels within each bucket without the random signs (+c and -c
    # in alternate rows of 512): its distance is still seen, 0.5 here
    rows = torch.arange(100_352) // 512
    c = torch.where(rows % 2 == 0, 1.0, -1.0)
    b = torch.randn(100_352, generator=g)
    b2 = b + 0.5 * c * b.norm() / c.norm()
    true = float((b - b2).norm() / max(b.norm(), b2.norm()))
    assert relative_distance(sketch_of(b, 7), sketch_of(b2, 7)) == pytest.approx(true, rel=0.25)


# ---- acknowledgements: the judgement the ledger keeps ----------------------------------
def test_the_norm_bound_is_judged_on_arrival_against_the_last_and_this_rounds_norms() -> None:
    from greenfl.deploy.server.norms import NormBound

    bound = NormBound(10.0)
    # median of [1.0, 1.2, 0.9, 100] is 1.1: 100 > 11 refused, 10 not
    assert "exceeds 10x the round's median 1.1" in (
        bound.verdict(100.0, [1.0, 1.2, 0.9, 100]) or ""
    )
    assert bound.verdict(10.0, [1.0, 1.2, 0.9, 10.0]) is None
    assert bound.verdict(1e9, [1.0, 1e9]) is None  # fewer than 3: no median to judge by
    assert NormBound(None).verdict(1e9, [1.0, 1.0, 1.0, 1e9]) is None  # off
    # the reference: last round's accepted norms and this round's arrived, unrefused ones
    a, b, c = pending(), pending(), pending()
    a.norm, b.norm = 2.0, 3.0
    b.report = judge_update(update(torch.randn(SPEC.numel), 7.0), 500, 5, pending(), RULES)
    bound.last = [1.0]
    assert sorted(bound.reference({1: a, 2: b, 3: c})) == [1.0, 2.0, 3.0]
    assert bound.to_come(a, {1: a, 2: b, 3: c})  # c has not arrived
    assert not bound.to_come(a, {1: a, 2: b})


def test_the_ack_says_what_the_ledger_will() -> None:
    from greenfl.deploy.server.checks import as_rejected
    from greenfl.deploy.server.witness import ack_of

    d = torch.randn(SPEC.numel)
    done = judge_update(update(d, 7.0), 500, 5, pending(), RULES, rules())
    assert ack_of(done).accepted and ack_of(done).reason == ""
    refused = as_rejected(done, "update norm 1e6 exceeds 10x the round's median 1", PHONE, None)
    ack = ack_of(refused)
    assert not ack.accepted and ack.reason.startswith("update norm 1e6 exceeds")
    assert refused.delta is None and refused.measured_energy_j is None
    disputed = judge_update(update(d, 700.0), 500, 5, pending(), RULES, rules())
    ack = ack_of(disputed)  # aggregated, with the dispute as the reason
    assert ack.accepted and ack.reason.startswith("disputed: reported 700 J")
