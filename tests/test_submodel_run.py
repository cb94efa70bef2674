"""Sub-models in a simulated run (issue 31, item 1): each client trains the width it is
given, its FLOPs and bytes are those of its slice (hand counts for the digits MLP
64-[64]-10), the ledger records its width, the server averages overlapping slices, and
the config refuses what is not supported yet."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import greenfl
from greenfl.clients.transport import Completion, Task, Transport, TransportWrapper
from greenfl.clients.validate import ValidatingTransport
from greenfl.config import RunConfig
from greenfl.config.run import build_config
from greenfl.core.errors import ConfigError
from greenfl.core.messages import ClientReport, FitInstructions
from greenfl.factories import build_loop
from greenfl.models.evaluate import evaluate
from greenfl.strategy.fedavg import FedAvg
from greenfl.submodel.aggregate import aggregate_slices
from greenfl.submodel.plan import build_submodel, slice_indices
from greenfl.submodel.policy import capability_index, carbon_index, fixed_index, fjord_index
from tests.ledger_sql import rows

WIDTHS = [1.0, 0.5, 0.25]
# The MLP 64-[64]-10 at each width keeps h = 64, 32, 16 hidden units.
HIDDEN = {1.0: 64, 0.5: 32, 0.25: 16}


def params_at(h: int) -> int:
    """Hand count: 64 x h weights + h biases, then h x 10 weights + 10 biases."""
    return 64 * h + h + h * 10 + 10


def train_flops_per_sample_at(h: int) -> int:
    """Hand count: a forward pass is 2 x 64 x h + 2 x h x 10 (a multiply and an add per
    weight); training is 3 forward passes but the first layer's input gradient, which
    nobody needs: 3 x (128 h + 20 h) - 128 h = 316 h."""
    return 316 * h


def sub_config(tiny_config: RunConfig, **sets: object) -> RunConfig:
    base = {
        "train.clients_per_round": 6,
        "submodel.name": "heterofl",
        "submodel.widths": WIDTHS,
        "submodel.choice": "fixed",
    }
    return tiny_config.replace(**{**base, **sets})


def test_hand_counts() -> None:
    assert [params_at(HIDDEN[w]) for w in WIDTHS] == [4810, 2410, 1210]
    assert [train_flops_per_sample_at(HIDDEN[w]) for w in WIDTHS] == [20224, 10112, 5056]


def test_each_client_trains_its_width_and_is_counted_at_it(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    cfg = sub_config(tiny_config)
    greenfl.run(cfg, tmp_path / "sub")
    got = rows(
        tmp_path / "sub",
        "SELECT client_id, width, flops, num_samples, bytes_down, bytes_up, status "
        "FROM client_rounds ORDER BY round, client_id",
    )
    assert len(got) == 3 * 6
    seen = set()
    for cid, width, flops, samples, down, up, status in got:
        assert status == "completed"
        expected = WIDTHS[cid % 3]  # the fixed split, widest first
        assert width == pytest.approx(expected)
        h = HIDDEN[expected]
        # one epoch, no step cap: every sample once
        assert flops == pytest.approx(train_flops_per_sample_at(h) * samples, rel=1e-12)
        assert down == 4 * params_at(h)
        assert up == 4 * params_at(h)  # identity codec: the float32 delta of the slice
        seen.add(expected)
    assert seen == set(WIDTHS)
    summary = json.loads((tmp_path / "sub" / "summary.json").read_text())
    assert summary["submodel"] == {"name": "heterofl"}


def test_narrow_widths_cut_compute_energy(tiny_config: RunConfig, tmp_path: Path) -> None:
    greenfl.run(sub_config(tiny_config), tmp_path / "sub")
    greenfl.run(tiny_config.replace(**{"train.clients_per_round": 6}), tmp_path / "full")
    sql = "SELECT round, client_id, width, energy_compute_j FROM client_rounds ORDER BY 1, 2"
    sub, full = rows(tmp_path / "sub", sql), rows(tmp_path / "full", sql)
    # the same cohorts (choosing fixed widths draws nothing from the selection's stream)
    assert [r[:2] for r in sub] == [r[:2] for r in full]
    assert all(r[2] == 1.0 for r in full)  # a run without sub-models is full width
    for (_, _, width, sub_j), (_, _, _, full_j) in zip(sub, full, strict=True):
        # compute energy is counted FLOPs at the device's rate: the MLP's FLOPs scale by h
        assert sub_j == pytest.approx(full_j * HIDDEN[width] / 64, rel=1e-9)
    assert sum(r[3] for r in sub) < 0.75 * sum(r[3] for r in full)
    summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    assert summary["submodel"] == {"name": "none"}


class Recorder(TransportWrapper):
    """Keeps every completion that passes through."""

    def __init__(self, inner: Transport) -> None:
        super().__init__(inner)
        self.seen: list[Completion] = []

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        self.seen.extend(batch)
        return batch


def test_the_global_model_averages_overlapping_slices(tiny_config: RunConfig) -> None:
    loop = build_loop(sub_config(tiny_config))
    validating = loop.transport
    assert isinstance(validating, ValidatingTransport)
    recorder = Recorder(validating.inner)  # type: ignore[arg-type]
    validating.inner = recorder
    loop.run_round()  # round 1
    before = loop.state.global_params.clone()
    recorder.seen.clear()
    loop.run_round()  # round 2, aggregated from ``before``
    reports = [c.report for c in recorder.seen]
    assert len(reports) == 6 and all(r.status == "completed" for r in reports)
    model = loop.parts.model
    pieces = []
    for c in recorder.seen:
        width = c.task.instructions.width
        assert width == WIDTHS[c.task.client_id % 3]
        idx = slice_indices(model, width)
        assert c.report.delta is not None and c.report.delta.numel() == idx.size
        pieces.append((idx, c.report.delta, float(c.report.num_samples)))
    expected = aggregate_slices(before, pieces)
    assert torch.allclose(loop.state.global_params, expected, atol=1e-7)
    # and by hand at one coordinate held by every width, one held by the full width only:
    # the first weight of hidden unit 0 (all three), of unit 40 (width 1 only)
    for j, holders in ((0, [1.0, 0.5, 0.25]), (40 * 64, [1.0])):
        ds = [(float(r.num_samples), float(r.delta[np.searchsorted(i, j)]))
              for (i, _, _), r in zip(pieces, reports, strict=True)
              if WIDTHS[r.client_id % 3] in holders]  # fmt: skip
        mean = sum(w * d for w, d in ds) / sum(w for w, _ in ds)
        assert float(loop.state.global_params[j]) == pytest.approx(
            float(before[j]) + mean, abs=1e-6
        )
    # each narrower width's slice of the new global model, evaluated on the test data
    record = loop.history[-1]
    by_width = record.metrics["submodel_width_accuracy"]
    assert sorted(by_width) == [0.25, 0.5]
    test_data = loop.parts.dataset.test_data()
    for width, accuracy in by_width.items():
        sub = build_submodel(model, width)
        params = loop.state.global_params[torch.from_numpy(slice_indices(model, width))]
        assert accuracy == pytest.approx(evaluate(sub, params, test_data)[0], abs=1e-9)
    loop.ledger.close()


def test_mixed_widths_on_the_vectorised_trainer(tiny_config: RunConfig, tmp_path: Path) -> None:
    """Each width's group trains as its own batch, and agrees with the sequential trainer."""
    out = {}
    for trainer in ("vectorised", "sequential"):
        cfg = sub_config(tiny_config, **{"engine.trainer": trainer})
        out[trainer] = greenfl.run(cfg, tmp_path / trainer).history[-1].accuracy
    assert out["vectorised"] == pytest.approx(out["sequential"], abs=0.02)


