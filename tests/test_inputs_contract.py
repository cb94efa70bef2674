"""Issue 29, items 5 and 9: inputs that used to break the contract (a traceback, a silent
coercion, a 256 TB allocation) are each refused with one line naming the key or file; and
requests from callers without a session are bounded in size before they are received."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from greenfl.cli import main
from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.config import build_config, load_config
from greenfl.config.base import _bool_misplaced
from greenfl.config.load import resumed_config
from greenfl.core.errors import ConfigError
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.client.upload import UPLOAD_CHUNK_BYTES, ChunkedStub, chunks_of
from greenfl.deploy.server.listener import (
    RECEIVE_CAP_BYTES,
    SMALL_RPC_CAP_BYTES,
    SessionGate,
    listen,
    update_cap_bytes,
)
from greenfl.models.flops import training_flops_per_sample


def _cli_error(args: list[str]) -> str:
    """The one line ``greenfl ARGS`` prints, exiting 2."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(args) == 2
    lines = err.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err.getvalue()
    return lines[0]


# ---- scheduling.params: sane bounds ---------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("scheduling.params.step_s=1e-300", r"step_s: Input should be greater than or equal to 1"),
        ("scheduling.params.slack_s=1e300", r"slack_s: Input should be less than or equal to"),
        # 1e9 s of slack at the default 900 s step: 1.1 million candidates a round
        ("scheduling.params.slack_s=1e9", r"1.11e\+06 candidate starts a round; at most 200000"),
    ],
)
def test_carbon_scheduler_params_are_bounded(override: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        build_config({}, ["scheduling.name=carbon", override])
    build_config({}, ["scheduling.name=carbon", "scheduling.params.step_s=1"])  # the floor


# ---- train.batch_size: bounded, and FLOPs counted without allocating the batch --------------


def test_a_huge_batch_size_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError, match=r"train.batch_size: Input should be less than or equal"):
        build_config({}, ["train.batch_size=1e8"])
    assert build_config({}, ["train.batch_size=1000000"]).train.batch_size == 1_000_000


def test_flops_per_sample_do_not_depend_on_the_batch_and_do_not_allocate_it() -> None:
    # By hand: forward 2*64*32 + 2*32*10, weight gradients the same again, and the second
    # layer's input gradient 2*32*10 (the first layer's input needs none): 10112 per sample.
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    expected = 2 * (2 * 64 * 32 + 2 * 32 * 10) + 2 * 32 * 10
    assert training_flops_per_sample(model, (64,), 10, 16) == pytest.approx(expected, rel=1e-12)
    t0 = time.monotonic()
    # 1e8 samples of 64 floats would be 25.6 GB: counted on a small batch, it is instant.
    assert training_flops_per_sample(model, (64,), 10, 10**8) == pytest.approx(expected, rel=1e-12)
    assert time.monotonic() - t0 < 5.0


# ---- booleans never stand for numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.rounds=true", "train.rounds"),
        ("seed=false", "seed"),
        ("train.lr=true", "train.lr"),
        ("deploy.max_message_mb=true", "deploy.max_message_mb"),
    ],
)
def test_a_boolean_for_a_number_is_refused(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}: a boolean \((true|false)\) where a number"):
        build_config({}, [override])


def test_a_boolean_for_a_policy_param_is_refused_and_booleans_still_go_where_they_belong() -> None:
    with pytest.raises(ConfigError, match=r"strategy.params.mu: a boolean \(true\)"):
        build_config({}, ["strategy.name=fedprox", "strategy.params.mu=true"])
    cfg = build_config({}, ["deploy.early_close=false", "train.rounds=3"])
    assert cfg.deploy.early_close is False and cfg.train.rounds == 3
    assert _bool_misplaced(list[int], [1, True]) and not _bool_misplaced(list[int], [1, 2])
    assert not _bool_misplaced(int | bool, True) and _bool_misplaced(float | None, False)


