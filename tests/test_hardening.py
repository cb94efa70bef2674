"""Issue 16's probe classes as regression tests: implausible client reports, the default
defences of a deployment's round, quarantine, hostile files, and the run folder's lock."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from greenfl.config import build_config, load_config
from greenfl.core.errors import ConfigError, FleetError, UpdateRejected
from greenfl.core.files import MAX_YAML_ALIASES, parse_yaml, read_text
from greenfl.core.messages import ClientReport
from greenfl.deploy.server.plausible import (
    RoundModel,
    bound_round,
    bounded_weights,
    check_plausible,
)
from greenfl.deploy.server.quarantine import Quarantine
from greenfl.deploy.server.secagg import SecAggOptions, SecAggRounds
from greenfl.deploy.server.sessions import Pending
from greenfl.ledger.folder import LOCK_FILE, claim_folder
from greenfl.secagg import SecAggError

# A phone-like profile: 1e9 FLOP/s at 2 W; the round asks for 1e9 FLOPs, i.e. 1 s and 2 J.
MODEL = RoundModel(expected_flops=1e9, flops_per_s=1e9, power_w=2.0, timeout_s=300.0, factor=10)


def test_a_plausible_report_passes() -> None:
    check_plausible(1.2e9, 0.9, 1.9, elapsed_s=1.5, m=MODEL)
    check_plausible(1e9, None, None, elapsed_s=None, m=MODEL)


@pytest.mark.parametrize(
    ("flops", "compute_s", "energy_j", "elapsed_s", "what"),
    [
        (1e9, 1e12, None, None, "task was out for 300 s"),  # the clock-overflow probe
        (1e9, 20.0, None, 5.0, "out for 6 s"),  # more than the server's own clock saw
        (1e9, 1.0, 1e30, 2.0, "1e\\+30 J"),  # the ledger-poisoning probe
        (1e9, 1.0, 0.0, 2.0, "reported 0 J"),  # 0 J stored as measured
        (1e9, 1.0, 2001.0, 2.0, "2001 J"),  # above any client's power
        (1e9, 1e-3, None, 2.0, "10x under"),  # 1000x faster than its device
        (1e30, 1.0, None, 2.0, "FLOPs"),
        (0.0, 1.0, None, 2.0, "FLOPs"),
    ],
)
def test_an_implausible_report_is_rejected_with_its_reason(
    flops: float, compute_s: float | None, energy_j: float | None, elapsed_s: float, what: str
) -> None:
    with pytest.raises(UpdateRejected, match=f"implausible: .*{what}"):
        check_plausible(flops, compute_s, energy_j, elapsed_s, MODEL)


# The server's model expects nothing (0 FLOPs, 0 W): the absolute caps still hold.
NO_MODEL = RoundModel(expected_flops=0.0, flops_per_s=1e9, power_w=0.0, timeout_s=300.0, factor=10)


@pytest.mark.parametrize(
    ("flops", "compute_s", "energy_j", "m", "what"),
    [
        (1e308, 1.0, None, NO_MODEL, "FLOPs in a task out for 2 s"),
        (1e9, 1.0, 1e30, NO_MODEL, "1e\\+30 J"),
        (1e9, math.nan, None, MODEL, "nan s of compute"),
        (1e9, -1.0, None, MODEL, "-1.0 s of compute"),
        (1e9, 1.0, math.inf, MODEL, "inf J"),
        (math.nan, 1.0, None, NO_MODEL, "nan FLOPs"),
    ],
)
def test_absolute_caps_and_non_finite_figures_reject_whatever_the_model(
    flops: float, compute_s: float, energy_j: float | None, m: RoundModel, what: str
) -> None:
    with pytest.raises(UpdateRejected, match=f"implausible: .*{what}"):
        check_plausible(flops, compute_s, energy_j, 1.0, m)


def test_the_clock_refuses_a_step_past_its_last_date() -> None:
    from datetime import datetime, timezone

    from greenfl.scheduling.clock import ClockOverflow, SimClock

    clock = SimClock(datetime(2024, 1, 1, tzinfo=timezone.utc))
    clock.advance(3600.0)
    for step in (1.17e13, math.inf, math.nan):
        with pytest.raises(ClockOverflow, match="year 9999"):
            clock.advance(step)
    assert clock.now_s == 3600.0
    with pytest.raises(ClockOverflow):
        clock.now_s = 1e300  # a resumed snapshot's time is held to the same bound


def test_the_factor_bounds_are_inclusive_and_symmetric() -> None:
    # 2 J modelled for 1 s: 0.2 J is the low edge; the high one is 2,000 W x 1 s (a
    # laptop's meter on a client joined as a phone is believed, 1e30 J is not).
    check_plausible(1e9, 1.0, 0.2, 2.0, MODEL)
    check_plausible(1e9, 1.0, 2000.0, 2.0, MODEL)
    with pytest.raises(UpdateRejected):
        check_plausible(1e9, 1.0, 2000.01, 2.0, MODEL)
    with pytest.raises(UpdateRejected):
        check_plausible(1e9, 1.0, 0.1999, 2.0, MODEL)


def _report(cid: int, delta: torch.Tensor, n: int = 100) -> ClientReport:
    return ClientReport(cid, "completed", None, delta, n, 1e9, 0.5, 10, 10)


def test_the_round_bounds_reject_a_scaled_update_and_cap_an_inflated_weight() -> None:
    honest = [_report(i, torch.full((4,), 0.1 * (i + 1))) for i in range(4)]
    scaled = _report(4, torch.full((4,), 1e6))
    inflated = _report(5, torch.full((4,), 0.2), n=10**9)
    out = bound_round([*honest, scaled, inflated], norm_factor=10.0, sample_factor=10.0)
    norms = [float(r.delta.norm()) for r in [*honest, inflated]]  # type: ignore[union-attr]
    median = float(np.median([*norms, 2e6]))
    assert out[4].status == "rejected" and out[4].delta is None
    assert f"{median:.4g}" in (out[4].reason or "")
    # The weight cap: 10x the median of the kept updates' samples (100).
    assert out[5].status == "completed" and out[5].num_samples == 1000
    assert [r.num_samples for r in out[:4]] == [100] * 4


def test_a_declared_weight_is_capped_at_a_typical_clients_and_a_partition_is_not() -> None:
    d = torch.ones(4)
    # Clients 0-3 hold partitions (one with 5x the median: genuinely unequal data, kept);
    # 4 and 5 bring their own data: 5 claims 1e6 samples, 4 honestly has 20.
    sizes = {0: 100, 1: 100, 2: 500, 3: 90, 4: 20, 5: 1_000_000}
    reps = [_report(c, d, n) for c, n in sizes.items()]
    out = bound_round(reps, 10.0, 10.0, declared={4, 5}, largest_partition=120)
    got = {r.client_id: r.num_samples for r in out}
    assert got == {0: 100, 1: 100, 2: 500, 3: 90, 4: 20, 5: 120}  # max(median 100, 120)
    # Under three updates there is no median: the dataset's largest partition still holds.
    out = bound_round(reps[4:], 10.0, 10.0, declared={4, 5}, largest_partition=120)
    assert [r.num_samples for r in out] == [20, 120]
    # The weight cap off (none) turns this off too.
    assert bound_round(reps, 10.0, None, declared={5}, largest_partition=120) == reps


def test_the_round_bounds_leave_fewer_than_three_updates_alone() -> None:
    two = [_report(0, torch.ones(3)), _report(1, torch.full((3,), 1e9), n=10**9)]
    assert bound_round(two, 10.0, 10.0) == two


def test_quarantine_after_two_strikes_in_a_row() -> None:
    q = Quarantine(rounds=3)
    bad = ClientReport(7, "rejected", "implausible: x", None, 1, 0.0, math.nan, 0, 0)
    late = ClientReport(7, "failed", "timeout: no update within 300 s", None, 1, 0.0, 0, 0, 0)
    ok = ClientReport(7, "completed", None, torch.zeros(1), 1, 1.0, 0.1, 1, 1)
    q.record(1, [bad])
    q.record(2, [ok])  # a good round resets the count
    q.record(3, [bad])
    assert q.reason(7, 4) is None
    q.record(4, [late])
    assert q.reason(7, 5) and q.reason(7, 7) and "until round 8" in (q.reason(7, 5) or "")
    assert q.reason(7, 8) is None


# ---- hostile files ------------------------------------------------------------------


def test_binary_garbage_is_an_error_naming_the_file(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(ConfigError, match=r"c\.toml: config file is not UTF-8"):
        load_config(p)
    with pytest.raises(FleetError, match="not UTF-8"):
        read_text(p, "fleet file", FleetError)


def test_a_folder_where_a_file_is_expected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path)


def test_a_yaml_alias_bomb_is_refused_quickly() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 9)}]")
    with pytest.raises(ConfigError, match="aliases|values"):
        parse_yaml("\n".join(lines), "bomb.yaml", ConfigError)
    few = "\n".join(["a: &a [1, 2]", *[f"b{i}: *a" for i in range(MAX_YAML_ALIASES)]])
    assert len(parse_yaml(few, "ok.yaml", ConfigError)) == MAX_YAML_ALIASES + 1


@pytest.mark.parametrize(
    "text",
    [
        "a = " + "[" * 500 + "]" * 500,
        "x:\n" + "- " * 400 + "1",
        "a: &a [*a]",  # an anchor cycle: a list that holds itself
        "data: &d {x: *d}",
    ],
)
def test_deep_nesting_is_an_error_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    p = tmp_path / ("c.toml" if text.startswith("a =") else "c.yaml")
    p.write_text(text)
    with pytest.raises(ConfigError, match="nested deeper|invalid"):
        load_config(p)


@pytest.mark.parametrize(
    ("setting", "key"),
    [
        ("train.lr=inf", "lr"),
        ("train.lr=nan", "lr"),
        ("fleet.deadline_s=inf", "deadline_s"),
        ("seed=9223372036854775807", "seed"),
        ("model.params.hidden=[2000000000]", "hidden"),
        ("data.num_clients=1000000000000", "num_clients"),
    ],
)
def test_absurd_or_non_finite_values_name_their_key(setting: str, key: str) -> None:
    # model.name = "mlp": an "auto" model's params are checked once the dataset is known
    # (below)
    with pytest.raises(ConfigError, match=key):
        build_config({"model": {"name": "mlp"}}, [setting])


def test_an_absurd_width_of_the_auto_model_is_refused_when_the_model_is_built() -> None:
    from greenfl.factories import build_model_for, dataset_for

    cfg = build_config({}, ["model.params.hidden=[2000000000]"])
    with pytest.raises(ConfigError, match="hidden"):
        build_model_for(cfg, dataset_for(cfg.data, cfg.seed))


def test_non_finite_profile_figures_are_refused(tmp_path: Path) -> None:
    from greenfl.fleet.catalog import load_fleet

    fleet = tmp_path / "f.toml"
    fleet.write_text(
        textwrap.dedent(
            """
            [[device]]
            name = "d"
            flops_per_s = inf
            active_power_w = 1
            idle_power_w = 0.1
            """
        )
    )
    with pytest.raises(FleetError, match="flops_per_s"):
        load_fleet(fleet)


def test_a_nan_in_a_trace_names_the_file_and_line(tmp_path: Path) -> None:
    from greenfl.footprint.intensity import read_trace_csv

    p = tmp_path / "t.csv"
    p.write_text("timestamp,ci_g_per_kwh\n2020-01-01T00:00:00Z,nan\n")
    with pytest.raises(FleetError, match=r"t\.csv:2: intensity must be finite"):
        read_trace_csv(p)


# ---- the run folder -----------------------------------------------------------------

HOLD = """
import sys, time
from pathlib import Path
from greenfl.ledger.folder import claim_folder
claim_folder(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


def test_a_second_process_cannot_take_a_held_folder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConfigError, match=f"in use by another greenfl run \\(pid {holder.pid}"):
            claim_folder(tmp_path)
    finally:
        holder.kill()
        holder.wait()
    lock = claim_folder(tmp_path)  # the kernel dropped the dead holder's lock
    assert (tmp_path / LOCK_FILE).read_text() == str(__import__("os").getpid())
    lock.release()