def test_fjord_draws_widths_up_to_the_choice(tiny_config: RunConfig, tmp_path: Path) -> None:
    cfg = sub_config(tiny_config, **{"submodel.name": "fjord", "train.rounds": 4})
    greenfl.run(cfg, tmp_path / "a")
    greenfl.run(cfg, tmp_path / "b")
    sql = "SELECT client_id, width FROM client_rounds ORDER BY round, client_id"
    a, b = rows(tmp_path / "a", sql), rows(tmp_path / "b", sql)
    assert a == b  # seeded
    # no client wider than its fixed split gives it
    assert all(w <= WIDTHS[cid % 3] for cid, w in a)
    assert len({w for _, w in a}) > 1


def test_validation_wants_the_slice_the_client_was_asked_for() -> None:
    full, half = 4810, 2410
    asked = FitInstructions(1, 16, 0.1, width=0.5)

    class Fixed(Transport):
        def __init__(self, numel: int, width: float) -> None:
            self.numel, self.width = numel, width

        def collect(self, until_s=None, progress=None):  # type: ignore[no-untyped-def]
            report = ClientReport(3, "completed", None, torch.zeros(self.numel), 10, 1.0,
                                  0.0, 4 * self.numel, 4 * self.numel)  # fmt: skip
            task = Task(1, 3, torch.zeros(full), asked.with_(width=self.width))
            return [Completion(task, report, 0.0)]

    def check(numel: int, width: float) -> ClientReport:
        t = ValidatingTransport(Fixed(numel, width), full, None, {1.0: full, 0.5: half})
        return t.collect()[0].report

    assert check(half, 0.5).status == "completed"
    assert check(full, 1.0).status == "completed"
    wrong = check(full, 0.5)
    assert wrong.status == "rejected" and "width-0.5 slice" in (wrong.reason or "")
    assert check(half, 1.0).status == "rejected"  # a full-width client sent a slice
    unknown = check(half, 0.3)
    assert unknown.status == "rejected" and "does not train" in (unknown.reason or "")


