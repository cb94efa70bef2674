"""The gaps an audit of issue 29 found after its first fixes, each closed and tested: a full
disk at COMMIT leaves the run ``failed`` (GAP 5); a reported compute time below what the
enrolled device needs is disputed (GAP 1); a loss far above the peers' is disputed (GAP 2);
a declared data size the observed time rules out at the device's peak rate is disputed, and
a capped weight says so (GAP 3); an all-zero update is refused as free riding (GAP 4).
Expected figures are worked out by hand in the comments."""

from __future__ import annotations

import io
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from greenfl.cli import main
from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression import CODECS  # noqa: F401  (registers the codecs)
from greenfl.config import CompressionConfig, build_config
from greenfl.core.errors import LedgerError
from greenfl.core.messages import ClientReport
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.checks import ClaimRules, UpdateRules, judge_update
from greenfl.deploy.server.claims import (
    LossPeers,
    judge_claims,
    judge_compute,
    plausible_samples,
)
from greenfl.deploy.server.plausible import RoundModel, bound_round
from greenfl.deploy.server.quarantine import Quarantine, counts_against
from greenfl.deploy.server.replay import ReplayGuard, sketch_of
from greenfl.deploy.server.sessions import Pending, Session
from greenfl.deploy.server.trust import TrustSettings
from greenfl.deploy.server.witness import Witness
from greenfl.deploy.wire import params_to_pb
from greenfl.engine.resume import STATE_KEY
from greenfl.engine.snapshot import MODEL_ARRAY
from greenfl.factories import build_loop, codec_for
from greenfl.ledger import child, fingerprint, store
from greenfl.ledger.integrity import verify_run
from greenfl.ledger.writer import DiskFull, LedgerWriter

# ---- GAP 5: a full disk at COMMIT ----------------------------------------------------------


