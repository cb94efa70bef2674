"""The ledger's hash chain and the run's fingerprints (issue 29, "a record that cannot be
rewritten unnoticed"): every kind of edit the issue's probe made between a kill and a resume
is named by ``greenfl verify`` and refused by ``--resume`` (exit 2, one line), unless
``--accept-changes`` records it; a non-finite model or a corrupt random-generator state is
never resumed, and the ledger is left as it was."""

from __future__ import annotations

import io
import json
import math
import shutil
import sqlite3
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from greenfl.cli import main
from greenfl.config import RunConfig, build_config
from greenfl.core.errors import LedgerError
from greenfl.engine.resume import STATE_KEY
from greenfl.engine.snapshot import MODEL_ARRAY
from greenfl.factories import build_loop
from greenfl.ledger import fingerprint, store
from greenfl.ledger.integrity import verify_run

FLEET = Path(__file__).resolve().parents[1] / "examples" / "worlds" / "fleet-DE.toml"
TRACE = Path(__file__).resolve().parents[1] / "src/greenfl/fleet/catalog/traces/DE-2020.csv"


@pytest.fixture(autouse=True)
def _fixed_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    # Other work commits to this checkout while tests run: the code fingerprint must not
    # move under a test (a change of code is tested on its own, below).
    monkeypatch.setattr(fingerprint, "git_commit", lambda: "c0ffee")


def _fleet(folder: Path) -> Path:
    """fleet-DE.toml with its trace beside it, in a folder of the test's own."""
    folder.mkdir(parents=True, exist_ok=True)
    text = FLEET.read_text().replace("../../src/greenfl/fleet/catalog/traces/DE-2020.csv", "DE.csv")
    (folder / "fleet.toml").write_text(text)
    shutil.copy(TRACE, folder / "DE.csv")
    return folder / "fleet.toml"