def test_the_choice_rules_by_hand() -> None:
    assert fixed_index(np.array([0, 1, 2, 3, 7]), 3).tolist() == [0, 1, 2, 0, 1]
    # durations (widths x clients): client 0 fits all, 1 fits width 2 only, 2 none
    times = np.array([[5.0, 30.0, 50.0], [3.0, 20.0, 40.0], [1.0, 9.0, 20.0]])
    assert capability_index(times, 10.0).tolist() == [0, 2, 2]
    # gCO2e (widths x clients): the cleanest half (ceil(0.5 x 3) = 2: clients 2 and 0)
    # keeps full width; client 1 takes its lowest, width index 1
    carbon = np.array([[2.0, 9.0, 1.0], [1.5, 4.0, 0.8], [1.6, 5.0, 0.7]])
    assert carbon_index(carbon, 0.5).tolist() == [0, 1, 0]
    assert carbon_index(carbon, 0.0).tolist() == [1, 1, 2]
    drawn = fjord_index(np.array([0, 1, 2] * 200), 3, np.random.default_rng(0))
    assert drawn[2::3].tolist() == [2] * 200  # the narrowest cap leaves one choice
    assert set(drawn[0::3].tolist()) == {0, 1, 2}
    assert set(drawn[1::3].tolist()) == {1, 2}


@pytest.mark.parametrize(
    ("sets", "msg"),
    [
        ({"submodel.widths": [1.0, 1.0]}, "must be distinct"),
        ({"submodel.widths": [1.0, 0.0]}, "must be in (0, 1]"),
        ({"submodel.widths": [1.5]}, "must be in (0, 1]"),
        ({"strategy.name": "fedprox"}, "strategy.name must be 'fedavg'"),
        ({"compression.name": "topk"}, "does not support compression.name = 'topk'"),
        ({"engine.backend": "ray"}, "does not support engine.backend = 'ray'"),
        ({"secagg.enabled": True}, "secagg.enabled"),
        ({"submodel.name": "wide"}, "submodel.name"),
        ({"submodel.choice": "random"}, "submodel.choice"),
    ],
)
def test_config_errors(tiny_config: RunConfig, sets: dict, msg: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(msg)):
        sub_config(tiny_config, **sets)


def test_a_strategy_object_is_refused(tiny_config: RunConfig) -> None:
    with pytest.raises(ConfigError, match="aggregates with HeteroFL"):
        build_loop(sub_config(tiny_config), strategy=FedAvg())


def test_widths_are_kept_widest_first_and_default_is_off() -> None:
    cfg = build_config({"submodel": {"name": "heterofl", "widths": [0.25, 1, 0.5]}})
    assert cfg.submodel.widths == [1.0, 0.5, 0.25]
    assert build_config({}).submodel.name == "none"


def test_capability_and_carbon_choices_in_a_run(tiny_config: RunConfig, tmp_path: Path) -> None:
    # capability: a client given a width wider than the narrowest fits the deadline at it
    # (its charged download, training and upload); the narrowest is the fallback
    deadline_s = 3.0
    cfg = sub_config(tiny_config, **{"submodel.choice": "capability",
                                     "fleet.deadline_s": deadline_s})  # fmt: skip
    greenfl.run(cfg, tmp_path / "cap")
    got = rows(tmp_path / "cap", "SELECT width, compute_s + comm_s, status FROM client_rounds")
    assert len(got) == 18
    for width, total_s, status in got:
        if width > 0.25:
            assert total_s <= deadline_s * (1 + 1e-9) and status == "completed"
    # carbon: at least half of each cohort (the cleanest) keeps full width
    cfg = sub_config(tiny_config, **{"submodel.choice": "carbon", "submodel.full_share": 0.5})
    greenfl.run(cfg, tmp_path / "carbon")
    per_round = rows(
        tmp_path / "carbon",
        "SELECT round, SUM(width = 1.0), COUNT(*) FROM client_rounds GROUP BY round",
    )
    assert all(full >= 3 and n == 6 for _, full, n in per_round)