class FullAtCommit:
    """A ledger connection whose next ``fails`` COMMITs find the disk full, as SQLite says
    it when the WAL cannot grow at COMMIT, leaving the transaction open (the worst case:
    SQLite may or may not have rolled it back itself)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self.fails = 0
        self.commits_refused = 0

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        if sql == "COMMIT" and self.fails > 0:
            self.fails -= 1
            self.commits_refused += 1
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:  # everything else: the real connection's
        return getattr(self._conn, name)


def test_finish_on_a_disk_full_at_commit_frees_the_reserve_and_says_failed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ledger.sqlite"
    writer = LedgerWriter(path, background=False)
    reserve = tmp_path / "ledger.sqlite-reserve"
    writer.begin_run({"seed": 0}, {"path": "builtin"}, "0")
    conn = FullAtCommit(writer._conn)
    writer._conn = conn  # type: ignore[assignment]
    conn.fails = 1  # the status write's COMMIT finds the disk full once
    writer.finish("failed", "disk full")
    # the first COMMIT was refused (and rolled back: a second BEGIN would fail otherwise),
    # the reserve given up, the status written again
    assert conn.commits_refused == 1 and not reserve.exists()
    writer.close()
    check = sqlite3.connect(path)
    assert check.execute("SELECT status, stop_reason FROM runs").fetchone() == (
        "failed",
        "disk full",
    )
    check.close()


def test_a_commit_on_a_full_disk_is_disk_full_and_leaves_no_transaction_open(
    tmp_path: Path,
) -> None:
    writer = LedgerWriter(tmp_path / "ledger.sqlite", background=False)
    conn = FullAtCommit(writer._conn)
    writer._conn = conn  # type: ignore[assignment]
    conn.fails = 1
    with pytest.raises(DiskFull, match=r"the disk holding .*ledger.sqlite is full"):
        writer.set_meta("k", "v")
    assert not conn.in_transaction  # rolled back: the write lock is not held
    assert "k" not in writer.meta()  # nothing half-written
    writer.set_meta("k", "w")  # the next transaction starts and commits
    assert writer.meta()["k"] == "w"
    writer.close()


LONG_RUN = """\
seed = 0
[data]
num_clients = 20
[train]
rounds = 40
clients_per_round = 5
local_epochs = 1
batch_size = 16
[stop]
target_accuracy = 1.0
[report]
html = false
"""


@pytest.fixture
def full_after_round_3(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[FullAtCommit]]:
    """An inline ledger whose COMMIT of round 4 finds the disk full, and so does the COMMIT
    of the status write after it: the disk stays full until the reserve is given up."""
    monkeypatch.setattr(child.WriterProcess, "supported", staticmethod(lambda: False))
    made: list[FullAtCommit] = []
    real_connect, real_write = store.connect, store.write_rounds

    def connect(path: str) -> sqlite3.Connection:
        made.append(FullAtCommit(real_connect(path)))
        return made[-1]  # type: ignore[return-value]

    def write(conn: FullAtCommit, sql: store.RoundSQL, round_rows, *rest) -> None:  # type: ignore[no-untyped-def]
        if round_rows[0][0] == 4:
            conn.fails = 2  # this round's COMMIT, then the status's first
        return real_write(conn, sql, round_rows, *rest)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "connect", connect)
    monkeypatch.setattr(store, "write_rounds", write)
    yield made


def test_a_run_whose_commit_finds_the_disk_full_ends_failed_in_one_line(
    tmp_path: Path,
    full_after_round_3: list[FullAtCommit],
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "run.toml").write_text(LONG_RUN)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # no "while ending the run: ..." before it
    assert re.match(
        r"error: the ledger could not write round 4: the disk holding .* is full", err[0]
    ), err[0]
    assert sum(c.commits_refused for c in full_after_round_3) == 2
    conn = sqlite3.connect(out / "ledger.sqlite")
    status, reason = conn.execute("SELECT status, stop_reason FROM runs").fetchone()
    count, top = conn.execute("SELECT COUNT(*), MAX(round) FROM rounds").fetchone()
    conn.close()
    assert status == "failed" and "is full" in reason
    assert (count, top) == (3, 3)  # rounds 1-3 whole, nothing of round 4
    assert not (out / "ledger.sqlite-reserve").exists()
    verify_run(out)


# ---- the deployment's claims: shared pieces -------------------------------------------------
# A phone: 3.5 W active, 1e9 FLOP/s; the task asks 2e9 FLOPs, so 2 s of compute and 7 J by
# its profile. Its update arrives 10 s after the client took the task (Pending below).
PHONE = RoundModel(expected_flops=2e9, flops_per_s=1e9, power_w=3.5, timeout_s=300.0, factor=10)
TOL = 3.0
SPEC = ParamSpec.of(torch.nn.Linear(3, 2))  # 8 values
RULES = UpdateRules(codec_for(CompressionConfig()), SPEC, 10_000_000, max_update_norm=None)
TRUST = TrustSettings(
    self_described=False,
    enrolment_file=None,
    claim_tolerance=TOL,
    peer_outlier_mads=6.0,
    replay_distance=1e-3,
    run_id="",
    revocation_file=None,
    join_rate_per_client_per_s=0.2,
)


def _update(
    cid: int,
    round_idx: int,
    delta: torch.Tensor,
    compute_s: float = 2.0,
    energy_j: float | None = None,
    loss: float = 0.5,
) -> pb.Update:
    fp = pb.Footprint(flops=2e9, compute_s=compute_s)
    if energy_j is not None:
        fp.energy_j = energy_j
    return pb.Update(
        protocol_version=PROTOCOL_VERSION,
        client_id=cid,
        round=round_idx,
        task_id="t",
        tensors=pb.TensorList(tensors=params_to_pb(delta, SPEC)),
        num_samples=10,
        loss=loss,
        footprint=fp,
    )


def _pending(round_idx: int, model: RoundModel = PHONE) -> Pending:
    # delivered 10 s ago: the server saw the task out ~10 s
    return Pending("t", "s", round_idx, 1000, 10, delivered_at=time.monotonic() - 10.0, model=model)


def _settle(w: Witness, req: pb.Update, model: RoundModel = PHONE) -> ClientReport:
    """One update through the server's judgement as the servicer runs it: its own checks
    (checks.judge_update), then the witness's (free riding, replay, compute time, loss)."""
    p = _pending(int(req.round), model)
    cid = int(req.client_id)
    rules = ClaimRules(TOL, "phone-mid", False, w.peers)
    report = judge_update(req, 500, cid, p, RULES, rules)
    report, sk = w.unreplayed(p, report, w.sketch(report))
    w.settled(p, report, 500, 0.0, sk)
    return report


def _delta(seed: int) -> torch.Tensor:
    return torch.randn(SPEC.numel, generator=torch.Generator().manual_seed(seed))


# ---- GAP 1: compute time --------------------------------------------------------------------