def test_rounds_true_through_the_cli_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[train]\nrounds = true\n")
    line = _cli_error(["run", str(tmp_path / "c.toml"), "--quiet"])
    assert "train.rounds: a boolean (true) where a number" in line


# ---- duplicate keys ---------------------------------------------------------------------------


def test_a_duplicate_yaml_key_is_refused_with_its_name_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("seed: 1\ntrain:\n  rounds: 2\n  lr: 0.1\n  rounds: 200\n")
    with pytest.raises(ConfigError, match=r"c.yaml:5: duplicate key train.rounds$"):
        load_config(path)
    path.write_text("seed: 1\ntrain: {rounds: 2}\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"c.yaml:3: duplicate key seed$"):
        load_config(path)
    # The same key in two different tables, and a YAML merge key, are no duplicates.
    path.write_text(
        textwrap.dedent(
            """\
            base: &b {rounds: 2, lr: 0.1}
            train:
              <<: *b
              rounds: 3
            eval: {every: 1}
            """
        )
    )
    with pytest.raises(ConfigError, match="base: unknown key"):  # past the duplicate check
        load_config(path)


def test_a_duplicate_toml_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[train]\nrounds = 2\nrounds = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML: Cannot overwrite a value"):
        load_config(path)


# ---- an output folder that cannot be written ---------------------------------------------------

# Not even root can make a folder under /proc (and elsewhere than Linux, not at /proc).
UNWRITABLE = Path("/proc/greenfl-no-such-folder/out")


def test_export_partition_to_an_unwritable_out_is_one_line() -> None:
    line = _cli_error(["export-partition", "--out", str(UNWRITABLE)])
    assert line.startswith(f"error: --out {UNWRITABLE}: cannot write ")


def test_serve_prepares_its_out_or_says_it_cannot_in_one_line(tmp_path: Path) -> None:
    from greenfl.deploy.server.serve import prepare_out_dir

    with pytest.raises(ConfigError, match=f"--out {UNWRITABLE}: cannot write there: "):
        prepare_out_dir(UNWRITABLE)
    (tmp_path / "f").write_text("")
    with pytest.raises(ConfigError, match="which is a file"):
        prepare_out_dir(tmp_path / "f" / "run")
    prepare_out_dir(tmp_path / "a" / "run")
    assert (tmp_path / "a" / "run").is_dir() and not list((tmp_path / "a" / "run").iterdir())


# ---- --resume with --set and no CONFIG ------------------------------------------------------


def _stored_run(out: Path) -> None:
    """A folder whose ledger holds a run's config (all ``--resume`` reads of it)."""
    out.mkdir()
    cfg = build_config({}, ["train.rounds=4"])
    with sqlite3.connect(out / "ledger.sqlite") as conn:
        conn.execute("CREATE TABLE runs (run_id INTEGER PRIMARY KEY, config_json TEXT)")
        conn.execute("INSERT INTO runs VALUES (1, ?)", (json.dumps(cfg.to_dict()),))


def test_resume_with_a_deploy_override_and_no_config_keeps_the_stored_config(
    tmp_path: Path,
) -> None:
    _stored_run(tmp_path / "run")
    cfg = resumed_config(tmp_path / "run", None, ["deploy.round_timeout_s=77"])
    assert cfg.deploy.round_timeout_s == 77.0
    assert cfg.train.rounds == 4  # the stored run's, not the quickstart's 20
    with pytest.raises(ConfigError, match=r"--resume: --set changes train.rounds of the run"):
        resumed_config(tmp_path / "run", None, ["train.rounds=9", "deploy.round_timeout_s=5"])
    (tmp_path / "c.toml").write_text("[train]\nrounds = 4\n[deploy]\nround_timeout_s = 12\n")
    assert resumed_config(tmp_path / "run", tmp_path / "c.toml", []).deploy.round_timeout_s == 12
    (tmp_path / "d.toml").write_text("[train]\nrounds = 5\nlr = 0.5\n")
    with pytest.raises(ConfigError, match=r"changes train.lr, train.rounds of the run"):
        resumed_config(tmp_path / "run", tmp_path / "d.toml", [])


# ---- requests before authentication are bounded before they are received --------------------


class _Echo(pb_grpc.FederationServicer):
    """Join admits anyone to session "s1"; SubmitUpdate says how many bytes it received."""

    def Join(self, request: pb.JoinRequest, context: grpc.ServicerContext) -> pb.JoinReply:  # noqa: N802
        return pb.JoinReply(session_id="s1")

    def SubmitUpdate(self, request: pb.Update, context: grpc.ServicerContext) -> pb.Ack:  # noqa: N802
        size = sum(len(t.data) for t in request.tensors.tensors)
        return pb.Ack(accepted=True, reason=f"{size} {request.task_id}")


MAX_MESSAGE_BYTES = 4_000_000


@pytest.fixture
def gated() -> Iterator[str]:
    gate = SessionGate(lambda sid: sid == "s1", numel=10, max_message_bytes=MAX_MESSAGE_BYTES)
    server, port = listen("127.0.0.1:0", _Echo(), MAX_MESSAGE_BYTES, 8, None, gate)
    yield f"127.0.0.1:{port}"
    server.stop(None)


def _update(size: int) -> pb.Update:
    up = pb.Update(protocol_version=PROTOCOL_VERSION, session_id="s1", task_id="t7")
    up.tensors.tensors.add(name="w", data=b"\1" * size)
    return up


def _submit(channel: grpc.Channel, update: pb.Update, session: str) -> pb.Ack:
    return ChunkedStub(channel).SubmitUpdate(
        update, timeout=30, metadata=(("greenfl-session", session),)
    )


def test_a_live_sessions_large_update_arrives_whole_in_chunks(gated: str) -> None:
    size = 3 * RECEIVE_CAP_BYTES  # larger than any one message the server takes
    with grpc.insecure_channel(gated) as ch:
        ack = _submit(ch, _update(size), "s1")
    assert ack.accepted and ack.reason == f"{size} t7"
    assert UPLOAD_CHUNK_BYTES < RECEIVE_CAP_BYTES
    assert [len(c) for c in chunks_of(b"abcde", 2)] == [2, 2, 1] and list(chunks_of(b"")) == [b""]


def test_an_update_past_its_cap_is_refused_as_it_streams(gated: str) -> None:
    cap = update_cap_bytes(MAX_MESSAGE_BYTES)
    with grpc.insecure_channel(gated) as ch, pytest.raises(grpc.RpcError) as exc:
        _submit(ch, _update(cap + 1), "s1")
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert f"over its {cap}-byte limit" in exc.value.details()  # type: ignore[attr-defined]


def test_oversized_requests_without_a_session_are_refused(gated: str) -> None:
    opts = [("grpc.max_send_message_length", 2**31 - 1)]
    with grpc.insecure_channel(gated, options=opts) as ch:
        stub = pb_grpc.FederationStub(ch)
        for size, limit in [(2 * SMALL_RPC_CAP_BYTES, "its 65536-byte limit"),
                            (2 * RECEIVE_CAP_BYTES, "larger than max")]:  # fmt: skip
            req = pb.JoinRequest(protocol_version=PROTOCOL_VERSION, token="x" * size)
            with pytest.raises(grpc.RpcError) as exc:
                stub.Join(req, timeout=30)
            assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            assert limit in exc.value.details()  # type: ignore[attr-defined]
        with pytest.raises(grpc.RpcError) as exc:  # no session: refused, payload unread
            _submit(ch, _update(10), "s2")
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert stub.Join(pb.JoinRequest(token="ok"), timeout=30).session_id == "s1"


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
def test_a_flood_of_oversized_joins_and_tasks_costs_the_server_little(tmp_path: Path) -> None:
    """Six 100 MB Join and six 100 MB Tasks calls with no token: received whole (before
    the per-message limit) they took the server up by about 110 MB each. Run with two busy
    processes beside it: on a loaded host gRPC's own HTTP/2 window (grown from the measured
    bandwidth-delay product) let the flood in by tens of MB a call, which the server's
    pinned window (listener.RECEIVE_WINDOW_BYTES) prevents."""
    import socket

    import greenfl

    (tmp_path / "c.toml").write_text("[data]\nnum_clients = 2\n[train]\nclients_per_round = 2\n")
    (tmp_path / "secret").write_text("s3cret\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{s.getsockname()[1]}"
    src = str(Path(greenfl.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": src, "OMP_NUM_THREADS": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "greenfl", "serve", "c.toml", "--address", addr, "--out", "run",
         "--token-file", "secret", "--quiet"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    busy: list[subprocess.Popen[bytes]] = []
    try:
        assert server.stderr is not None
        deadline = time.monotonic() + 120
        while "listening on" not in server.stderr.readline():
            assert time.monotonic() < deadline and server.poll() is None, "server did not start"
        before_kb = _hwm_kb(server.pid)
        busy += [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
        big = "x" * 100_000_000
        codes: list[str] = []

        def call(kind: str) -> None:
            opts = [("grpc.max_send_message_length", 2**31 - 1)]
            with grpc.insecure_channel(addr, options=opts) as ch:
                stub = pb_grpc.FederationStub(ch)
                try:
                    if kind == "join":
                        stub.Join(pb.JoinRequest(token=big), timeout=60)
                    else:
                        next(iter(stub.Tasks(pb.TaskRequest(session_id=big), timeout=60)))
                    codes.append("OK")
                except grpc.RpcError as exc:
                    codes.append(exc.code().name)

        threads = [threading.Thread(target=call, args=(k,)) for k in ["join", "tasks"] * 6]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        grown_mb = (_hwm_kb(server.pid) - before_kb) / 1024
    finally:
        for proc in [server, *busy]:
            proc.kill()
            proc.wait()
    assert codes == ["RESOURCE_EXHAUSTED"] * 12
    # 1.2 GB of requests; received whole they would cost over 1,000 MB. Bounded by 12 calls
    # x (1 MiB message cap + 4 MiB window) = 60 MiB, plus allocator noise. Measured here:
    # 11-25 MB; with gRPC's grown window, 22-338 MB.
    assert grown_mb < 100, grown_mb


def test_the_server_pins_its_http2_receive_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """What bounds the flood above on a loaded host: gRPC's bandwidth-delay probe is off and
    each stream is granted a fixed 4 MiB (4 MiB a round trip, 30 MB/s at 100 ms measured in
    bench/upload_window.py, far above a phone's uplink); no message over 1 MiB. Read from
    the options the listening server is built with."""
    from greenfl.deploy.server import listener

    built: list[list[tuple[str, int]]] = []
    real_server = grpc.server

    def recording_server(*args: object, **kwargs: object) -> grpc.Server:
        built.append(list(kwargs["options"]))  # type: ignore[call-overload]
        return real_server(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(listener.grpc, "server", recording_server)
    gate = listener.SessionGate(lambda sid: False)
    server, _ = listener.listen("127.0.0.1:0", pb_grpc.FederationServicer(), 10_000_000, 1,
                                None, gate)  # fmt: skip
    server.stop(None)
    pinned = dict(built[0])
    assert pinned["grpc.http2.bdp_probe"] == 0
    assert pinned["grpc.http2.lookahead_bytes"] == 4 * 1024 * 1024
    assert pinned["grpc.max_receive_message_length"] == 1024 * 1024
    assert pinned["grpc.max_send_message_length"] == 2 * 10_000_000 + 1024 * 1024
    assert "grpc.http2.bdp_probe" not in dict(listener.server_options(10_000_000, None))
