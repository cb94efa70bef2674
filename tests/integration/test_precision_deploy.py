"""Mixed precision in a real deployment (issue 31, item 2): a `serve` on loopback and two
`join` clients (threads of this process running the real client code) with
train.precision = "bf16", on a fleet whose one device declares bf16
(tests/integration/data/bf16_fleet.toml). Each task carries its precision on the wire
(FitInstructions.precision); the clients train under bf16 autocast, so the deployed global
model is the simulated bf16 run's and not the fp32 run's; the ledger says bf16 and charges
the bf16 power. A client asked for a precision it may not train in answers with an error.

The model is the quickstart's MLP 64-[64]-10 on digits: training FLOPs per sample
3 x 2 x (64*64 + 64*10) - 2 x 64*64 = 20224 by hand (three passes of the two matmuls, less
the first layer's input gradient), as tests/integration/test_submodel_deploy.py counts.
The fixture fleet's device: fp32 at 1e9 FLOP/s and 2 W, bf16 at 4e9 FLOP/s and 1.5 W."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import greenfl
from greenfl.config import RunConfig, load_config
from tests.integration.loopback import GlobalParams, config_text, serve_and_join
from tests.ledger_sql import rows

FLEET = Path(__file__).parent / "data" / "bf16_fleet.toml"
N_CLIENTS, ROUNDS, SEED = 2, 2, 3
FLOPS_PER_SAMPLE = 3 * 2 * (64 * 64 + 64 * 10) - 2 * 64 * 64  # 20224, by hand (above)
BF16_FLOPS_PER_S, BF16_W = 4.0e9, 1.5  # the fixture's bf16 rates
FP32_FLOPS_PER_S, FP32_W = 1.0e9, 2.0  # and its fp32 ones

CONFIG = config_text(
    N_CLIENTS,
    ROUNDS,
    seed=SEED,
    catalog=FLEET.as_posix(),
    train='local_epochs = 2\nprecision = "bf16"',
    deploy=f"min_clients = {N_CLIENTS}",
)

# The same machine runs the deployed clients and the simulated ones with the same kernels
# (train_one, bf16 autocast): they agree to float32 rounding (measured: bit for bit). bf16
# and fp32 training differ by ~2e-2 on the most changed weight (measured: 0.017 after
# round 1, 0.025 after round 2, weights up to 0.8): 1e-3 separates them with room on
# both sides.
SAME_ATOL = 1e-6
OTHER_PRECISION_ATLEAST = 1e-3


def _config(tmp: Path) -> RunConfig:
    path = tmp / "c.toml"
    path.write_text(CONFIG)
    return load_config(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The deployment, then the same run simulated in bf16 and in fp32."""
    tmp = tmp_path_factory.mktemp("precision_deploy")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cfg = _config(tmp)
        deployed = GlobalParams()
        clients, _ = serve_and_join(cfg, tmp / "run", N_CLIENTS, [deployed])
        bf16, fp32 = GlobalParams(), GlobalParams()
        greenfl.run(cfg, tmp / "sim-bf16", observers=[bf16])
        greenfl.run(cfg.replace(**{"train.precision": "fp32"}), tmp / "sim-fp32", observers=[fp32])
    finally:
        torch.set_num_threads(before)
    return {
        "cfg": cfg,
        "tmp": tmp,
        "clients": clients,
        "deployed": deployed.params,
        "bf16": bf16.params,
        "fp32": fp32.params,
    }


@pytest.mark.slow  # ~15 s for the module's runs alone, more on a loaded 2-core machine
def test_deployed_clients_train_under_bf16_and_the_ledger_says_so(runs: dict[str, Any]) -> None:
    for c in runs["clients"]:
        assert [r["precision"] for r in c.stats.history] == ["bf16"] * ROUNDS
    got = rows(
        runs["tmp"] / "run",
        "SELECT round, client_id, status, device, precision FROM client_rounds "
        "ORDER BY round, client_id",
    )
    assert got == [
        (r, c, "completed", "bf16-phone", "bf16")
        for r in range(1, ROUNDS + 1)
        for c in range(N_CLIENTS)
    ]
    # Trained under bf16 autocast: the simulated bf16 run's model round for round, and
    # not the fp32 run's (which a client ignoring the precision would have computed).
    assert len(runs["deployed"]) == len(runs["bf16"]) == len(runs["fp32"]) == ROUNDS
    for d, b, f in zip(runs["deployed"], runs["bf16"], runs["fp32"], strict=True):
        assert torch.allclose(d, b, rtol=0, atol=SAME_ATOL)
        assert float((d - f).abs().max()) > OTHER_PRECISION_ATLEAST