def test_a_compute_time_under_the_estimate_by_more_than_the_tolerance_is_disputed() -> None:
    # the estimate: the phone's 2 s for the work, at most the 10 s seen
    why = judge_compute(PHONE, 2.0 / 9.9, 10.0, TOL)  # 0.202 s: 1/9.9 of 2 s
    assert why is not None and why.startswith(
        "disputed: reported 0.202 s of compute, 0.101x the server's estimate 2 s"
    )
    assert judge_compute(PHONE, 2.0 / 2.9, 10.0, TOL) is None  # 0.69 s: within 3x
    assert judge_compute(PHONE, 8.0, 10.0, TOL) is None  # slower than the profile: believed
    # the task came back in 0.5 s (a device faster than its profile): the estimate is the
    # 0.5 s seen, so 0.4 s is believed and 0.1 s (0.2x) is not
    assert judge_compute(PHONE, 0.4, 0.5, TOL) is None
    assert "0.2x the server's estimate 0.5 s" in (judge_compute(PHONE, 0.1, 0.5, TOL) or "")


def test_a_meterless_client_cutting_its_time_is_charged_the_estimate_an_honest_one_not() -> None:
    w = Witness(TRUST)
    # honest, no meter, 4x slower than its profile (8 s of the 10 s seen): believed, and
    # charged by the accounting as 3.5 W x 8 s = 28 J (measured_energy_j None)
    honest = _settle(w, _update(1, 3, _delta(1), compute_s=8.0))
    assert honest.status == "completed" and not honest.disputed and honest.reason is None
    assert honest.measured_compute_s == pytest.approx(8.0) and honest.measured_energy_j is None
    # the audit's liar: 2 s / 9.9 = 0.202 s, which passes the hard bound (2 s / 10 = 0.2 s)
    liar = _settle(w, _update(2, 3, _delta(2), compute_s=2.0 / 9.9))
    assert liar.status == "completed" and liar.disputed and liar.delta is not None
    assert (liar.reason or "").startswith("disputed: reported 0.202 s of compute, 0.101x")
    # charged the estimate: 2 s of compute, 3.5 W x 2 s = 7 J, the work's 2e9 FLOPs
    assert liar.measured_compute_s == pytest.approx(2.0)
    assert liar.measured_energy_j == pytest.approx(7.0) and liar.energy_estimated
    assert liar.server_estimate_j == pytest.approx(7.0) and liar.flops == 2e9
    assert not counts_against(liar)  # like an energy dispute: the estimate replaced it


# ---- GAP 2: loss ----------------------------------------------------------------------------


def test_a_loss_far_above_the_other_clients_is_an_outlier() -> None:
    peers = LossPeers(threshold=6.0)
    for cid, losses in ((0, (0.5, 0.5)), (1, (0.6, 0.4)), (2, (0.45, 0.55))):
        for loss in losses:
            peers.add(cid, loss)
    # logs around ln 0.5; their MAD (~0.1) is under the floor of 1, so z = ln(loss / 0.5)
    why, median = peers.judge(9, 1e30)
    assert median == pytest.approx(0.5)
    # ln(1e30 / 0.5) = 69.08 + 0.69 = 69.8
    assert why == (
        "outlier: reported loss 1e+30, 69.8 scaled MADs above the other clients' median 0.5 "
        "(deploy.peer_outlier_mads = 6)"
    )
    assert peers.judge(9, 125.0)[0] is None  # 250x: ln 250 = 5.5 < 6 (selection clips it)
    assert "6.2 scaled MADs" in (peers.judge(9, 250.0)[0] or "")  # 500x: ln 500 = 6.2
    assert peers.judge(9, 1e-6)[0] is None  # low: never flagged
    assert "is negative" in (peers.judge(9, -1.0)[0] or "")
    # its own history does not vouch for it: client 0 is judged against 1 and 2 only
    assert peers.judge(0, 1e30) == (None, None)


def test_a_1e30_loss_is_disputed_given_selection_as_the_median_and_quarantined() -> None:
    w, q = Witness(TRUST), Quarantine(rounds=5)
    for round_idx in (1, 2):
        for cid, loss in ((0, 0.5), (1, 0.6), (2, 0.4), (3, 0.5)):
            r = _settle(w, _update(cid, round_idx, _delta(10 * round_idx + cid), loss=loss))
            assert r.status == "completed" and not r.disputed
    for round_idx in (3, 4):
        liar = _settle(w, _update(9, round_idx, _delta(round_idx), loss=1e30))
        assert liar.status == "completed" and liar.disputed and liar.delta is not None
        assert (liar.reason or "").startswith("outlier: reported loss 1e+30, 69.8 scaled MADs")
        # selection gets the others' median (ln 0.4, 0.5 x4, 0.6 x2 ... median ln 0.5)
        assert liar.loss == pytest.approx(0.5)
        assert liar.measured_energy_j == pytest.approx(7.0)  # a disputed row: the estimate
        q.record(round_idx, [liar])
    assert (q.reason(9, 5) or "").startswith("quarantined until round 10")


