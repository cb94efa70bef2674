"""One task on a deployed client: train from the server's model as its instructions say,
inside the meter's window, and build the update (the delta encoded with the run's codec,
or secure aggregation's keys) with the footprint the client reports. A task of a sub-model
width (docs/submodels.md) carries that width's slice of the model: the client trains the
width's sub-model on it and sends the slice's delta, counted at the sub-model's FLOPs. A
task's precision (bf16, fp16) is trained under torch.autocast with fp16's loss scaling, in
``train_one`` as a simulated client is; the update stays float32. Under sparse training a
task carries the kept values of the global model (and the mask, when this client does not
hold its version): the client trains the masked model (with whole units pruned, the
smaller model of the kept units) and sends only the kept coordinates of its delta."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from greenfl.clients.trainer import client_seed, train_one
from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.core.errors import GreenflError, TransportError, UpdateRejected
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.client.local import Local, LocalModel
from greenfl.deploy.client.options import ClientOptions
from greenfl.deploy.client.secagg import SecAggParticipant
from greenfl.deploy.wire import (
    encoded_to_pb,
    instructions_from_pb,
    kept_spec,
    params_from_pb,
    params_to_pb,
)
from greenfl.footprint.measurement import Meter
from greenfl.models.evaluate import evaluate

Row = dict[str, object]  # what the client keeps and prints of a round


@dataclass(frozen=True)
class Trained:
    """A task's update, and what the client keeps of its round (None when the update only
    carries an error)."""

    update: pb.Update
    row: Row | None = None
    compute_s: float = 0.0
    energy_j: float | None = None  # measured; None where the meter cannot measure energy


def train_task(
    task: pb.Task,
    session_id: str,
    local: Local,
    opts: ClientOptions,
    meter: Meter,
    device: str,
    secagg: SecAggParticipant,
    cancel: threading.Event,
    precisions: Sequence[str] = (),
) -> Trained | None:
    """The update for one task, or None if the server withdrew it (``cancel`` set)
    meanwhile.
    ``device``: the profile the server accounts this client as; ``precisions``: the ones
    the server says it trains in (``JoinReply.precisions``; empty: not said)."""
    cid = opts.client_id
    update = pb.Update(
        protocol_version=PROTOCOL_VERSION,
        session_id=session_id,
        client_id=cid,
        round=task.round,
        task_id=task.task_id,
        num_samples=len(local.y),
    )
    ins = instructions_from_pb(task.instructions)
    try:
        local.check_precision(ins.precision, device, precisions)
        trained = local.at(ins.width)
        if task.HasField("sparse"):  # the kept values under the server's mask
            sparse = local.under_mask(task.sparse)
            spec = kept_spec(sparse.kept)
            kept = params_from_pb(task.params, spec)
            trained = LocalModel(sparse.module, spec, sparse.flops_per_sample)
            # the masked model's (pruned weights zero), or the kept units' smaller one's
            params = sparse.train_params(sparse.scatter(kept))
        else:
            sparse = None
            params = params_from_pb(task.params, trained.spec)
    except TransportError as exc:
        update.error = str(exc)
        return Trained(update)
    except UpdateRejected as exc:
        update.error = f"the server's parameters do not fit the local model: {exc}"
        return Trained(update)
    model = trained.module
    seed = client_seed(int(task.seed), int(task.round), cid)
    test_accuracy = None
    if local.test is not None:  # how the model it trains does on this client's own data
        test_accuracy, _ = evaluate(model, params, local.test)
    token = meter.begin()
    if opts.test_delay_s > 0:
        cancel.wait(opts.test_delay_s)
    if cancel.is_set():
        meter.end(token)
        return None
    result = train_one(model, params, local.x, local.y, cid, ins, seed, stop=cancel.is_set)
    measured = meter.end(token)
    if cancel.is_set():
        return None
    k = local.cfg.train.clients_per_round
    result = opts.attack.on_update(int(task.round), result, int(task.seed), k)
    if sparse is not None:  # only the kept coordinates travel; the server knows the mask
        result = replace(result, delta=sparse.sent_values(result.delta))
    try:
        if task.HasField("secagg"):  # secure aggregation: keys now, the delta masked later
            update.secagg_keys.CopyFrom(secagg.keys_for(task, result.delta))
        elif local.codec.name == "identity":
            update.tensors.tensors.extend(params_to_pb(result.delta, trained.spec))
        else:
            # The same generator as a simulated client, so stochastic rounding matches.
            gen = torch.Generator().manual_seed(seed + 1)
            update.encoded.CopyFrom(encoded_to_pb(local.codec.encode(result.delta, cid, gen)))
    except GreenflError as exc:
        update.error = f"cannot encode the update: {exc}"
    update.loss = result.loss
    fp = update.footprint
    fp.flops = trained.flops_per_sample * result.samples_processed
    fp.compute_s = measured.elapsed_s
    fp.estimated = measured.estimated
    fp.device = device
    fp.meter = meter.name
    if measured.energy_j is not None:
        fp.energy_j = measured.energy_j
    row: Row = {
        "round": int(task.round),
        "width": ins.width,  # the sub-model width trained (1.0: the full model)
        "precision": ins.precision,  # the arithmetic it trained in
        "density": 1.0 if sparse is None else sparse.density,  # share of weights trained
        "num_samples": len(local.y),
        "loss": result.loss,
        "compute_s": measured.elapsed_s,
        "energy_j": measured.energy_j,
        "bytes_down": task.ByteSize(),
        "bytes_up": update.ByteSize(),
        "estimated": measured.estimated,
        "local_test_accuracy": test_accuracy,
    }
    return Trained(update, row, measured.elapsed_s, measured.energy_j)
