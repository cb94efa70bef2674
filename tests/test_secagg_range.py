"""Issue 29 item 10: under secure aggregation the server sees only the sum, and refuses a
sum that the survivors' clipped inputs cannot make (greenfl.secagg.protocol.check_sum):
a value beyond k x clip_range, or an L2 norm beyond the survivors' norm bounds. The
protocol in process, then the deployment's server with in-process clients."""

from __future__ import annotations

import dataclasses
import math
import threading

import numpy as np
import pytest
import torch

from greenfl.core.messages import ClientReport
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.client.secagg import SecAggParticipant
from greenfl.deploy.server.secagg import SecAggOptions, SecAggRounds
from greenfl.deploy.server.sessions import Pending
from greenfl.secagg import FixedPoint, RoundParams, SecAggClient, SecAggServer, SumOutOfRange
from greenfl.secagg.graph import default_threshold
from greenfl.secagg.messages import MaskedInput
from greenfl.secagg.protocol import bounded_input

DIM, N = 300, 5


def params(max_norm: float | None = None, clip: float = 1.0) -> RoundParams:
    return RoundParams(
        b"range|r1", DIM, FixedPoint.for_clients(N, clip), default_threshold(N - 1), None, 3,
        max_norm,
    )  # fmt: skip


def aggregate(
    inputs: dict[int, np.ndarray],
    p: RoundParams,
    tamper: dict[int, np.ndarray] | None = None,
    skip_clip: frozenset[int] = frozenset(),
    norm_bounds: dict[int, float] | None = None,
) -> np.ndarray:
    """One aggregation in process. ``tamper[u]``: uint32 words client u adds to its masked
    input (it sends words that are no encoding); ``skip_clip``: clients that encode with a
    4x wider range and no norm clip, as a client that ignores the round's bounds would."""
    server = SecAggServer(p)
    clients = {u: SecAggClient(u) for u in inputs}
    books = server.key_books([c.advertise() for c in clients.values()])
    bundles = server.route_shares([clients[u].share_keys(b) for u, b in books.items()])
    masked = []
    for u, b in bundles.items():
        if u in skip_clip:
            wide = FixedPoint(4 * p.encoding.clip_range, p.encoding.frac_bits, 1)
            clients[u].params = dataclasses.replace(p, encoding=wide, max_norm=None)
        m = clients[u].masked_input(b, inputs[u])
        if tamper and u in tamper:
            words = np.frombuffer(m.data, "<u4") + tamper[u].astype(np.uint32)
            m = MaskedInput(u, words.astype("<u4").tobytes())
        masked.append(m)
    requests = server.unmask_requests(masked)
    responses = [clients[u].unmask(r) for u, r in requests.items()]
    return server.aggregate(responses, norm_bounds).total


def test_the_sum_at_the_edge_of_the_range_passes() -> None:
    # Five clients at +clip_range on every value: the sum is 5.0 exactly, the limit.
    p = params()
    assert p.encoding.max_abs_sum(N) == 5.0
    total = aggregate({u: np.ones(DIM) for u in range(N)}, p)
    assert np.array_equal(total, np.full(DIM, 5.0))
    # Beyond the range, an honest client's encoding clips: 7.0 counts as 1.0.
    total = aggregate({u: np.full(DIM, 7.0 if u == 0 else -0.5) for u in range(N)}, p)
    np.testing.assert_allclose(total, 1.0 - 4 * 0.5, atol=p.encoding.max_sum_error(N))


def test_a_client_that_does_not_clip_is_caught_in_the_sum() -> None:
    p = params()
    inputs = {u: np.full(DIM, 0.5) for u in range(N)}
    inputs[2] = np.full(DIM, 0.5)
    inputs[2][:3] = 4.0  # a 4x "boost" on three values: 4 + 4 x 0.5 = 6 > 5
    with pytest.raises(SumOutOfRange, match=r"3 of 300 values beyond 5 x clip_range = 5 "):
        aggregate(inputs, p, skip_clip=frozenset({2}))
    # The limit of the check: the same boost where the others left room passes (2.0 + 4 x
    # -0.5 = 0): the sum is bounded, not any one client's part of it.
    inputs = {u: np.full(DIM, -0.5) for u in range(N)}
    inputs[2] = np.full(DIM, 2.0)
    total = aggregate(inputs, p, skip_clip=frozenset({2}))
    np.testing.assert_allclose(total, 0.0, atol=p.encoding.max_sum_error(N))


def test_words_that_are_no_encoding_are_caught() -> None:
    # Random words added to one masked input move each value of the sum uniformly over the
    # ring; the honest range is 2 x 5 x 2^28 of 2^32 words (62.5%), so all 300 values
    # staying in it has probability 0.625^300 ~ 1e-61.
    p = params()
    assert p.encoding.frac_bits == 28  # floor(log2((2^31 - 1) / 5))
    rng = np.random.default_rng(0)
    inputs = {u: rng.uniform(-1, 1, DIM) for u in range(N)}
    junk = rng.integers(0, 2**32, DIM, dtype=np.uint64)
    with pytest.raises(SumOutOfRange, match="some client did not clip"):
        aggregate(inputs, p, tamper={1: junk})
    # One word of 2^31 (the sign bit): that value of the sum wraps far out of range.
    one = np.zeros(DIM, np.uint64)
    one[7] = 2**31
    with pytest.raises(SumOutOfRange, match="1 of 300 values"):
        aggregate(inputs, p, tamper={1: one})


