"""Mixed precision as an execution target (issue 31, item 2): a device's target declares
bf16 / fp16 rates, ``train.precision`` picks them (fp32 where a device declares none),
training runs under torch.autocast, the same FLOPs are charged at the precision's
throughput and power (hand counts for the digits MLP 64-[64]-10), and the ledger says what
each client ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import greenfl
from greenfl.accounting.entries import EntryTable, FootprintChoices
from greenfl.accounting.targets import TargetTable
from greenfl.clients.precision import INIT_SCALE, LossScales, autocast, compute_dtype
from greenfl.clients.trainer import SequentialTrainer, TrainResult, train_one
from greenfl.clients.vectorised import VectorisedTrainer
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import ConfigError, FleetError
from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat
from greenfl.data.base import FederatedDataset
from greenfl.factories import build_loop, build_model_for, dataset_for
from greenfl.fleet import load_fleet
from greenfl.fleet.catalog import parse_fleet
from greenfl.fleet.profiles import ExecutionTarget, PrecisionTarget
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS
from tests.ledger_sql import rows
from tests.tolerance import SAME_LOSS_REL, assert_close_to_scale, relative_error

# The MLP 64-[64]-10: training FLOPs per sample 316 x 64 (tests/test_submodel_run.py's
# hand count: 3 forward passes less the first layer's input gradient).
FLOPS_PER_SAMPLE = 316 * 64

# "mixed": fp32 1e9 FLOP/s at 2 W (2 nJ/FLOP); bf16 4e9 at 1 W (0.25 nJ/FLOP); fp16 5e9 at
# 1.5 W (0.3 nJ/FLOP). "plain" declares no precision: fp32 1e9 at 2 W whatever is asked.
# The network draws nothing, so a client's energy estimate is its compute energy alone.
FLEET = """
[[device]]
name = "mixed"
flops_per_s = 1e9
active_power_w = 2.0
idle_power_w = 0.5
embodied_kg = 50.0
lifetime_years = 3.0
active_share = 0.25
source = "test"

[[device.precisions]]
name = "bf16"
flops_per_s = 4e9
active_power_w = 1.0
estimated = true

[[device.precisions]]
name = "fp16"
flops_per_s = 5e9
active_power_w = 1.5
source = "test"

[[device]]
name = "plain"
flops_per_s = 1e9
active_power_w = 2.0
idle_power_w = 0.5
embodied_kg = 50.0
lifetime_years = 3.0
active_share = 0.25
source = "test"

[[network]]
name = "net"
up_mbps = 8.0
down_mbps = 16.0
radio_power_w = 0.0
network_kwh_per_gb = 0.0
source = "test"

[[region]]
name = "R"
ci_g_per_kwh = 100.0
utc_offset_h = 0
source = "test"

[server]
power_w = 100.0
pue = 1.5
region = "R"
source = "test"

[[population]]
device = "mixed"
network = "net"
region = "R"
share = 0.5