@pytest.mark.slow
def test_compute_energy_is_charged_at_the_bf16_rates(runs: dict[str, Any]) -> None:
    cfg, tmp = runs["cfg"], runs["tmp"]
    sql = (
        "SELECT round, client_id, num_samples, flops, compute_s, energy_compute_j, estimated "
        "FROM client_rounds ORDER BY round, client_id"
    )
    deployed = rows(tmp / "run", sql)
    simulated = rows(tmp / "sim-bf16", sql)
    assert [r[:4] for r in deployed] == [r[:4] for r in simulated]
    epochs = cfg.train.local_epochs
    for (*_, n, flops, compute_s, energy_j, estimated), (*_, sim_s, sim_j, _) in zip(
        deployed, simulated, strict=True
    ):
        # Every sample of every epoch, the same FLOPs in any precision
        assert flops == FLOPS_PER_SAMPLE * epochs * n
        # Simulated: the FLOPs at bf16's throughput, at bf16's power, by hand
        assert sim_s == pytest.approx(flops / BF16_FLOPS_PER_S, rel=1e-12)
        assert sim_j == pytest.approx(flops / BF16_FLOPS_PER_S * BF16_W, rel=1e-12)
        # Deployed, without a meter: the client's own training time at bf16's power
        # (fp32's 2 W would charge 4/3 of it), modelled
        assert compute_s > 0 and estimated == 1
        assert energy_j == pytest.approx(BF16_W * compute_s, rel=1e-12)


@pytest.mark.slow
def test_the_servers_estimate_prices_the_bf16_work(runs: dict[str, Any]) -> None:
    got = rows(
        runs["tmp"] / "run",
        "SELECT flops, compute_s, server_estimate_j FROM client_rounds",
    )
    for flops, _, estimate_j in got:
        # The client trained for far longer than the modelled 36 ms, so the estimate is
        # the modelled time's energy: flops / 4e9 FLOP/s x 1.5 W (not / 1e9 x 2 W)
        assert estimate_j == pytest.approx(flops / BF16_FLOPS_PER_S * BF16_W, rel=1e-12)


# --- the wire and the client's checks (fast) -------------------------------------------


def test_precision_travels_in_the_instructions_and_fp32_sends_what_it_did() -> None:
    from greenfl.core.messages import FitInstructions
    from greenfl.deploy.wire import instructions_from_pb, instructions_to_pb

    fp32 = FitInstructions(5, 8, 0.05)
    bf16 = fp32.with_(precision="bf16")
    # fp32 travels as the absent field: a tag-1 varint (epochs), tag-2 varint (batch)
    # and the 8-byte lr, 2 + 2 + 9 bytes, as before precisions existed
    assert instructions_to_pb(fp32).ByteSize() == 13
    # bf16 adds field 10 (a one-byte tag, wire type 2), its length and "bf16": 6 bytes
    assert instructions_to_pb(bf16).ByteSize() == 13 + 1 + 1 + 4
    for ins in (fp32, bf16, fp32.with_(precision="fp16", width=0.5)):
        back = instructions_from_pb(instructions_to_pb(ins))
        assert back == ins


def test_join_reply_names_the_enrolled_targets_precisions() -> None:
    from dataclasses import replace

    from greenfl.deploy.wire import enrolled_precisions
    from greenfl.fleet.catalog import BUILTIN, load_fleet
    from greenfl.fleet.profiles import PopulationEntry

    assert enrolled_precisions(load_fleet(FLEET), 0) == ["fp32", "bf16"]
    builtin = load_fleet(BUILTIN)
    declared = {e.device: enrolled_precisions(builtin, i) for i, e in enumerate(builtin.population)}
    # By hand from builtin.toml: its population names no target, so each device trains on
    # its first: phone-high's cpu declares bf16 and fp16, phone-mid's cpu and laptop-m1
    # fp16, phone-low and desktop none
    assert declared["phone-high"] == ["fp32", "bf16", "fp16"]
    assert declared["phone-mid"] == declared["laptop-m1"] == ["fp32", "fp16"]
    assert declared["phone-low"] == declared["desktop"] == ["fp32"]
    # An entry naming a target: that target's (phone-high's gpu: fp16; its npu: none)
    for target, want in (("gpu", ["fp32", "fp16"]), ("npu", ["fp32"])):
        entry = PopulationEntry(
            device="phone-high",
            network="wifi",
            region=builtin.regions[0].name,
            share=1.0,
            target=target,
        )
        assert enrolled_precisions(replace(builtin, population=(entry,)), 0) == want


