"""Property test of what a deployed client can send: random values in every field of an
Update (and a Join), against the server's judging. Nothing raises; a completed report is a
valid update whose footprint lies within the plausibility bounds; every other report
carries none of the client's own figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression import CODECS
from greenfl.config import CompressionConfig
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.checks import UpdateRules, judge_update
from greenfl.deploy.server.plausible import RoundModel
from greenfl.deploy.server.sessions import Pending, Refusal, admit
from greenfl.deploy.wire import params_to_pb
from greenfl.factories import codec_for
from greenfl.fleet.catalog import load_fleet
from greenfl.fleet.population import Population

MODEL = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
SPEC = ParamSpec.of(MODEL)
ROUND = RoundModel(expected_flops=1e6, flops_per_s=1e8, power_w=2.0, timeout_s=30.0, factor=10)
RULES = UpdateRules(codec_for(CompressionConfig()), SPEC, 1_000_000, max_update_norm=None)
Q8_RULES = UpdateRules(
    codec_for(CompressionConfig(name="q8")), SPEC, 1_000_000, max_update_norm=100.0
)

floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-300, 1e12, 1e30, 1e6, 0.01, 0.1, 2.0, 20.0]),
)
ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([0, 1, 10, -1, 10**9]))


def pending() -> Pending:
    return Pending("t1", "s1", 3, 1000, 10, delivered_at=None, model=ROUND)


def honest_tensors() -> pb.TensorList:
    return pb.TensorList(tensors=params_to_pb(torch.zeros(SPEC.numel), SPEC))


@st.composite
def updates(draw: st.DrawFn) -> pb.Update:
    up = pb.Update(
        protocol_version=draw(st.sampled_from([PROTOCOL_VERSION, 0, 2**32 - 1])),
        session_id=draw(st.text(max_size=8)),
        client_id=draw(st.sampled_from([5, 5, 5, 0, -1, 2**62])),
        round=draw(st.sampled_from([3, 3, 3, 2, -(2**63)])),
        task_id=draw(st.text(max_size=8)),
        num_samples=draw(st.one_of(st.just(10), ints)),
        loss=draw(floats),
        error=draw(st.sampled_from(["", "", "", "boom\x00\xff" * 50])),
    )
    kind = draw(st.sampled_from(["honest", "garbage tensors", "encoded", "none"]))
    if kind == "honest":
        tl = honest_tensors()
        if draw(st.booleans()):
            i = draw(st.integers(0, len(tl.tensors) - 1))
            tl.tensors[i].data = draw(st.binary(max_size=64))
        if draw(st.booleans()):
            tl.tensors[0].shape.extend(draw(st.lists(ints, max_size=3)))
        if draw(st.booleans()):
            tl.tensors[0].dtype = draw(st.sampled_from(["float64", "", "int8", "float32"]))
        up.tensors.CopyFrom(tl)
    elif kind == "garbage tensors":
        up.tensors.tensors.add(name=draw(st.text(max_size=5)), data=draw(st.binary(max_size=80)))
    elif kind == "encoded":
        up.encoded.CopyFrom(
            pb.EncodedUpdate(
                codec=draw(st.sampled_from(list(CODECS))),
                num_elements=draw(ints),
                payload=draw(st.binary(max_size=200)),
            )
        )
    fp = up.footprint
    fp.flops = draw(floats)
    fp.compute_s = draw(floats)
    if draw(st.booleans()):
        fp.energy_j = draw(floats)
    fp.estimated = draw(st.booleans())
    return up


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates(), st.integers(0, 2_000_000), st.sampled_from([RULES, Q8_RULES]))
def test_no_update_breaks_the_judge(up: pb.Update, size: int, rules: UpdateRules) -> None:
    report = judge_update(up, size, 5, pending(), rules)
    assert report.status in ("completed", "rejected", "failed")
    if report.status == "completed":
        assert report.delta is not None and torch.isfinite(report.delta).all()
        assert report.num_samples == 10
        assert ROUND.expected_flops / 10 <= report.flops <= ROUND.expected_flops * 10
        s = report.measured_compute_s
        assert s is None or (math.isfinite(s) and s <= ROUND.timeout_s)
        j = report.measured_energy_j
        assert j is None or (math.isfinite(j) and j > 0)
    else:
        assert report.delta is None
        # A refused update keeps the server's modelled time, held to the task's wall time.
        s = report.measured_compute_s
        if report.status == "rejected":
            assert s == min(ROUND.modelled_compute_s, ROUND.timeout_s)
        else:
            assert s is None
        assert report.measured_energy_j is None
        assert report.flops in (0.0, ROUND.expected_flops)
        assert report.reason


def test_an_honest_update_is_completed() -> None:
    """The property above is not vacuous: an honest update does pass."""
    up = pb.Update(
        protocol_version=PROTOCOL_VERSION, client_id=5, round=3, num_samples=10, loss=0.5
    )
    up.tensors.CopyFrom(honest_tensors())
    up.footprint.flops = 1.2e6
    up.footprint.compute_s = 0.02
    up.footprint.energy_j = 0.03
    report = judge_update(up, 500, 5, pending(), RULES)
    assert report.status == "completed", report.reason
    assert report.measured_energy_j == pytest.approx(0.03)


POP = Population.assign(load_fleet(), np.full(8, 10), seed=0)


@settings(max_examples=300, deadline=None)
@given(
    st.integers(0, 2**32 - 1), st.text(max_size=80), ints, st.text(max_size=20), ints,
)  # fmt: skip
def test_no_join_breaks_admission(
    version: int, token: str, cid: int, device: str, samples: int
) -> None:
    req = pb.JoinRequest(
        protocol_version=version, token=token, client_id=cid, device=device, num_samples=samples
    )
    try:
        got_device, local_n = admit(req, POP, "s3cret", 1000, True)
    except Refusal as r:
        assert r.message and r.why
        return
    # Admitted only with the one token that names this client.
    from greenfl.deploy.security import client_token

    assert token == client_token("s3cret", cid) and 0 <= cid < 8 and 0 <= local_n <= 1000
    assert got_device in {d.name for d in POP.fleet.devices}