# ---- GAP 3: declared data -------------------------------------------------------------------

# The audit's liar: a laptop-m1 (8e10 FLOP/s, 10 W) declaring 1,000,000 samples of the
# digits MLP (20,224 FLOPs a sample, 5 epochs): 1.0112e11 FLOPs, 1.264 s at its profile's
# rate, 0.4213 s at 3x it (its peak).
LAPTOP_LIE = RoundModel(1.0112e11, 8e10, 10.0, 60.0, 10)


def test_declared_data_the_wall_time_rules_out_at_the_peak_rate_is_disputed() -> None:
    v = judge_claims(LAPTOP_LIE, None, 0.35, TOL, declared=True)
    assert v.dispute == (
        "disputed data: its declared data needs 1.264 s on its enrolled device, 0.4213 s at "
        "its peak (3x its profile's FLOP/s, deploy.claim_tolerance); the task was out 0.35 s"
    )
    # weighed by what it could have trained on in 0.35 s at its profile's rate:
    # 1,000,000 x 0.35 / 1.264 = 276,898
    assert plausible_samples(LAPTOP_LIE, 0.35, 1_000_000) == 276_898
    # out 0.5 s, more than 0.4213 s: possible at its peak, not disputed (the weight cap
    # below bounds it instead)
    assert judge_claims(LAPTOP_LIE, None, 0.5, TOL, declared=True).dispute is None


def _report(cid: int, n: int) -> ClientReport:
    return ClientReport(cid, "completed", None, torch.ones(4), n, 1.0, 0.5, 10, 10)


def test_a_capped_weight_says_so_in_its_reason() -> None:
    reports = [_report(0, 180), _report(1, 180), _report(2, 180), _report(7, 100_000)]
    reports[3] = reports[3]._replace(reason="self-described: x")
    out = bound_round(reports, None, 10.0, declared={7}, largest_partition=225)
    # the round's median is 180: 10x it is 1,800; a declared size is then capped at a
    # typical client's, max(225 largest partition, 180 median) = 225
    assert [r.num_samples for r in out] == [180, 180, 180, 225]
    assert [r.reason for r in out[:3]] == [None, None, None]
    assert out[3].reason == (
        "self-described: x; weight capped: 100000 local samples declared, weighed as 225, a "
        "typical client's (the largest partition, or the round's median size; "
        "deploy.sample_bound_factor)"
    )
    assert out[3].status == "completed" and not counts_against(out[3])  # not a strike
    # a partition the server assigned, over 10x the median: capped there, and said so
    big = bound_round([_report(0, 10), _report(1, 10), _report(2, 500)], None, 10.0)
    assert big[2].num_samples == 100
    assert big[2].reason == (
        "weight capped: 500 samples weighed as 100, 10x the round's median 10 "
        "(deploy.sample_bound_factor)"
    )


def test_two_data_liars_do_not_set_their_own_cap() -> None:
    # two declared 100,000s among two partitions of 180: the median of all four is 50,090,
    # which would weigh each liar 278x an honest client; the median of the sizes the server
    # knows is 180
    out = bound_round(
        [_report(0, 180), _report(1, 180), _report(5, 100_000), _report(7, 100_000)],
        None,
        10.0,
        declared={5, 7},
    )
    assert [r.num_samples for r in out] == [180, 180, 180, 180]


def test_selection_sees_a_declared_size_at_most_as_a_typical_client() -> None:
    def settle(w: Witness, cid: int, declared: int, partition: int = 0) -> int | None:
        sess = Session(f"s{cid}", cid, "phone-mid", "peer", num_samples=declared)
        w.rules_for(sess)
        n = declared or partition
        p = Pending("t", sess.session_id, 1, 1000, n, delivered_at=time.monotonic(), model=PHONE)
        report = ClientReport(cid, "completed", None, torch.ones(4), n, 2e9, 0.5, 10, 10)
        return w.settled(p, report, 500, 0.0, None)

    w = Witness(TRUST, largest_partition=225)
    # what aggregation weighs it as, the largest partition, 225, is what selection sees
    assert settle(w, 7, 100_000) == 225
    assert settle(w, 8, 200) is None  # a declared size under it is left alone
    assert settle(w, 0, 0, partition=300) is None  # a partition the server made: as it is
    assert settle(Witness(TRUST), 7, 100_000) is None  # no partitions known: the claim stands