[[population]]
device = "plain"
network = "net"
region = "R"
share = 0.5
"""

# (precision asked, device) -> (precision run, FLOP/s, W), by hand from FLEET
EXPECTED = {
    ("bf16", "mixed"): ("bf16", 4e9, 1.0),
    ("fp16", "mixed"): ("fp16", 5e9, 1.5),
    ("auto", "mixed"): ("bf16", 4e9, 1.0),  # 0.25 < 0.3 < 2 nJ/FLOP
    ("fp32", "mixed"): ("fp32", 1e9, 2.0),
    **{(p, "plain"): ("fp32", 1e9, 2.0) for p in ("fp32", "bf16", "fp16", "auto")},
}


@pytest.fixture
def fleet_file(tmp_path: Path) -> Path:
    path = tmp_path / "fleet.toml"
    path.write_text(FLEET)
    return path


def _cfg(tiny_config: RunConfig, fleet_file: Path, precision: str, **sets: object) -> RunConfig:
    return tiny_config.replace(
        **{
            "fleet.catalog": str(fleet_file),
            "train.clients_per_round": 8,
            "train.precision": precision,
            **sets,
        }
    )


# --- accounting ----------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16", "auto"])
def test_each_client_is_charged_its_precisions_rates_by_hand(
    tiny_config: RunConfig, fleet_file: Path, tmp_path: Path, precision: str
) -> None:
    out = tmp_path / precision
    greenfl.run(_cfg(tiny_config, fleet_file, precision), out)
    got = rows(
        out,
        "SELECT round, device, precision, flops, num_samples, compute_s, energy_compute_j "
        "FROM client_rounds ORDER BY round, client_id",
    )
    assert len(got) == 3 * 8
    assert {d for _, d, *_ in got} == {"mixed", "plain"}  # both kinds were picked
    per_round: dict[int, float] = {}
    for rnd, device, ran, flops, samples, compute_s, energy_j in got:
        want_precision, flops_per_s, power_w = EXPECTED[(precision, device)]
        assert ran == want_precision
        # one epoch of batch 16, no cap: every sample once, in any precision
        assert flops == FLOPS_PER_SAMPLE * samples
        assert compute_s == pytest.approx(flops / flops_per_s, rel=1e-12)
        assert energy_j == pytest.approx(flops / flops_per_s * power_w, rel=1e-12)
        per_round[rnd] = per_round.get(rnd, 0.0) + flops / flops_per_s * power_w
    ledger = dict(rows(out, "SELECT round, SUM(energy_compute_j) FROM client_rounds GROUP BY 1"))
    assert ledger == pytest.approx(per_round, rel=1e-12)


def test_bf16_clients_use_8x_less_compute_energy_than_in_fp32(
    tiny_config: RunConfig, fleet_file: Path, tmp_path: Path
) -> None:
    """The same clients (random selection, same seed), the same FLOPs; a mixed-device
    client's energy is (2 W / 1e9) / (1 W / 4e9) = 8x lower in bf16, a plain one's equal."""
    sql = (
        "SELECT round, client_id, device, flops, energy_compute_j FROM client_rounds "
        "ORDER BY round, client_id"
    )
    greenfl.run(_cfg(tiny_config, fleet_file, "fp32"), tmp_path / "fp32")
    greenfl.run(_cfg(tiny_config, fleet_file, "bf16"), tmp_path / "bf16")
    full, mixed = rows(tmp_path / "fp32", sql), rows(tmp_path / "bf16", sql)
    assert [r[:4] for r in full] == [r[:4] for r in mixed]
    for (_, _, device, _, e32), (*_, e16) in zip(full, mixed, strict=True):
        assert e32 / e16 == pytest.approx(8.0 if device == "mixed" else 1.0, rel=1e-12)


def test_rows_and_estimates_price_the_precision(fleet_file: Path) -> None:
    fleet = load_fleet(fleet_file)
    for precision in ("fp32", "bf16", "fp16", "auto"):
        table = EntryTable.build(fleet, FootprintChoices(precision=precision))
        targets = TargetTable.build(fleet, FootprintChoices(precision=precision))
        for row, device in enumerate(("mixed", "plain")):
            want, flops_per_s, power_w = EXPECTED[(precision, device)]
            for tb in (table, targets.table):
                assert tb.precision[row] == want
                cost = tb.cost(row, np.float64(1e9), 0, 0)
                assert float(cost.energy_compute_j) == pytest.approx(1e9 / flops_per_s * power_w)


def test_selectors_estimates_price_each_clients_precision(
    tiny_config: RunConfig, fleet_file: Path, tmp_path: Path
) -> None:
    costs = build_loop(_cfg(tiny_config, fleet_file, "bf16")).parts.costs
    clients = np.arange(costs.population.size)
    est, at = costs.estimate(clients, 0.0, 1)
    devices = [costs.table.device[r] for r in at.tolist()]
    assert set(devices) == {"mixed", "plain"}
    samples = costs.population.num_samples[clients].tolist()
    for device, n, energy_j in zip(devices, samples, est.energy_j.tolist(), strict=True):
        _, flops_per_s, power_w = EXPECTED[("bf16", device)]
        # the network draws nothing: the estimate is the compute energy alone
        assert energy_j == pytest.approx(FLOPS_PER_SAMPLE * n / flops_per_s * power_w)


def test_ledger_has_the_precision_column(
    tiny_config: RunConfig, fleet_file: Path, tmp_path: Path
) -> None:
    assert "precision" in CLIENT_ROUND_COLUMNS
    greenfl.run(_cfg(tiny_config, fleet_file, "fp16"), tmp_path / "run")
    kinds = rows(tmp_path / "run", "SELECT DISTINCT device, precision FROM client_rounds")
    assert sorted(kinds) == [("mixed", "fp16"), ("plain", "fp32")]
    types = {r[1]: r[2] for r in rows(tmp_path / "run", "PRAGMA table_info(client_rounds)")}
    assert types["precision"] == "TEXT"


# --- the fleet file ------------------------------------------------------------------


def test_auto_is_the_least_energy_declared_precision_and_never_worse_than_fp32() -> None:
    def target(*precisions: tuple[str, float, float]) -> ExecutionTarget:
        declared = tuple(
            PrecisionTarget(name=n, flops_per_s=f, active_power_w=w, estimated=True)
            for n, f, w in precisions
        )
        return ExecutionTarget(
            name="t", flops_per_s=1e9, active_power_w=2.0, source="x", precisions=declared
        )

    both = target(("bf16", 4e9, 1.0), ("fp16", 5e9, 1.5))  # 0.25 vs 0.3 nJ/FLOP
    assert both.precision("auto").name == "bf16"
    assert target(("fp16", 5e9, 1.0), ("bf16", 4e9, 1.0)).precision("auto").name == "fp16"
    # a declared precision that costs more energy per FLOP than fp32 (2 nJ) is not taken
    assert target(("bf16", 1e9, 3.0)).precision("auto") is None
    assert both.precision("fp32") is None
    assert target(("fp16", 5e9, 1.0)).precision("bf16") is None  # not declared: fp32
    with pytest.raises(ValueError, match="unknown precision 'int8'"):
        both.precision("int8")


def _fleet_with(device_extra: str) -> str:
    return FLEET.replace(
        'name = "plain"\nflops_per_s = 1e9', 'name = "plain"\nflops_per_s = 1e9' + device_extra
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            '\n[[device.precisions]]\nname = "bf16"\nflops_per_s = 2e9\nactive_power_w = 1.0\n',
            "precision 'bf16' needs a source, or estimated = true",
        ),
        (
            '\n[[device.precisions]]\nname = "int8"\nflops_per_s = 2e9\n'
            'active_power_w = 1.0\nsource = "x"\n',
            "device[1] (plain).precisions[0] (int8).name: Input should be 'bf16' or 'fp16'",
        ),
        (
            '\n[[device.precisions]]\nname = "fp16"\nflops_per_s = 0.0\n'
            'active_power_w = 1.0\nsource = "x"\n',
            "device[1] (plain).precisions[0] (fp16).flops_per_s",
        ),
    ],
)
def test_a_bad_precision_in_a_fleet_file_is_named(extra: str, message: str) -> None:
    import tomllib

    # keys after [[device.precisions]] belong to it: put the table at the device's end
    text = FLEET.replace(
        'source = "test"\n\n[[network]]', 'source = "test"\n' + extra + "\n[[network]]"
    )
    with pytest.raises(FleetError) as err:
        parse_fleet(tomllib.loads(text), "f.toml")
    assert message in str(err.value)


def test_duplicate_precisions_and_device_level_ones_beside_targets_are_refused() -> None:
    import tomllib

    dup = FLEET.replace('name = "fp16"', 'name = "bf16"')
    with pytest.raises(FleetError, match="duplicate precision names"):
        parse_fleet(tomllib.loads(dup), "f.toml")
    both = FLEET.replace(
        '[[device.precisions]]\nname = "bf16"',
        '[[device.targets]]\nname = "cpu"\nflops_per_s = 1e9\nactive_power_w = 2.0\n'
        'source = "x"\n\n[[device.precisions]]\nname = "bf16"',
    )
    with pytest.raises(FleetError, match="declares its precisions on each target"):
        parse_fleet(tomllib.loads(both), "f.toml")


def test_the_builtin_catalog_declares_sourced_or_flagged_precisions() -> None:
    fleet = load_fleet()
    declared = {
        (d.name, t.name): {p.name for p in t.precisions}
        for d in fleet.devices
        for t in (d.targets or (d.target(None),))
    }
    assert declared[("jetson-nano", "10w")] == {"fp16"}  # Maxwell: fp16, no bf16
    assert declared[("phone-high", "cpu")] == {"bf16", "fp16"}
    assert declared[("rpi4", "default")] == set()  # Cortex-A72: no fp16 arithmetic
    assert declared[("laptop", "default")] == set()
    for d in fleet.devices:
        for t in d.targets or (d.target(None),):
            for p in t.precisions:
                assert p.source and (p.estimated or "estimate" not in p.source)
                # every declared precision here saves energy per FLOP over fp32
                assert p.active_power_w / p.flops_per_s < t.active_power_w / t.flops_per_s


# --- the config ----------------------------------------------------------------------


def test_an_unknown_precision_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError) as err:
        build_config({"train": {"precision": "fp8"}})
    text = str(err.value)
    assert "train.precision" in text and "'fp32', 'bf16', 'fp16' or 'auto'" in text
    assert "\n" not in text


def test_what_mixed_precision_does_not_support_yet_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="train.precision = 'bf16' does not support engine.mode = 'async'"
    ):
        build_config(
            {
                "train": {"precision": "bf16"},
                "engine": {"mode": "async"},
                "strategy": {"name": "fedbuff"},
            }
        )
    assert build_config({"train": {"precision": "auto"}}).train.precision == "auto"


# --- training under autocast ---------------------------------------------------------


def _dtypes_seen(
    model: nn.Module,
) -> tuple[list[torch.dtype], list[torch.utils.hooks.RemovableHandle]]:
    seen: list[torch.dtype] = []

    def hook(m: nn.Module, _i: object, out: torch.Tensor) -> None:
        if m.training:
            seen.append(out.dtype)

    return seen, [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Linear)
    ]


@pytest.mark.parametrize(
    ("precision", "dtype"),
    [("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)],
)
def test_train_one_runs_its_layers_in_the_precision(precision: str, dtype: torch.dtype) -> None:
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    g = get_flat(model).clone()
    x, y = torch.randn(32, 8, generator=torch.Generator().manual_seed(0)), torch.arange(32) % 4
    seen, handles = _dtypes_seen(model)
    ins = FitInstructions(1, 8, 0.1, precision=precision)
    res = train_one(model, g, x, y, 0, ins, seed=3)
    for h in handles:
        h.remove()
    assert seen and set(seen) == {dtype}
    assert res.delta.dtype == torch.float32 and res.steps == 4
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    assert float(res.delta.abs().max()) > 1e-4


def test_a_run_trains_its_bf16_clients_under_autocast(
    tiny_config: RunConfig, fleet_file: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_config, fleet_file, "bf16", **{"engine.trainer": "sequential"})
    ds = dataset_for(cfg.data, cfg.seed)
    model = build_model_for(cfg, ds)
    seen, handles = _dtypes_seen(model)
    greenfl.run(cfg, tmp_path / "run", model=model, dataset=ds)
    for h in handles:
        h.remove()
    kinds = dict(rows(tmp_path / "run", "SELECT precision, COUNT(*) FROM client_rounds GROUP BY 1"))
    # each client's forward passes: 2 Linear layers per step, in its own precision
    assert set(kinds) == {"bf16", "fp32"}
    assert seen.count(torch.bfloat16) > 0 and seen.count(torch.float32) > 0


def _synthetic(num_clients: int = 40) -> tuple[FederatedDataset, nn.Module]:
    cfg = build_config({"data": {"dataset": "synthetic", "num_clients": num_clients}})
    ds = dataset_for(cfg.data, 3)
    return ds, build_model_for(cfg, ds)


def _both(ins: FitInstructions) -> tuple[list[TrainResult], list[TrainResult], list[TrainResult]]:
    """Sequential and vectorised training in ``ins.precision``, and sequential in fp32."""
    ds, model = _synthetic()
    cohort = [int(c) for c in np.random.default_rng(1).choice(40, 12, replace=False)]
    g = get_flat(model)
    seq = SequentialTrainer().train(model, g, ds, cohort, ins, 4, 11)
    vec = VectorisedTrainer().train(model, g, ds, cohort, ins, 4, 11)
    fp32 = SequentialTrainer().train(model, g, ds, cohort, ins.with_(precision="fp32"), 4, 11)
    return seq, vec, fp32


# Sequential and vectorised matmuls sum in other orders (fp32 training: 1.6e-7 of the
# update's norm apart here), but in bf16 / fp16 each matmul's output is rounded to 8 / 11
# significant bits, which hides that: measured bit-identical here. A kernel that rounds
# otherwise may flip an ulp now and then: 5e-5 allows for it, and stays well below how far
# the fp32 update is from either (measured 2e-3 for bf16, 2.6e-4 for fp16).
HALF_SAME_UPDATE_REL = 5e-5


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_vectorised_equals_sequential_in_half_precision(precision: str) -> None:
    ins = FitInstructions(2, 16, 0.05, momentum=0.9, prox_mu=0.01, precision=precision)
    seq, vec, fp32 = _both(ins)
    for a, b, c in zip(seq, vec, fp32, strict=True):
        assert (a.client_id, a.steps, a.samples_processed) == (
            b.client_id,
            b.steps,
            b.samples_processed,
        )
        assert_close_to_scale(b.delta, a.delta, HALF_SAME_UPDATE_REL, f"client {a.client_id}")
        assert b.loss == pytest.approx(a.loss, rel=SAME_LOSS_REL)
        # autocast really ran in both: the fp32 update is another one
        assert relative_error(a.delta, c.delta) > 2 * HALF_SAME_UPDATE_REL
        assert relative_error(b.delta, c.delta) > 2 * HALF_SAME_UPDATE_REL


def test_fp32_instructions_train_exactly_as_before() -> None:
    ins = FitInstructions(1, 16, 0.05)
    ds, model = _synthetic()
    g = get_flat(model)
    a = SequentialTrainer().train(model, g, ds, [0, 1, 2], ins, 1, 5)
    b = SequentialTrainer().train(model, g, ds, [0, 1, 2], ins.with_(precision="fp32"), 1, 5)
    for r, s in zip(a, b, strict=True):
        assert torch.equal(r.delta, s.delta)


# --- fp16 loss scaling ---------------------------------------------------------------


def test_loss_scales_halve_on_overflow_and_grow_after_2000_clean_steps() -> None:
    s = LossScales(3)
    assert s.scale.tolist() == [INIT_SCALE] * 3 == [65536.0] * 3
    s.update(torch.tensor([True, False, True]))
    assert s.scale.tolist() == [65536.0, 32768.0, 65536.0]
    s.update(torch.tensor([False, True]), upto=2)  # client 2 has no step this time
    assert s.scale.tolist() == [32768.0, 32768.0, 65536.0]
    for _ in range(1999):
        s.update(torch.tensor([True, True, True]))
    # clean steps in a row: client 0 1,999 (since its overflow in the second update);
    # client 1 1 + 1,999 = 2,000 and client 2 1 + 1,999 = 2,000 (it sat the second out):
    # they double, and count again from 0
    assert s.scale.tolist() == [32768.0, 65536.0, 131072.0]
    s.update(torch.tensor([True, True, True]))
    assert s.scale.tolist() == [65536.0, 65536.0, 131072.0]


def test_an_overflowing_fp16_step_is_skipped_alike_in_both_trainers() -> None:
    """Inputs x 10: at scale 2**16 the first steps' fp16 gradients overflow and are
    skipped (the weights do not move), until the halved scale fits; both trainers skip
    the same steps, so their updates agree. bf16 needs no scale: its first step moves."""
    ds, model = _synthetic()
    loud = _Loud(ds, 10.0)
    g = get_flat(model)
    cohort = [1, 2, 3]  # 27, 24 and 32 samples: 6 to 8 steps of batch 4
    one = FitInstructions(1, 4, 0.01, max_steps=1, precision="fp16")
    skipped = SequentialTrainer().train(model, g, loud, cohort, one, 1, 2)
    assert all(float(r.delta.abs().max()) == 0.0 for r in skipped)  # the step overflowed
    vec_skipped = VectorisedTrainer().train(model, g, loud, cohort, one, 1, 2)
    assert all(float(r.delta.abs().max()) == 0.0 for r in vec_skipped)
    moved = SequentialTrainer().train(model, g, loud, cohort, one.with_(precision="bf16"), 1, 2)
    assert all(float(r.delta.abs().max()) > 1e-2 for r in moved)
    many = one.with_(max_steps=12, momentum=0.5)
    seq = SequentialTrainer().train(model, g, loud, cohort, many, 1, 2)
    vec = VectorisedTrainer().train(model, g, loud, cohort, many, 1, 2)
    for a, b in zip(seq, vec, strict=True):
        assert float(a.delta.abs().max()) > 0  # later steps were taken
        assert_close_to_scale(b.delta, a.delta, HALF_SAME_UPDATE_REL, f"client {a.client_id}")


class _Loud:
    """``inner``'s clients with their features multiplied by ``gain``."""

    def __init__(self, inner: FederatedDataset, gain: float) -> None:
        self.inner, self.gain = inner, gain
        self.name, self.num_clients = inner.name, inner.num_clients
        self.input_shape, self.num_classes = inner.input_shape, inner.num_classes

    def client_sizes(self) -> np.ndarray:
        return self.inner.client_sizes()

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.inner.client_data(client_id)
        return x * self.gain, y

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.client_test_data(client_id)

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner.test_data()


def test_compute_dtype_and_the_fp32_context() -> None:
    assert compute_dtype("fp32") is None
    assert compute_dtype("bf16") is torch.bfloat16
    assert compute_dtype("fp16") in (torch.float16, torch.bfloat16)  # bf16 numerics if no fp16
    with autocast("fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast("bf16"):
        assert torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        compute_dtype("fp8")