def _config(fleet: Path) -> RunConfig:
    return build_config(
        {
            "data": {"num_clients": 20},
            "train": {"rounds": 5, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
            "fleet": {"catalog": str(fleet)},
            "report": {"html": False},
        }
    )


@pytest.fixture(scope="module")
def interrupted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of 5 rounds interrupted after round 3 (its ledger marked interrupted)."""
    base = tmp_path_factory.mktemp("chain")
    cfg = _config(_fleet(base / "fleet"))
    loop = build_loop(cfg, base / "run")
    for _ in range(3):
        loop.run_round()
    loop.ledger.finish("interrupted", "interrupted")
    loop.ledger.close()
    return base


@pytest.fixture
def run(interrupted_run: Path, tmp_path: Path) -> Iterator[Path]:
    """A copy of the interrupted run's folder. Its config names the module's fleet file,
    which a test may edit: it is put back afterwards."""
    fleet = interrupted_run / "fleet"
    saved = {p: p.read_bytes() for p in fleet.iterdir()}
    shutil.copytree(interrupted_run / "run", tmp_path / "run")
    yield tmp_path / "run"
    for p, data in saved.items():
        p.write_bytes(data)


def _fleet_dir(run_dir: Path) -> Path:
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    config = json.loads(conn.execute("SELECT config_json FROM runs").fetchone()[0])
    conn.close()
    return Path(config["fleet"]["catalog"]).parent


def _sql(run_dir: Path, statement: str, *args: object) -> None:
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    conn.execute(statement, args)
    conn.commit()
    conn.close()


def _status(run_dir: Path) -> str:
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    try:
        return conn.execute("SELECT status FROM runs").fetchone()[0]
    finally:
        conn.close()


def _edit_snapshot(run_dir: Path, edit: Callable[[dict[str, np.ndarray]], None]) -> None:
    conn = sqlite3.connect(run_dir / "ledger.sqlite")
    (blob,) = conn.execute("SELECT value FROM server_state WHERE key = ?", (STATE_KEY,)).fetchone()
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    edit(arrays)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    conn.execute("UPDATE server_state SET value = ? WHERE key = ?", (buf.getvalue(), STATE_KEY))
    conn.commit()
    conn.close()


def _edit_meta(arrays: dict[str, np.ndarray], edit: Callable[[dict], None]) -> None:
    meta = json.loads(arrays["meta"].tobytes().decode())
    edit(meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)


def _swap_rngs(arrays: dict[str, np.ndarray]) -> None:
    def swap(meta: dict) -> None:
        a, b = sorted(meta["rngs"])[:2]
        meta["rngs"][a], meta["rngs"][b] = meta["rngs"][b], meta["rngs"][a]

    _edit_meta(arrays, swap)


def _times_100(arrays: dict[str, np.ndarray]) -> None:
    arrays[MODEL_ARRAY] = arrays[MODEL_ARRAY] * 100


def _edit_fleet(run_dir: Path) -> None:
    path = _fleet_dir(run_dir) / "fleet.toml"
    text = path.read_text()
    at = text.index('name = "rpi4"')
    head, tail = text[:at], text[at:]
    # the rpi4's active power, 608 W as in the issue's probe
    before = tail.split("active_power_w = ", 1)
    value_end = before[1].index("\n")
    path.write_text(head + before[0] + "active_power_w = 608.0" + before[1][value_end:])


def _edit_trace(run_dir: Path) -> None:
    path = _fleet_dir(run_dir) / "DE.csv"
    lines = path.read_text().splitlines()
    stamp, _ = lines[1].split(",")
    lines[1] = f"{stamp},6253.0"
    path.write_text("\n".join(lines) + "\n")


# (edit, the one line verify and resume name)
EDITS: dict[str, tuple[Callable[[Path], None], str]] = {
    "client energy 1e30": (
        lambda d: _sql(
            d,
            "UPDATE client_rounds SET energy_compute_j = 1e30 WHERE round = 2 AND client_id = "
            "(SELECT MIN(client_id) FROM client_rounds WHERE round = 2)",
        ),
        "ledger round 2 was edited after it was written (client_rounds)",
    ),
    "accuracy": (
        lambda d: _sql(d, "UPDATE rounds SET accuracy = 0.99 WHERE round = 1"),
        "ledger round 1 was edited after it was written (rounds)",
    ),
    "model x100": (
        lambda d: _edit_snapshot(d, _times_100),
        "the model saved with round 3 was edited after it was written",
    ),
    "swapped rng state": (
        lambda d: _edit_snapshot(d, _swap_rngs),
        "the server state saved with round 3 was edited after it was written",
    ),
    "deleted round": (
        lambda d: (
            _sql(d, "DELETE FROM client_rounds WHERE round = 2"),
            _sql(d, "DELETE FROM rounds WHERE round = 2"),
        ),
        "ledger round 2 was deleted after it was written",
    ),
    "config": (
        lambda d: _sql(
            d, "UPDATE runs SET config_json = replace(config_json, '\"lr\": 0.1', '\"lr\": 0.5')"
        ),
        "the config recorded in the ledger was edited after the run started (section train)",
    ),
    "fleet file": (_edit_fleet, "changed since the run started (device rpi4)"),
    "trace": (_edit_trace, "the trace of region DE"),
}


@pytest.mark.parametrize("kind", list(EDITS))
def test_each_edit_is_caught_by_verify_and_by_resume(
    run: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    digest = verify_run(run)
    assert len(digest) == 64 and main(["verify", str(run)]) == 0
    assert capsys.readouterr().out.strip() == digest
    edit, line = EDITS[kind]
    edit(run)
    with pytest.raises(LedgerError, match=_literal(line)):
        verify_run(run)
    assert main(["verify", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0]
    assert main(["run", "--out", str(run), "--resume", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and line in err[0], err
    assert _status(run) == "interrupted"  # refused before anything was touched


def _literal(text: str) -> str:
    import re

    return re.escape(text)


def test_accepted_changes_are_recorded_and_the_run_goes_on(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(run, "UPDATE rounds SET accuracy = 0.99 WHERE round = 1")
    _edit_fleet(run)
    assert main(["run", "--out", str(run), "--resume", "-q", "--accept-changes"]) == 0
    err = capsys.readouterr().err
    assert "accepted and recorded in the ledger: ledger round 1 was edited" in err
    conn = sqlite3.connect(run / "ledger.sqlite")
    bodies = [
        json.loads(b) for (b,) in conn.execute("SELECT body FROM chain WHERE kind = 'change'")
    ]
    rounds = [r for (r,) in conn.execute("SELECT round FROM rounds ORDER BY round")]
    status = conn.execute("SELECT status FROM runs").fetchone()[0]
    conn.close()
    what = bodies[-1]["what"]
    assert what[0] == "ledger round 1 was edited after it was written (rounds)"
    assert any("(device rpi4)" in w for w in what) and "when_utc" in bodies[-1]
    assert rounds == [1, 2, 3, 4, 5] and status == "completed"
    verify_run(run)  # the chain agrees with the ledger as accepted, and its later rounds


def test_a_code_change_is_refused_on_resume_but_not_by_verify(
    run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(fingerprint, "git_commit", lambda: "beef")
    verify_run(run)  # a finished run is verified by later versions too
    assert main(["run", "--out", str(run), "--resume", "-q"]) == 2
    err = capsys.readouterr().err.strip()
    assert "the code changed since the run started" in err and "commit beef" in err


def _nan_model(arrays: dict[str, np.ndarray]) -> None:
    arrays[MODEL_ARRAY] = np.full_like(arrays[MODEL_ARRAY], np.nan)


def _corrupt_rng(arrays: dict[str, np.ndarray]) -> None:
    def corrupt(meta: dict) -> None:
        name = sorted(meta["rngs"])[0]
        meta["rngs"][name]["state"] = {"state": "garbage", "inc": 1}

    _edit_meta(arrays, corrupt)


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (_nan_model, "the model saved with round 3 has NaN or infinite weights"),
        (_corrupt_rng, "saved random-generator state"),
    ],
)
def test_a_non_finite_model_or_corrupt_rng_is_never_resumed(
    run: Path,
    edit: Callable[[dict[str, np.ndarray]], None],
    line: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Even with --accept-changes: one line, exit 2, the ledger not left running."""
    _edit_snapshot(run, edit)
    assert main(["run", "--out", str(run), "--resume", "-q", "--accept-changes"]) == 2
    err = [e for e in capsys.readouterr().err.strip().splitlines() if not e.startswith("accepted")]
    assert len(err) == 1 and line in err[0], err
    assert _status(run) == "interrupted"


def test_report_refuses_an_edited_ledger_unless_accepted(
    run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _sql(run, "UPDATE client_rounds SET energy_compute_j = 1e30 WHERE round = 3")
    assert main(["report", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: ledger round 3 was edited after it was written (client_rounds)"]
    assert main(["report", str(run), "--accept-changes"]) == 0
    assert (run / "report.html").is_file()
    verify_run(run)


def test_the_model_digest_is_the_global_models_array(run: Path) -> None:
    """The writer process digests the model by its place in the snapshot: it must be the
    global model's parameters, as state.state_bytes writes them."""
    assert store.MODEL_MEMBER == (STATE_KEY, MODEL_ARRAY + ".npy")
    conn = sqlite3.connect(run / "ledger.sqlite")
    (blob,) = conn.execute("SELECT value FROM server_state").fetchone()
    (model_sha,) = conn.execute(
        "SELECT model_sha256 FROM chain WHERE kind = 'round' AND round = 3"
    ).fetchone()
    conn.close()
    loop = build_loop(build_config({"data": {"num_clients": 20}}))
    loop.restore(bytes(blob))
    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        model = npz[MODEL_ARRAY]
    assert np.array_equal(model, loop.state.global_params.numpy())
    import zipfile

    with zipfile.ZipFile(io.BytesIO(blob)) as archive:
        assert store.sha256_hex(archive.read(MODEL_ARRAY + ".npy")) == model_sha


def _packed(letters: str, floats: list[float], ints: list[int], texts: str) -> bytes:
    """The canonical form, spelled out: counts, type letters, float64s, int64s, JSON texts."""
    head = struct.pack("<QQQ", len(letters), len(floats), len(ints))
    body = struct.pack(f"<{len(floats)}d", *floats) + struct.pack(f"<{len(ints)}q", *ints)
    return head + letters.encode() + body + texts.encode()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # SQLite gives back NaN as NULL, and integral REALs as ints (and the reverse): the
        # canonical form is the same on both sides
        ([3.0, 3, float("nan"), None], _packed("iinn/", [], [3, 3], "[]")),
        ([0.1, -0.0, True, "x"], _packed("fiis/", [0.1], [0, 1], '["x"]')),
        ([1e30, math.inf, 2.0**62], _packed("ffi/", [1e30, math.inf], [2**62], "[]")),
    ],
)
def test_canonical_encoding_by_hand(values: list[object], expected: bytes) -> None:
    assert store.canonical([values]) == expected


def test_canonical_rows_are_delimited() -> None:
    assert store.canonical([[1, 2]]) != store.canonical([[1], [2]])


def test_canonical_encoding_survives_a_round_trip_through_sqlite() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (r REAL, i INTEGER, t TEXT, r2 REAL, i2 INTEGER, r3 REAL)")
    row = (3, 4.0, "a", float("nan"), 2.5, 0.1 + 0.2)
    conn.execute("INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)", row)
    back = conn.execute("SELECT * FROM t").fetchone()
    assert back == (3.0, 4, "a", None, 2.5, 0.1 + 0.2)  # what SQLite did to the values
    assert store.canonical([back]) == store.canonical([row])