def test_the_default_sample_cap_refuses_the_issues_million() -> None:
    assert build_config({}).deploy.max_client_samples == 100_000


# ---- GAP 4: free riding with a zero update --------------------------------------------------


def test_a_zero_or_vanishing_update_is_free_riding() -> None:
    guard = ReplayGuard(distance=1e-3, seed=0)
    zero = sketch_of(torch.zeros(50))
    assert guard.free_riding(5, zero) == (
        "free riding: the update is all zeros, but its task asked for training"
    )
    tiny = sketch_of(torch.full((4,), 0.5e-4))  # norm sqrt(4 x 0.25e-8) = 1e-4
    assert guard.free_riding(5, tiny) is None  # no other clients' norms to compare with
    for cid, norm in ((1, 1.0), (2, 2.0), (3, 3.0)):  # their median: 2, so the bar is 2e-4
        guard.accept(cid, 1, sketch_of(torch.tensor([norm, 0.0, 0.0, 0.0])))
    assert guard.free_riding(5, tiny) == (
        "free riding: update norm 0.0001 is under 0.0001 of the other clients' median 2, but "
        "its task asked for training"
    )
    assert guard.free_riding(5, sketch_of(torch.full((4,), 0.5e-3))) is None  # norm 1e-3


def test_a_zero_update_is_refused_unless_the_task_asked_for_no_steps() -> None:
    w, q = Witness(TRUST), Quarantine(rounds=5)
    for round_idx in (1, 2):
        r = _settle(w, _update(5, round_idx, torch.zeros(SPEC.numel)))
        assert r.status == "rejected" and r.delta is None
        assert r.reason == "free riding: the update is all zeros, but its task asked for training"
        q.record(round_idx, [r])
    assert (q.reason(5, 3) or "").startswith("quarantined until round 8")  # 2 + 1 + 5
    # partial work of no steps: the server's model of the task is 0 FLOPs; zero is the answer
    idle = RoundModel(0.0, 1e9, 3.5, 300.0, 10)
    req = _update(6, 3, torch.zeros(SPEC.numel), compute_s=0.0)
    req.footprint.flops = 0.0
    r = _settle(w, req, idle)
    assert r.status == "completed" and r.reason is None


# ---- minor notes ----------------------------------------------------------------------------


def test_serve_on_a_read_only_out_says_it_cannot_write_there(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = Path("/proc/greenfl-no-such-folder/run")  # cannot be made, even by root
    assert main(["serve", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --out {out}: cannot write there: "), err


def test_join_help_says_the_token_file_holds_the_clients_own_token() -> None:
    from typer.testing import CliRunner

    from greenfl.cli import app

    text = " ".join(CliRunner().invoke(app, ["join", "--help"]).output.split())
    assert "File holding this client's own token" in text
    assert "File holding the shared token" not in text  # the old help, from before tokens


def test_accept_changes_records_nothing_when_the_model_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fingerprint, "git_commit", lambda: "c0ffee")  # others commit meanwhile
    cfg = build_config(
        {
            "data": {"num_clients": 20},
            "train": {"rounds": 5, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
            "report": {"html": False},
        }
    )
    run = tmp_path / "run"
    loop = build_loop(cfg, run)
    for _ in range(3):
        loop.run_round()
    loop.ledger.finish("interrupted", "interrupted")
    loop.ledger.close()
    conn = sqlite3.connect(run / "ledger.sqlite")
    (blob,) = conn.execute("SELECT value FROM server_state WHERE key = ?", (STATE_KEY,)).fetchone()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays[MODEL_ARRAY] = np.full_like(arrays[MODEL_ARRAY], np.nan)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    conn.execute("UPDATE server_state SET value = ? WHERE key = ?", (buf.getvalue(), STATE_KEY))
    conn.commit()
    links = conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0]
    conn.close()
    capsys.readouterr()
    assert main(["run", "--out", str(run), "--resume", "-q", "--accept-changes"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: the model saved with round 3 has NaN or infinite weights (or is not a model): "
        "it is not resumed"
    ]
    conn = sqlite3.connect(run / "ledger.sqlite")
    assert conn.execute("SELECT COUNT(*) FROM chain").fetchone()[0] == links  # no 'change'
    assert conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    conn.close()
    with pytest.raises(LedgerError, match="the model saved with round 3 was edited"):
        verify_run(run)  # the edit still stands unaccepted