def _cli(
    args: list[str], cwd: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str]:
    """``greenfl ARGS`` in this process, from ``cwd``: (exit code, stderr)."""
    from greenfl.cli import main

    monkeypatch.chdir(cwd)
    capsys.readouterr()
    code = main(args)
    return code, capsys.readouterr().err


TINY = """
seed = 0
[data]
dataset = "digits"
num_clients = 10
[model]
name = "mlp"
[model.params]
hidden = [8]
[train]
rounds = 2
clients_per_round = 3
[report]
html = false
"""


@pytest.mark.parametrize(
    "out",
    ["", "/proc/greenfl-run", "file.txt", "file.txt/under"],
    ids=["empty", "proc", "file", "under"],
)
def test_a_bad_out_is_one_line_and_exit_2(
    tmp_path: Path, out: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "c.toml").write_text(TINY)
    code, err = _cli(["run", "c.toml", "--out", out, "--quiet"], tmp_path, capsys, monkeypatch)
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert not (tmp_path / "ledger.sqlite").exists()


def test_force_with_a_bad_trace_keeps_the_earlier_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--force validates first: a broken trace file is exit 2, and the earlier ledger and
    summary stay as they were."""
    import sqlite3

    (tmp_path / "c.toml").write_text(TINY)
    cli = (tmp_path, capsys, monkeypatch)
    assert _cli(["run", "c.toml", "--out", "run", "--quiet"], *cli)[0] == 0
    before = (tmp_path / "run" / "summary.json").read_bytes()
    fleet = tmp_path / "fleet.toml"
    from importlib import resources

    text = resources.files("greenfl.fleet").joinpath("catalog/builtin.toml").read_text()
    fleet.write_text(text.replace('trace = "traces/', 'trace = "missing/', 1))
    code, err = _cli(
        ["run", "c.toml", "--out", "run", "--force", "--quiet", "--set",
         f'fleet.catalog="{fleet}"'], *cli,
    )  # fmt: skip
    assert code == 2 and "trace" in err, err
    assert (tmp_path / "run" / "summary.json").read_bytes() == before
    conn = sqlite3.connect(tmp_path / "run" / "ledger.sqlite")
    assert conn.execute("SELECT count(*) FROM rounds").fetchone() == (2,)
    # The corrected re-run replaces it: no debris blocks it.
    assert _cli(["run", "c.toml", "--out", "run", "--force", "--quiet"], *cli)[0] == 0
    assert not list((tmp_path / "run").glob(".replaced-*"))


def test_a_start_into_a_folder_in_use_exits_2_and_leaves_it_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two starts into one --out (or --force onto a live run): the one holding the folder
    wins, the other exits 2 and touches nothing."""
    (tmp_path / "c.toml").write_text(TINY)
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        code, err = _cli(
            ["run", "c.toml", "--out", "run", "--force", "--quiet"], tmp_path, capsys, monkeypatch
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == 2 and "in use by another greenfl run" in err, err
    assert (run / "summary.json").read_text() == "{}"
    assert not (run / "ledger.sqlite").exists()


@pytest.mark.parametrize(("n", "cut"), [(3, 1), (5, 1), (9, 1), (10, 1), (20, 2), (2, 0)])
def test_trimmed_mean_trims_at_least_one_per_side(n: int, cut: int) -> None:
    from greenfl.core.messages import ClientUpdate
    from greenfl.strategy.robust import TrimmedMean, TrimmedMeanParams, trim_count

    assert trim_count(0.1, n) == cut
    values = np.arange(n, dtype=np.float32) ** 2  # skewed: a plain mean differs
    updates = [ClientUpdate(i, torch.tensor([v]), 1) for i, v in enumerate(values)]
    got = TrimmedMean(TrimmedMeanParams(trim_fraction=0.1)).aggregate(torch.zeros(1), updates)
    expected = np.sort(values)[cut : n - cut].mean()
    assert float(got[0]) == pytest.approx(expected)


def test_trimmed_mean_refuses_a_cohort_it_cannot_trim() -> None:
    from greenfl.factories import run_strategy_for

    # refused where the run's strategy is built (greenfl.run and serve build it so)
    cfg = build_config({}, ["strategy.name=trimmed_mean", "train.clients_per_round=2"])
    with pytest.raises(ConfigError, match="3 or more clients"):
        run_strategy_for(cfg)


# ---- identity and floods --------------------------------------------------------------


def test_a_client_token_admits_its_own_id_only() -> None:

    import grpc

    from greenfl.clients.validate import PROTOCOL_VERSION
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.security import client_token, verify_token
    from greenfl.deploy.server.sessions import Refusal, admit
    from greenfl.fleet.catalog import load_fleet
    from greenfl.fleet.population import Population

    # a token names its client, run, issue time and expiry under the secret's MAC (issue 29)
    assert verify_token("s3cret", client_token("s3cret", 4), 4, "", {}).client_id == 4
    pop = Population.assign(load_fleet(), np.full(8, 10), seed=0)

    def join(cid: int, token: str, per_client: bool = True) -> tuple[str, int]:
        req = pb.JoinRequest(protocol_version=PROTOCOL_VERSION, token=token, client_id=cid)
        return admit(req, pop, "s3cret", None, per_client)

    assert join(4, client_token("s3cret", 4))[1] == 0
    for cid, token in [(3, client_token("s3cret", 4)), (4, "s3cret"), (4, client_token("x", 4))]:
        with pytest.raises(Refusal) as exc:
            join(cid, token)
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert join(3, "s3cret", per_client=False)[1] == 0  # deploy.auth = "shared"


def test_issue_token_prints_the_clients_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from greenfl.cli import main
    from greenfl.deploy.security import verify_token

    (tmp_path / "secret").write_text("s3cret\n")
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--token-file", "secret", "--issue-token", "7"]) == 0
    # tokens carry their issue time: the printed one verifies as client 7's
    assert verify_token("s3cret", capsys.readouterr().out.strip(), 7, "", {}).client_id == 7
    assert main(["serve", "--issue-token", "7"]) == 2
    capsys.readouterr()
    # Beyond int64, or beyond the run's population when a config is given: one line, exit 2.
    assert main(["serve", "--token-file", "secret", "--issue-token", str(2**70)]) == 2
    (tmp_path / "c.toml").write_text("[data]\nnum_clients = 4\n[train]\nclients_per_round = 2\n")
    assert main(["serve", "c.toml", "--token-file", "secret", "--issue-token", "4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(line.startswith("error:") for line in err), err
    assert "0..3" in err[1]
    assert main(["serve", "c.toml", "--token-file", "secret", "--issue-token", "3"]) == 0


def test_a_duplicate_in_an_open_round_has_its_own_reason() -> None:
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.server.rounds import late_reason
    from greenfl.deploy.server.sessions import Pending

    judged = Pending("t1", "s1", 4, 10, 10)
    judged.report = ClientReport(1, "completed", None, torch.zeros(1), 10, 1.0, 0.1, 1, 1)
    assert late_reason(judged, None, pb.Update(task_id="t1")).startswith("duplicate: round 4")
    assert late_reason(None, judged, pb.Update(task_id="t1")).startswith("too late: round 4")
    assert late_reason(None, None, pb.Update(task_id="t9")) == "no open task with this id"


def test_the_join_bucket_and_the_bounded_log() -> None:
    import logging

    from greenfl.deploy.server.ratelimit import BoundedLog, TokenBucket

    now = [0.0]
    bucket = TokenBucket(rate_per_s=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take() for _ in range(5)] == [True, True, True, False, False]
    now[0] = 1.0  # two more tokens
    assert [bucket.take() for _ in range(3)] == [True, True, False]

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("greenfl.test.bounded")
    logger.addHandler(Keep())
    logger.propagate = False
    bounded = BoundedLog(logger, interval_s=10.0, clock=lambda: now[0])
    for _ in range(3000):
        bounded.warning("invalid token", "refused client %d: invalid token", 1)
    now[0] = 12.0
    bounded.warning("invalid token", "refused client %d: invalid token", 2)
    assert len(records) == 2
    assert records[1].startswith("refused client 2") and "2999 more like it" in records[1]


def test_a_live_server_refuses_unauthenticated_updates_and_join_floods(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On a real gRPC server: an update without a live session in its metadata is refused
    UNAUTHENTICATED before it is parsed; 150 bad joins in a burst hit the join limit, and
    the server logs a handful of lines, not 150."""
    import logging

    import grpc

    from greenfl.clients.validate import PROTOCOL_VERSION
    from greenfl.core.params import ParamSpec
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy import greenfl_pb2_grpc as pbg
    from greenfl.deploy.server import transport_for as GrpcTransport
    from greenfl.factories import codec_for
    from greenfl.fleet.catalog import load_fleet
    from greenfl.fleet.population import Population

    cfg = build_config({}, ["data.num_clients=8", "train.clients_per_round=3"])
    transport = GrpcTransport(cfg, codec_for(cfg.compression), "127.0.0.1:0", token="s3cret")
    model = torch.nn.Linear(4, 2)
    pop = Population.assign(load_fleet(), np.full(8, 10), seed=0)
    port = transport.start(pop, ParamSpec.of(model))
    caplog.set_level(logging.WARNING, logger="greenfl.serve")
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = pbg.FederationStub(ch)
            up = pb.Update(protocol_version=PROTOCOL_VERSION, session_id="forged", client_id=1)
            up.tensors.tensors.add(name="w", data=b"\0" * 1_000_000)
            for meta in [(), (("greenfl-session", "forged"),)]:
                with pytest.raises(grpc.RpcError) as exc:
                    stub.SubmitUpdate(up, metadata=meta, timeout=10)
                assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
            codes = []
            for i in range(150):
                req = pb.JoinRequest(
                    protocol_version=PROTOCOL_VERSION, token="bad", client_id=i % 8
                )
                try:
                    stub.Join(req, timeout=10)
                except grpc.RpcError as e:
                    codes.append(e.code())  # type: ignore[attr-defined]
    finally:
        transport.stop()
    assert len(codes) == 150
    # the token is checked before any join budget is spent (issue 29): a forged token never
    # uses up the budget of the clients that hold real ones
    assert codes == [grpc.StatusCode.UNAUTHENTICATED] * 150
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert 1 <= len(refusals) <= 4


def _self_signed(cn: str, tmp: Path, tag: str) -> tuple[Path, Path]:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    sans = [x509.DNSName(cn), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp / f"{tag}-cert.pem", tmp / f"{tag}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_tls_failures_say_tls_and_why(tmp_path: Path) -> None:
    from greenfl.core.errors import TransportError
    from greenfl.core.params import ParamSpec
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.deploy.security import read_tls
    from greenfl.deploy.server import transport_for as GrpcTransport
    from greenfl.factories import codec_for
    from greenfl.fleet.catalog import load_fleet
    from greenfl.fleet.population import Population
    from greenfl.footprint.meters import NullMeter

    cert, key = _self_signed("localhost", tmp_path, "server")
    other_cert, other_key = _self_signed("other", tmp_path, "other")
    with pytest.raises(ConfigError, match="is not the private key of --tls-cert"):
        read_tls(cert, other_key)  # not "cannot listen on ..."
    with pytest.raises(ConfigError, match="not a PEM certificate"):
        read_tls(key, key)
    cfg = build_config({}, ["data.num_clients=4", "train.clients_per_round=3"])
    transport = GrpcTransport(
        cfg, codec_for(cfg.compression), "127.0.0.1:0", tls=read_tls(cert, key)
    )
    pop = Population.assign(load_fleet(), np.full(4, 10), seed=0)
    port = transport.start(pop, ParamSpec.of(torch.nn.Linear(4, 2)))
    try:
        for ca, name, why in [
            (other_cert, None, "unknown CA"),
            (cert, "wrong.example", "name mismatch"),
        ]:
            opts = ClientOptions(
                f"localhost:{port}", 0, ca_cert_pem=ca.read_bytes(), tls_server_name=name,
                retry_for_s=5,
            )  # fmt: skip
            with pytest.raises(TransportError, match=f"TLS: .*{why}"):
                FederatedClient(opts, NullMeter()).run()
    finally:
        transport.stop()


def test_an_absurd_trace_value_names_the_file_and_line(tmp_path: Path) -> None:
    from greenfl.core.errors import FleetError
    from greenfl.footprint.intensity import read_trace_csv

    trace = tmp_path / "huge.csv"
    trace.write_text(
        "timestamp,ci_g_per_kwh\n2020-01-01T00:00:00Z,300\n2020-01-01T01:00:00Z,1e308\n"
    )
    expected = r"huge.csv:3: intensity must be finite and in 0..100000 gCO2e/kWh, got 1e\+308"
    with pytest.raises(FleetError, match=expected):
        read_trace_csv(trace)


def test_secure_aggregation_weighs_by_the_same_bounds_before_masking() -> None:
    # The SecAgg server weighs each masked update before it can see it, so the bounds of
    # bound_round must already hold there: a declared 1e6 samples weighs as a typical client.
    samples = [100, 100, 500, 90, 20, 1_000_000]
    declared = [False, False, False, False, True, True]
    # The median of the six is 100: the 10x cap takes 1e6 to 1000; then the declared cap,
    # max(median 100, largest partition 120) = 120.
    assert bounded_weights(samples, declared, 10.0, 120) == [100, 100, 500, 90, 20, 120]
    assert bounded_weights(samples, declared, None, 120) == samples

    seen: dict[int, float] = {}

    class Capture(SecAggRounds):
        def _run(self, round_idx, ids, pending, vector_length, w):  # type: ignore[no-untyped-def]
            seen.update(w)
            raise SecAggError("stop here: the weights are what this test reads")

    rounds = Capture(SecAggOptions(), threading.Condition(), {}, {})
    reports = {c: _report(c, torch.ones(4), n) for c, n in enumerate(samples)}
    pending = {c: Pending(f"t{c}", f"s{c}", 1, 0, n) for c, n in enumerate(samples)}
    out = rounds.aggregate(1, reports, pending, 4, 10.0, declared={4, 5}, largest_partition=120)
    assert seen == {0: 100.0, 1: 100.0, 2: 500.0, 3: 90.0, 4: 20.0, 5: 120.0}
    assert all(r.status == "failed" for r in out.values())
