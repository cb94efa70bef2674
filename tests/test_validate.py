"""Update validation: every way an update can be wrong gives UpdateRejected with a reason."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from greenfl.clients.transport import Completion, Task, Transport
from greenfl.clients.validate import (
    PROTOCOL_VERSION,
    ValidatingTransport,
    WireTensor,
    check_delta,
    check_message_size,
    check_protocol,
    check_report_fields,
    flat_to_tensors,
    tensors_to_flat,
)
from greenfl.core.errors import UpdateRejected
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.core.params import ParamSpec

SPEC = ParamSpec.of(nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1)))  # 8 + 3 = 11 params


def _tensors() -> list[WireTensor]:
    return flat_to_tensors(torch.arange(SPEC.numel, dtype=torch.float32), SPEC)


def test_named_tensors_round_trip() -> None:
    ts = _tensors()
    assert [t.name for t in ts] == ["0.weight", "0.bias", "1.weight", "1.bias"]
    assert [t.shape for t in ts] == [(2, 3), (2,), (1, 2), (1,)]
    assert torch.equal(tensors_to_flat(ts, SPEC), torch.arange(11, dtype=torch.float32))


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda ts: ts[:-1], "missing ['1.bias']"),
        (lambda ts: [*ts, WireTensor("extra", (1,), "float32", b"\0" * 4)], "unexpected"),
        (lambda ts: [ts[1], ts[0], *ts[2:]], "order"),
        (lambda ts: [WireTensor(ts[0].name, (3, 2), "float32", ts[0].data), *ts[1:]], "shape"),
        (lambda ts: [WireTensor(ts[0].name, (2, 3), "float64", ts[0].data), *ts[1:]], "dtype"),
        (lambda ts: [WireTensor(ts[0].name, (2, 3), "float32", b"\0" * 20), *ts[1:]], "bytes"),
    ],
)
def test_malformed_tensors_are_rejected(mutate, fragment: str) -> None:  # noqa: ANN001
    with pytest.raises(UpdateRejected, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        tensors_to_flat(mutate(_tensors()), SPEC)


def test_delta_checks() -> None:
    ok = torch.full((11,), 0.5)
    assert check_delta(ok, 11, None) == pytest.approx(0.5 * math.sqrt(11))
    with pytest.raises(UpdateRejected, match="non-finite"):
        check_delta(torch.tensor([0.0] * 10 + [float("nan")]), 11, None)
    with pytest.raises(UpdateRejected, match="non-finite"):
        check_delta(torch.tensor([0.0] * 10 + [float("inf")]), 11, None)
    with pytest.raises(UpdateRejected, match="10 elements"):
        check_delta(torch.zeros(10), 11, None)
    with pytest.raises(UpdateRejected, match="max_update_norm"):
        check_delta(ok, 11, 1.0)  # norm 1.658 > 1
    assert check_delta(ok, 11, 1.7) > 0
    with pytest.raises(UpdateRejected, match="float32"):
        check_delta(ok.double(), 11, None)


def test_envelope_checks() -> None:
    check_protocol(PROTOCOL_VERSION)
    with pytest.raises(UpdateRejected, match="protocol version 99"):
        check_protocol(99)
    check_message_size(100, 100)
    with pytest.raises(UpdateRejected, match="101 bytes exceeds the limit of 100"):
        check_message_size(101, 100)
    check_report_fields(5, 5, float("nan"), 0.0)
    with pytest.raises(UpdateRejected, match="num_samples 500"):
        check_report_fields(500, 5, 0.1, 1.0)
    with pytest.raises(UpdateRejected, match="flops"):
        check_report_fields(5, 5, 0.1, float("nan"))
    with pytest.raises(UpdateRejected, match="infinite"):
        check_report_fields(5, 5, float("inf"), 1.0)


class _Fixed(Transport):
    """A transport whose clients return given deltas (the i-th task dispatched, the i-th)."""

    def __init__(self, deltas: list[torch.Tensor]) -> None:
        self.deltas = deltas
        self.tasks: list[Task] = []

    def dispatch(self, task: Task) -> None:
        self.tasks.append(task)

    def collect(self, until_s=None, progress=None) -> list[Completion]:  # noqa: ANN001
        done = [
            Completion(t, ClientReport(t.client_id, "completed", None, d, 10, 1.0, 0.1, 44, 44),
                       t.start_s)  # fmt: skip
            for t, d in zip(self.tasks, self.deltas, strict=True)
        ]
        self.tasks = []
        return done


def test_validating_transport_rejects_bad_reports_in_process() -> None:
    bad = torch.zeros(11)
    bad[3] = np.nan
    t = ValidatingTransport(_Fixed([torch.zeros(11), bad, torch.full((11,), 9.0)]), 11, 10.0)
    reports = t.fit(1, [0, 1, 2], torch.zeros(11), FitInstructions(1, 8, 0.1))
    assert [r.status for r in reports] == ["completed", "rejected", "rejected"]
    assert "non-finite" in (reports[1].reason or "") and reports[1].delta is None
    assert "max_update_norm" in (reports[2].reason or "")


def test_a_nan_client_is_rejected_in_simulation_and_the_model_stays_finite(
    tiny_config,  # noqa: ANN001
) -> None:
    from greenfl.factories import build_loop

    loop = build_loop(tiny_config.replace(**{"train.rounds": 2}))
    real_collect = loop.transport.inner.collect

    def poisoned(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        batch = real_collect(*args, **kw)
        c = batch[0]
        nan = torch.full_like(c.report.delta, float("nan"))
        return [Completion(c.task, c.report._replace(delta=nan), c.finish_s), *batch[1:]]

    loop.transport.inner.collect = poisoned
    loop.run()
    rows = loop.ledger.conn.execute(
        "SELECT status, reason FROM client_rounds WHERE status = 'rejected'"
    ).fetchall()
    assert len(rows) == 2 and all("non-finite" in reason for _, reason in rows)
    assert bool(torch.isfinite(loop.state.global_params).all())
    assert all(math.isfinite(r.loss) for r in loop.history)  # a NaN model has NaN loss
