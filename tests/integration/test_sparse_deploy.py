"""Sparse training in a real deployment (issue 31, item 3): a `serve` on loopback and `join`
clients (threads of this process running the real client code) with [sparsity] magnitude,
target 0.5, pruned after round 1 of 3. The server keeps the mask; rounds 2 and 3 carry the
kept values of the global model (round 2 also the mask, which each client then holds);
clients train the masked model and send only the kept coordinates; the deployed global
model is the simulated run's, its pruned weights exactly zero; an update of the wrong
length is refused with its reason.

By hand, for the quickstart's MLP 64-[64]-10 on digits: 64*64 + 64 + 64*10 + 10 = 4810
parameters, of which the weights 0.weight (4096) and 2.weight (640) may be pruned, 4736 in
all. At sparsity 0.5 each loses floor(0.5 x its size): 2048 and 320, 2368 pruned, so
4810 - 2368 = 2442 values are kept. The mask's cheaper encoding: a bitmap of 4736 bits is
592 bytes, a position list of the 2368 pruned (as many as the kept) 4 x 2368 = 9472; so
the tag byte and the bitmap, 593 bytes."""

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

N_CLIENTS, ROUNDS, SEED = 2, 3, 3
NUMEL, KEPT, MASK_BYTES = 4810, 2442, 593  # by hand, above
PRUNED = {"0.weight": 2048, "2.weight": 320}
SHAPES = {"0.weight": (64, 64), "0.bias": (64,), "2.weight": (10, 64), "2.bias": (10,)}

SPARSITY = """
[sparsity]
name = "magnitude"
target = 0.5
start_round = 1
end_round = 1
every_rounds = 1
"""
CONFIG = config_text(
    N_CLIENTS, ROUNDS, seed=SEED, sections=SPARSITY, deploy=f"min_clients = {N_CLIENTS}"
)


def task_bytes(
    round_idx: int, client_id: int, cfg: RunConfig, kept: int = KEPT, mask_bytes: int = MASK_BYTES
) -> int:
    """The FIT task's serialized size, by hand: kind, protocol version and round (a tag
    and a one-byte varint each), the task id "r<round>-c<client>-<12 hex>", the params,
    the instructions (varints for epochs and batch size, an 8-byte double for lr; zero
    fields are not sent), the seed. Round 1 is dense: the model's four tensors. Rounds 2
    and 3 carry one tensor, kept_values, of the 2442 kept values, and Task.sparse (field
    10): the version (a tag and the varint 1) and, in round 2 only (the clients do not
    hold it yet), the 593 bytes of the mask."""
    t = cfg.train
    assert t.momentum == 0 and t.max_local_steps == 0  # not sent
    instructions = (1 + varint_len(t.local_epochs)) + (1 + varint_len(t.batch_size)) + 9
    task_id = len(f"r{round_idx}-c{client_id}-") + 12
    fixed = 3 * 2 + framed(task_id) + framed(instructions) + 1 + varint_len(SEED)
    if round_idx == 1:
        return fixed + sum(tensor_len(n, s) for n, s in SHAPES.items())
    sparse = 2 + (framed(mask_bytes) if round_idx == 2 else 0)
    return fixed + tensor_len("kept_values", (kept,)) + framed(sparse)


def split(flat: torch.Tensor) -> dict[str, torch.Tensor]:
    out, at = {}, 0
    for name, shape in SHAPES.items():
        n = 1
        for s in shape:
            n *= s
        out[name] = flat[at : at + n].view(shape)
        at += n
    return out