def test_the_norm_bound_clips_honest_clients_and_refuses_a_large_sum() -> None:
    p = params(max_norm=1.0)
    rng = np.random.default_rng(1)
    inputs = {u: rng.uniform(-1, 1, DIM) for u in range(N)}  # norms ~ 10
    clipped = {u: bounded_input(x, p) for u, x in inputs.items()}
    assert all(math.isclose(np.linalg.norm(c), 1.0, rel_tol=1e-12) for c in clipped.values())
    total = aggregate(inputs, p)
    expected = np.sum(list(clipped.values()), axis=0)
    np.testing.assert_allclose(total, expected, atol=p.encoding.max_sum_error(N))
    # A client that skips the norm clip: 0.9 on every value (within clip_range), norm
    # 0.9 x sqrt(300) = 15.6, while the others add at most 4: the sum's norm is >= 11.6,
    # beyond 5 x 1.0 + the rounding (5 x 2^-29 x sqrt(300) ~ 1.6e-7).
    inputs[3] = np.full(DIM, 0.9)
    with pytest.raises(SumOutOfRange, match=r"beyond the 5(\.0+)? their norm bounds allow"):
        aggregate(inputs, p, skip_clip=frozenset({3}))


def test_per_client_norm_bounds_from_the_server() -> None:
    # The server's own bounds (a deployment: max_norm x w / W per client), clients not told.
    p = params()
    rng = np.random.default_rng(2)
    unit = {u: (v := rng.normal(size=DIM)) / np.linalg.norm(v) for u in range(N)}
    bounds = {u: 0.5 for u in range(N)}
    aggregate({u: 0.3 * v for u, v in unit.items()}, p, norm_bounds=bounds)  # passes
    # One input of norm 5 (each value ~0.29, within clip_range): the sum's norm is at least
    # 5 - 4 x 0.3 = 3.8, beyond 5 x 0.5 = 2.5.
    inputs = {u: 0.3 * v for u, v in unit.items()}
    inputs[4] = np.full(DIM, 5.0 / math.sqrt(DIM))
    with pytest.raises(SumOutOfRange, match="L2 norm"):
        aggregate(inputs, p, norm_bounds=bounds)


class _Boosting(SecAggParticipant):
    """A deployed client that sends its masked input plus 2^31 on one word."""

    def _answer(self, task: pb.Task, msg: pb.SecAggMessage) -> None:
        super()._answer(task, msg)
        if task.secagg.stage == pb.SecAggStep.MASKED_INPUT:
            words = np.frombuffer(msg.masked, "<u4").copy()
            words[0] = (int(words[0]) + 2**31) % 2**32
            msg.masked = words.tobytes()


class _InProcess(SecAggRounds):
    """The deployment's server with its clients answering in process, not over gRPC."""

    def __init__(self, opts: SecAggOptions, clients: dict[int, SecAggParticipant]) -> None:
        super().__init__(opts, threading.Condition(), {}, {})
        self.clients = clients

    def _step(
        self, round_idx: int, stage: int, steps: dict[int, pb.SecAggStep]
    ) -> dict[int, pb.SecAggMessage]:
        out = {}
        for c, step in steps.items():
            task = pb.Task(kind=pb.Task.SECAGG, round=round_idx, task_id=f"t{c}", secagg=step)
            msg = pb.SecAggMessage(client_id=c, round=round_idx, task_id=f"t{c}", stage=stage)
            self.clients[c]._answer(task, msg)
            out[c] = msg
        return out


def _deployed_round(
    deltas: dict[int, torch.Tensor], opts: SecAggOptions, boosting: frozenset[int] = frozenset()
) -> dict[int, ClientReport]:
    clients: dict[int, SecAggParticipant] = {
        c: (_Boosting if c in boosting else SecAggParticipant)(c) for c in deltas
    }
    pending, reports = {}, {}
    for c, d in deltas.items():
        keys = clients[c].keys_for(pb.Task(task_id=f"t{c}"), d)
        pending[c] = Pending(f"t{c}", f"s{c}", 1, 0, 100, secagg_keys=(keys.c_pk, keys.s_pk))
        reports[c] = ClientReport(c, "completed", None, None, 100, 1e9, 0.5, 10, 10)
    return _InProcess(opts, clients).aggregate(1, reports, pending, DIM, None)


def test_a_deployed_round_with_a_malicious_sum_is_refused_whole() -> None:
    deltas = {c: torch.full((DIM,), 0.01 * (c + 1)) for c in range(4)}
    out = _deployed_round(deltas, SecAggOptions())
    # Equal weights (100 samples each): every survivor carries the mean, 0.025.
    assert all(r.status == "completed" for r in out.values())
    mean = out[0].delta
    assert mean is not None
    torch.testing.assert_close(mean, torch.full((DIM,), 0.025), atol=1e-6, rtol=0)
    out = _deployed_round(deltas, SecAggOptions(), boosting=frozenset({2}))
    assert all(r.status == "failed" and r.delta is None for r in out.values())
    assert all("refused the round" in (r.reason or "") for r in out.values())


def test_a_deployed_round_checks_the_norm_of_the_weighted_sum() -> None:
    # max_norm 1: equal weights (w / W = 1), so the sum's norm must be <= 4 x 1.
    small = {c: torch.full((DIM,), 0.02) for c in range(4)}  # norm 0.35 each
    out = _deployed_round(small, SecAggOptions(max_norm=1.0))
    assert all(r.status == "completed" for r in out.values())
    large = dict(small)
    large[1] = torch.full((DIM,), 0.5)  # norm 8.7, each value within clip_range 4
    out = _deployed_round(large, SecAggOptions(max_norm=1.0))
    assert all(r.status == "failed" for r in out.values())
    assert "L2 norm" in (out[0].reason or "")
    # The same round without the bound aggregates it (the check is what refused it).
    out = _deployed_round(large, SecAggOptions())
    assert all(r.status == "completed" for r in out.values())