@pytest.fixture(scope="module")
def joined(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Any]:
    """A client's local side built from a JoinReply of the run with a train.precision
    (built once per precision: the dataset and the warm-up step take seconds)."""
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.client.local import build_local

    tmp = tmp_path_factory.mktemp("joined")
    built: dict[str, Any] = {}

    def local(run_precision: str) -> Any:
        if run_precision not in built:
            cfg = _config(tmp).replace(**{"train.precision": run_precision})
            reply = pb.JoinReply(config_json=cfg.model_dump_json(by_alias=True))
            built[run_precision] = build_local(reply, None, 0)
        return built[run_precision]

    return local


def _answer(local: Any, asked: str, declared: list[str]) -> str:
    """What a joined client answers to a FIT task asking for precision ``asked`` when the
    server said its device trains in ``declared``: the update's error ("" when it
    trained, in that precision)."""
    from greenfl.clients.validate import PROTOCOL_VERSION
    from greenfl.core.params import get_flat
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.client import ClientOptions
    from greenfl.deploy.client.secagg import SecAggParticipant
    from greenfl.deploy.client.task import train_task
    from greenfl.deploy.wire import params_to_pb
    from greenfl.footprint.meters import NullMeter

    task = pb.Task(
        kind=pb.Task.FIT,
        protocol_version=PROTOCOL_VERSION,
        round=1,
        task_id="t",
        params=params_to_pb(get_flat(local.model), local.spec),
        instructions=pb.FitInstructions(local_epochs=1, batch_size=64, lr=0.1, precision=asked),
        seed=SEED,
    )
    done = train_task(
        task,
        "s",
        local,
        ClientOptions("127.0.0.1:1", 0),
        NullMeter(),
        "bf16-phone",
        SecAggParticipant(0, None),
        threading.Event(),
        declared,
    )
    assert done is not None
    if done.update.error:  # answered, not trained
        assert done.row is None and done.update.WhichOneof("delta") is None
    else:
        assert done.row is not None and done.row["precision"] == asked
    return done.update.error


@pytest.mark.parametrize(
    ("run_precision", "asked", "declared", "error"),
    [
        ("bf16", "bf16", ["fp32", "bf16"], ""),
        ("bf16", "bf16", [], ""),  # a server that does not say: the run's precision
        ("auto", "fp16", [], ""),
        ("bf16", "fp32", ["fp32", "bf16"], ""),  # a device without the precision asked
        (
            "bf16",
            "fp16",
            ["fp32", "fp16"],
            "the server asks for precision fp16; the run's train.precision is 'bf16'",
        ),
        (
            "fp32",
            "bf16",
            [],
            "the server asks for precision bf16; the run's train.precision is 'fp32'",
        ),
        (
            "auto",
            "fp16",
            ["fp32", "bf16"],
            "the server asks for precision fp16; device 'bf16-phone', as this client is "
            "enrolled, trains in fp32, bf16 only",
        ),
        (
            "bf16",
            "int8",
            ["fp32", "bf16"],
            "the server asks for precision 'int8'; this client trains in fp32, bf16, fp16",
        ),
    ],
)
def test_a_client_refuses_a_precision_it_may_not_train_in(
    joined: Callable[[str], Any], run_precision: str, asked: str, declared: list[str], error: str
) -> None:
    assert _answer(joined(run_precision), asked, declared) == error


def test_fleet_show_lists_each_devices_declared_precisions(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenfl.cli import main

    monkeypatch.setenv("COLUMNS", "120")  # rich's width: no cell cut short
    assert main(["fleet", "show", str(FLEET)]) == 0
    out = capsys.readouterr().out
    bf16_rows = [
        line for line in out.splitlines() if line.startswith("│ bf16-phone") and "bf16 " in line
    ]
    assert len(bf16_rows) == 1, out
    cells = [c.strip() for c in bf16_rows[0].strip("│ ").split("│")]
    # device, target (none: the device's own figures), precision, GFLOP/s, W, nJ/FLOP
    # (1.5 W / 4e9 FLOP/s), fp32's 2 nJ/FLOP over it, and the figures' basis
    assert cells == ["bf16-phone", "-", "bf16", "4", "1.5", "0.375", "5.33x less", "estimated"]
    assert (
        "bf16-phone, bf16 (estimated): test fixture: 4x the fp32 throughput at 3/4 of its power"
        in out
    )


def test_fleet_show_gives_no_ratio_for_a_zero_watt_precision(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the fleet file admits 0 W (found by the input fuzzer): no ratio, not a ZeroDivisionError
    from greenfl.cli import main

    text = FLEET.read_text().splitlines()
    text[17] = "active_power_w = 0.0"  # the bf16 entry's power (line 18 of the fixture)
    zero = tmp_path / "zero.toml"
    zero.write_text("\n".join(text) + "\n")
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["fleet", "show", str(zero)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "bf16 " in line)
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["bf16-phone", "-", "bf16", "4", "0", "0", "-", "estimated"]
