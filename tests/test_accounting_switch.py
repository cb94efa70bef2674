"""engine.accounting = false: the same training without the footprint and the ledger rows;
and the cheap paths the accounting relies on (FLOP counting, columnar rows)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import greenfl
from greenfl.config import RunConfig
from greenfl.core.errors import ConfigError
from greenfl.ledger import read_ledger
from greenfl.ledger.rows import ColumnRows
from greenfl.models.builtin import cnn, mlp
from greenfl.models.flops import training_flops_per_sample


def test_accounting_off_trains_the_same_and_writes_no_client_rows(
    tiny_config: RunConfig, tmp_path: Path
) -> None:
    on = greenfl.run(tiny_config, tmp_path / "on")
    off = greenfl.run(tiny_config.replace(**{"engine.accounting": False}), tmp_path / "off")
    assert [r.accuracy for r in off.history] == [r.accuracy for r in on.history]
    assert off.summary["rounds_completed"] == 3 == on.summary["rounds_completed"]
    assert off.summary["final_accuracy"] == on.summary["final_accuracy"]
    assert off.summary["energy_j"]["total"] is None and off.summary["carbon_g"]["total"] is None
    assert on.summary["energy_j"]["total"] > 0
    led = read_ledger(tmp_path / "off")
    assert led.client_rounds == [] and led.rounds == []
    assert len(read_ledger(tmp_path / "on").client_rounds) == 3 * 5


def test_accounting_off_refuses_what_needs_the_footprint(tiny_config: RunConfig) -> None:
    with pytest.raises(ConfigError, match="fleet.deadline_s"):
        tiny_config.replace(**{"engine.accounting": False, "fleet.deadline_s": 5.0})
    with pytest.raises(ConfigError, match="engine.trainer"):
        tiny_config.replace(**{"engine.trainer": "fast"})


@pytest.mark.parametrize(
    ("build", "shape"),
    [(lambda: mlp((64,), 10, [64]), (64,)), (lambda: cnn((1, 28, 28), 10, []), (1, 28, 28))],
)
def test_flop_count_equals_torch_flop_counter(build, shape) -> None:  # noqa: ANN001
    model = build()
    counter = FlopCounterMode(display=False)
    with counter:
        x, y = torch.randn(16, *shape), torch.randint(0, 10, (16,))
        nn.functional.cross_entropy(model(x), y).backward()
    assert training_flops_per_sample(model, shape, 10, 16) == counter.get_total_flops() / 16


def test_column_rows_read_as_dicts_and_tuples() -> None:
    rows = ColumnRows({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    assert len(rows) == 3 and rows[1] == {"a": 2, "b": "y"} and rows[-1]["b"] == "z"
    assert list(rows) == [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}, {"a": 3, "b": "z"}]
    assert rows.as_tuples(["b", "a"]) == [("x", 1), ("y", 2), ("z", 3)]
    with pytest.raises(IndexError):
        rows[3]
