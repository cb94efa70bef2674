"""Sub-models in a real deployment (issue 31): a `serve` on loopback and `join` clients
(threads of this process running the real client code) with [submodel] heterofl, widths
1 and 0.5, choice fixed. Each client trains the width it is told on the slice it is sent;
the ledger keeps its width, FLOPs and the real bytes of its slice; the global model is the
simulated run's; an update of the wrong slice length is refused with its reason.

The model is the quickstart's MLP 64-[64]-10 on digits. By hand, from its layer shapes:
width 1 keeps 64 hidden units, 64*64 + 64 + 64*10 + 10 = 4810 parameters; width 0.5 keeps
ceil(0.5 * 64) = 32, 64*32 + 32 + 32*10 + 10 = 2410."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from greenfl.config import RunConfig, load_config
from tests.integration.loopback import (
    GlobalParams,
    assert_simulation_equal,
    config_text,
    fit_tasks,
    framed,
    one_torch_thread,  # noqa: F401  (autouse)
    serve_and_join,
    serve_with_rogue,
    tensor_len,
    update_to,
    varint_len,
)
from tests.ledger_sql import rows

N_CLIENTS, ROUNDS, SEED = 2, 2, 3
PARAMS = {1.0: 4810, 0.5: 2410}  # by hand, above
HIDDEN = {1.0: 64, 0.5: 32}
WIDTH_OF = {0: 1.0, 1: 0.5}  # choice fixed: client i gets widths[i mod 2]

SUBMODEL = """
[submodel]
name = "heterofl"
widths = [1.0, 0.5]
choice = "fixed"
"""
CONFIG = config_text(
    N_CLIENTS, ROUNDS, seed=SEED, sections=SUBMODEL, deploy=f"min_clients = {N_CLIENTS}"
)


def tensors_len(width: float) -> int:
    """The protobuf bytes of the width's slice as its repeated Tensor fields (names
    0.weight, 0.bias, 2.weight, 2.bias; shapes as packed varints; dtype "float32"; the
    float32 data), counted by hand from the encoding rules."""
    h = HIDDEN[width]
    shapes = {"0.weight": (h, 64), "0.bias": (h,), "2.weight": (10, h), "2.bias": (10,)}
    return sum(tensor_len(name, shape) for name, shape in shapes.items())


def task_bytes(width: float, round_idx: int, client_id: int, cfg: RunConfig) -> int:
    """The FIT task's serialized size, by hand: kind, protocol version and round (a tag
    and a one-byte varint each), the task id "r<round>-c<client>-<12 hex>", the slice's
    tensors, the instructions (varints for epochs and batch size, an 8-byte double for lr
    and, below full width, for the width; zero fields are not sent), the seed."""
    t = cfg.train
    assert t.momentum == 0 and t.max_local_steps == 0  # not sent
    instructions = (1 + varint_len(t.local_epochs)) + (1 + varint_len(t.batch_size)) + 9
    if width != 1.0:
        instructions += 9
    task_id = len(f"r{round_idx}-c{client_id}-") + 12
    return (
        3 * 2 + framed(task_id) + tensors_len(width) + framed(instructions) + 1 + varint_len(SEED)
    )


@pytest.mark.slow  # 9 s alone, 20 s on a loaded 2-core machine
def test_a_deployed_client_trains_its_width_and_the_wire_carries_only_its_slice(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    deployed = GlobalParams()
    clients, result = serve_and_join(cfg, tmp_path / "run", N_CLIENTS, [deployed])

    # Each client trained its width every round, on the slice it was sent.
    for c in clients:
        cid = c.opts.client_id
        assert [r["width"] for r in c.stats.history] == [WIDTH_OF[cid]] * ROUNDS
        assert [r["bytes_down"] for r in c.stats.history] == [
            task_bytes(WIDTH_OF[cid], r, cid, cfg) for r in range(1, ROUNDS + 1)
        ]

    got_rows = rows(
        tmp_path / "run",
        "SELECT round, client_id, status, width, flops, num_samples, bytes_down, bytes_up "
        "FROM client_rounds ORDER BY round, client_id",
    )
    assert [(r, c) for r, c, *_ in got_rows] == [
        (r, c) for r in range(1, ROUNDS + 1) for c in range(N_CLIENTS)
    ]
    epochs = cfg.train.local_epochs
    assert cfg.train.max_local_steps == 0  # every sample of every epoch is trained
    for round_idx, cid, status, width, flops, n, down, up in got_rows:
        w = WIDTH_OF[cid]
        assert status == "completed" and width == pytest.approx(w)
        # The FLOPs the client reported and the server accepted: its sub-model's, per
        # sample 3 x the forward matmuls' 2 x (64h + 10h), less the first layer's input
        # gradient 2 x 64h (20224 at h = 64, 10112 at h = 32), times epochs x samples.
        h = HIDDEN[w]
        per_sample = 3 * 2 * (64 * h + 10 * h) - 2 * 64 * h
        assert flops == pytest.approx(per_sample * epochs * n, rel=1e-12)
        # The ledger's bytes are the real serialized messages: the width's slice as
        # float32 (4 bytes a parameter) plus the framing counted by hand in task_bytes.
        assert down == task_bytes(w, round_idx, cid, cfg)
        assert 4 * PARAMS[w] < down < 4 * PARAMS[w] + 200
        # An update: the slice's delta as framed tensors (hand count), and its scalars
        # (session, ids, loss, samples, the footprint): at most 200 bytes more.
        assert tensors_len(w) < up <= tensors_len(w) + 200

    # The same run simulated: the deployed global model is the simulated one, each round.
    assert_simulation_equal(cfg, deployed.params, result)


def _rogue_client(address: str, client_id: int, seen: dict[str, Any]) -> None:
    """Takes its task and answers with a delta of the full model's tensors (4810 values)
    whatever width it was asked to train."""
    import numpy as np

    from greenfl.deploy import greenfl_pb2 as pb

    for stub, session_id, task in fit_tasks(address, client_id):
        seen["width"] = task.instructions.width
        seen["shapes"] = [tuple(t.shape) for t in task.params]
        full = {"0.weight": (64, 64), "0.bias": (64,), "2.weight": (10, 64), "2.bias": (10,)}
        tensors = [
            pb.Tensor(
                name=name,
                shape=list(shape),
                dtype="float32",
                data=np.zeros(int(np.prod(shape)), "<f4").tobytes(),
            )
            for name, shape in full.items()
        ]
        up = update_to(task, session_id, client_id, tensors=pb.TensorList(tensors=tensors))
        ack = stub.SubmitUpdate(up, metadata=(("greenfl-session", session_id),))
        seen["ack"] = (ack.accepted, ack.reason)


WRONG_LENGTH = (
    "update has 4810 elements, the width-0.5 slice the client was asked to train has 2410"
)


def test_an_update_of_the_wrong_slice_length_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace(f"rounds = {ROUNDS}", "rounds = 1"))
    cfg = load_config(path)
    seen = serve_with_rogue(cfg, tmp_path / "run", _rogue_client, 1, [0])
    # Client 1 was told width 0.5 and sent only that slice: 32 hidden units
    assert seen["width"] == 0.5
    assert seen["shapes"] == [(32, 64), (32,), (10, 32), (10,)]
    assert seen["ack"] == (False, WRONG_LENGTH)
    got_rows = rows(
        tmp_path / "run",
        "SELECT client_id, status, reason, width, flops, num_samples FROM client_rounds "
        "ORDER BY client_id",
    )
    assert [r[:4] for r in got_rows] == [
        (0, "completed", None, 1.0),
        (1, "rejected", WRONG_LENGTH, 0.5),
    ]
    # A refused update is charged the server's model of the work asked: the width-0.5
    # sub-model's 10112 FLOPs per sample (by hand, as above), every sample of 5 epochs.
    _, _, _, _, flops, n = got_rows[1]
    assert flops == pytest.approx(10112 * cfg.train.local_epochs * n, rel=1e-12)


def test_an_encoded_update_is_judged_at_its_widths_slice() -> None:
    """q8 updates (the codec's own element count) against the slice of the task's width;
    a width the run does not train is refused by name."""
    import time

    from greenfl.compression import CODECS  # noqa: F401  (registers the codecs)
    from greenfl.config import CompressionConfig
    from greenfl.core.params import ParamSpec
    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.server.checks import UpdateRules, judge_update
    from greenfl.deploy.server.sessions import Pending
    from greenfl.deploy.widths import wire_slices
    from greenfl.deploy.wire import encoded_to_pb
    from greenfl.factories import codec_for
    from greenfl.models import build_model

    model = build_model("mlp", (64,), 10)
    codec = codec_for(CompressionConfig(name="q8"))
    slices = wire_slices(model, {1.0: 20224.0, 0.5: 10112.0})
    assert {w: s.spec.numel for w, s in slices.items()} == PARAMS
    rules = UpdateRules(codec, ParamSpec.of(model), 10_000_000, None, widths=slices)

    def judged(numel: int, width: float) -> tuple[str, str | None, int | None]:
        delta = torch.full((numel,), 1e-3)
        enc = codec.encode(delta, 1, torch.Generator().manual_seed(0))
        req = pb.Update(
            protocol_version=1, client_id=1, round=3, task_id="t", num_samples=10, loss=0.5
        )
        req.encoded.CopyFrom(encoded_to_pb(enc))
        req.footprint.flops = 1.0
        pending = Pending("t", "s", 3, 1000, 10, delivered_at=time.monotonic(), width=width)
        r = judge_update(req, req.ByteSize(), 1, pending, rules)
        return r.status, r.reason, None if r.delta is None else int(r.delta.numel())

    assert judged(2410, 0.5) == ("completed", None, 2410)
    assert judged(4810, 1.0) == ("completed", None, 4810)
    assert judged(4810, 0.5) == ("rejected", WRONG_LENGTH, None)
    assert judged(2410, 1.0) == (
        "rejected",
        "update has 2410 elements, the width-1 slice the client was asked to train has 4810",
        None,
    )
    assert judged(1205, 0.25) == (
        "rejected",
        "sub-model width 0.25 is not one of the run's (1, 0.5)",
        None,
    )


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        (["--secagg"], "does not support secagg.enabled"),
        (
            ["--set", "engine.mode=async", "--set", "strategy.name=fedbuff"]
            + ["--set", "async.concurrency=2"],
            "runs in synchronous rounds only: engine.mode = 'async'",
        ),
    ],
)
def test_serve_refuses_secagg_and_async_with_submodels_in_one_line(
    tmp_path: Path,
    flags: list[str],
    fragment: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from greenfl.cli import main

    (tmp_path / "c.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    code = main(["serve", "c.toml", "--out", "run", *flags])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and fragment in lines[0]
    assert not (tmp_path / "run" / "ledger.sqlite").exists()