@pytest.mark.slow  # ~12 s alone, more on a loaded 2-core machine
def test_a_deployment_keeps_the_mask_and_clients_send_only_the_kept_values(
    tmp_path: Path,
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    cfg = load_config(path)
    deployed = GlobalParams()
    clients, result = serve_and_join(cfg, tmp_path / "run", N_CLIENTS, [deployed])

    for c in clients:
        cid = c.opts.client_id
        assert [r["bytes_down"] for r in c.stats.history] == [
            task_bytes(r, cid, cfg) for r in range(1, ROUNDS + 1)
        ]
        assert [r["density"] for r in c.stats.history] == pytest.approx(
            [1.0, KEPT / NUMEL, KEPT / NUMEL], abs=1e-12
        )

    got = rows(
        tmp_path / "run",
        "SELECT round, client_id, status, density, bytes_down, bytes_up "
        "FROM client_rounds ORDER BY round, client_id",
    )
    assert [(r, c) for r, c, *_ in got] == [
        (r, c) for r in range(1, ROUNDS + 1) for c in range(N_CLIENTS)
    ]
    for round_idx, cid, status, density, down, up in got:
        assert status == "completed"
        assert density == pytest.approx(1.0 if round_idx == 1 else KEPT / NUMEL, abs=1e-12)
        # The ledger's bytes down are the real serialized tasks, counted by hand
        assert down == task_bytes(round_idx, cid, cfg)
        # Up: the delta's tensors (the kept values only, once pruned) and the update's
        # scalars (session, ids, loss, samples, the footprint): at most 200 bytes more.
        sent = (
            sum(tensor_len(n, s) for n, s in SHAPES.items())
            if round_idx == 1
            else tensor_len("kept_values", (KEPT,))
        )
        assert sent < up <= sent + 200
    # Round 2 carried the mask, round 3 did not: each client held it by then. The
    # difference: 593 bytes, the mask field's tag and 2-byte length, and one more byte
    # for Task.sparse's own length (598 needs two varint bytes, 2 one).
    for cid in range(N_CLIENTS):
        down = {r: d for r, c, _, _, d, _ in got if c == cid}
        assert down[2] - down[3] == 597

    # The global model: pruned after round 1, masked after every later aggregation
    final = split(deployed.params[-1])
    for name, pruned in PRUNED.items():
        assert int((final[name] == 0).sum()) == pruned
    assert int((final["0.bias"] == 0).sum()) == 0 and int((final["2.bias"] == 0).sum()) == 0

    # The same run simulated: the deployed global model is the simulated one, each round,
    # zero at the same coordinates.
    simulated = assert_simulation_equal(cfg, deployed.params, result)
    for d, s in zip(deployed.params, simulated, strict=True):
        assert torch.equal(d == 0, s == 0)


def _rogue_client(address: str, client_id: int, seen: dict[str, Any]) -> None:
    """Answers round 1 with an error, then a masked round with all 4810 values of a
    delta instead of the 2442 kept ones."""
    import numpy as np

    from greenfl.deploy import greenfl_pb2 as pb

    for stub, session_id, task in fit_tasks(address, client_id):
        meta = (("greenfl-session", session_id),)
        up = update_to(task, session_id, client_id)
        if not task.HasField("sparse"):
            up.error = "not this round"
            stub.SubmitUpdate(up, metadata=meta)
            continue
        seen["shapes"] = [(t.name, tuple(t.shape)) for t in task.params]
        seen["mask_bytes"] = len(task.sparse.mask)
        up.tensors.tensors.append(
            pb.Tensor(
                name="kept_values",
                shape=[NUMEL],
                dtype="float32",
                data=np.zeros(NUMEL, "<f4").tobytes(),
            )
        )
        ack = stub.SubmitUpdate(up, metadata=meta)
        seen["ack"] = (ack.accepted, ack.reason)


WRONG_LENGTH = f"tensor kept_values: shape [{NUMEL}], expected [{KEPT}]"


def test_an_update_of_the_wrong_length_is_refused_with_its_reason(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace(f"rounds = {ROUNDS}", "rounds = 2"))
    cfg = load_config(path)
    seen = serve_with_rogue(cfg, tmp_path / "run", _rogue_client, 1, [0])
    # Round 2's task: the kept values only, and the mask (the rogue's round 1 failed)
    assert seen["shapes"] == [("kept_values", (KEPT,))]
    assert seen["mask_bytes"] == MASK_BYTES
    assert seen["ack"] == (False, WRONG_LENGTH)
    got_rows = rows(
        tmp_path / "run",
        "SELECT round, client_id, status, reason FROM client_rounds ORDER BY round, client_id",
    )
    assert got_rows[2:] == [(2, 0, "completed", None), (2, 1, "rejected", WRONG_LENGTH)]


def test_the_mask_encodings_are_the_lengths_the_simulation_counts() -> None:
    """A bitmap, a list of the pruned and a list of the kept positions, and whole units:
    each decodes to the mask it encodes, at the length ``mask_cost`` counts (by hand)."""
    from greenfl.models import build_model
    from greenfl.sparse.channels import ChannelPruner
    from greenfl.sparse.layout import prunable_layout
    from greenfl.sparse.mask import decode_mask, encode_mask, mask_cost

    model = build_model("mlp", (64,), 10)
    layout = prunable_layout(model)
    # the prunable coordinates: 0.weight at 0-4095, 2.weight at 4160-4799 (0.bias between)

    def with_kept(kept: list[int]) -> torch.Tensor:
        m = torch.ones(NUMEL, dtype=torch.bool)
        m[0:4096] = False
        m[4160:4800] = False
        m[torch.tensor(kept, dtype=torch.long)] = True
        return m

    cases = {
        # half kept: the bitmap, 1 + 4736 / 8 = 593 bytes
        "bitmap": (with_kept(list(range(0, 4096, 2)) + list(range(4160, 4800, 2))), 593),
        # 3 kept prunable weights: their positions, 1 + 3 x 4 = 13 bytes
        "kept": (with_kept([5, 4095, 4160]), 13),
        # 2 pruned: their positions, 1 + 2 x 4 = 9 bytes
        "pruned": (~torch.isin(torch.arange(NUMEL), torch.tensor([7, 4799])), 9),
    }
    for name, (mask, length) in cases.items():
        data = encode_mask(mask, layout)
        assert len(data) == length == mask_cost(mask, layout).bytes, name
        assert torch.equal(decode_mask(data, layout), mask), name
    # position 4799 - 64 (the bias between) = 4735 among the prunable: the last one
    assert encode_mask(cases["pruned"][0], layout)[1:] == bytes([7, 0, 0, 0, 0x7F, 0x12, 0, 0])
    with pytest.raises(ValueError, match="position 4736 past 4736"):
        decode_mask(bytes([2]) + (4736).to_bytes(4, "little"), layout)

    pruner = ChannelPruner(model, layout, lambda m: 0.0)
    mask = pruner.mask_at(torch.randn(NUMEL, generator=torch.Generator().manual_seed(0)), 0.25)
    pruner.load_mask(mask)
    data = pruner.encode_mask()
    # one bit per hidden unit (64) and the tag: 9 bytes; 48 units kept
    assert len(data) == 9 == pruner.mask_bytes()
    assert bin(int.from_bytes(data[1:], "big")).count("1") == 48
    assert torch.equal(pruner.decode_mask(data), mask)
    with pytest.raises(ValueError, match="keeps no unit"):
        pruner.decode_mask(bytes([3]) + bytes(8))


def test_structured_sparsity_deployed_trains_the_kept_units_model(tmp_path: Path) -> None:
    """structured = true: half the 64 hidden units pruned after round 1 (floor(0.5 x 64) =
    32 kept), so rounds 2 and 3 train the 64-[32]-10 model: 64*32 + 32 + 32*10 + 10 =
    2410 values each way, counted at its 3 x 2 x (64*32 + 10*32) - 2 x 64*32 = 10112
    FLOPs per sample; the mask is the tag and one bit per hidden unit, 1 + 64 / 8 = 9
    bytes. The deployed global model is the simulated one."""
    path = tmp_path / "c.toml"
    path.write_text(CONFIG.replace("every_rounds = 1", "every_rounds = 1\nstructured = true"))
    cfg = load_config(path)
    deployed = GlobalParams()
    serve_and_join(cfg, tmp_path / "run", N_CLIENTS, [deployed])
    got = rows(
        tmp_path / "run",
        "SELECT round, client_id, status, density, flops, num_samples, bytes_down "
        "FROM client_rounds ORDER BY round, client_id",
    )
    epochs = cfg.train.local_epochs
    for round_idx, cid, status, density, flops, n, down in got:
        assert status == "completed"
        if round_idx == 1:
            continue
        assert density == pytest.approx(2410 / NUMEL, abs=1e-12)
        assert flops == pytest.approx(10112 * epochs * n, rel=1e-12)
        assert down == task_bytes(round_idx, cid, cfg, kept=2410, mask_bytes=9)
    final = split(deployed.params[-1])
    assert int((final["0.weight"].abs().sum(dim=1) == 0).sum()) == 32  # whole units zero
    assert_simulation_equal(cfg, deployed.params)
