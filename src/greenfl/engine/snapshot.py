"""The loop's state as the ledger keeps it: the ``server_state`` row written in the same
transaction as each round's rows, from which ``--resume`` continues.

A snapshot is a pickle of plain Python values, numpy arrays as ``(dtype, shape, bytes)``:
cheap to write and to read, and nothing in it but a strategy's own state names a class.
``read_snapshot`` also reads the two earlier forms: a pickle of numpy arrays boxed as
``_TensorBox``, and the first, a ``torch.save`` archive."""

from __future__ import annotations

import io
import pickle
from typing import Any

import numpy as np
import torch

FORMAT = 2

ArrayPart = tuple[str, tuple[int, ...], bytes]


def array_part(values: np.ndarray) -> ArrayPart:
    """An array as a snapshot holds it."""
    return (values.dtype.str, values.shape, values.tobytes())


def dumps(parts: dict[str, Any]) -> bytes:
    """A snapshot's bytes (``parts``: plain values and array parts; see RoundLoop.snapshot)."""
    return pickle.dumps({"format": FORMAT, **parts}, protocol=pickle.HIGHEST_PROTOCOL)


def compact(values: np.ndarray, default: float) -> ArrayPart | dict[str, ArrayPart]:
    """The entries that differ from ``default``, where they are few (a snapshot then costs
    the clients that have taken part so far, not the whole population: a million clients
    would be 12 MB a round); the whole array where most of them do."""
    changed = ~np.isnan(values) if np.isnan(default) else values != default
    if 3 * np.count_nonzero(changed) > len(values):
        return array_part(values)
    idx = np.flatnonzero(changed)
    return {"index": array_part(idx), "value": array_part(values[idx])}


def small_state(state: dict[str, Any]) -> dict[str, Any]:
    """A strategy's or planner's state (tensors, arrays, numbers) as the snapshot holds it:
    tensors boxed as numpy arrays."""
    return _to_numpy(state)


def read_snapshot(blob: bytes, population_size: int) -> dict[str, Any]:
    """Any form of snapshot as one dict: ``global_params`` a tensor; ``participation``,
    ``last_selected``, ``last_loss`` dense numpy arrays; ``strategy`` and ``planner`` state
    dicts; ``rngs`` bit-generator states; and the scalars."""
    if blob[:2] == b"PK":  # a torch.save archive, as snapshots were first written
        snap = torch.load(io.BytesIO(blob), weights_only=False)
    else:
        snap = pickle.loads(blob)
    if snap.get("format") == FORMAT:
        snap = dict(snap)
        snap["global_params"] = torch.from_numpy(_array(snap["global_params"]))
        snap["strategy"] = _small(snap["strategy"])
        snap["planner"] = _small(snap["planner"])
    else:
        snap = _to_torch(snap)
    n = int(snap.get("population_size", population_size))
    snap["participation"] = _dense(snap["participation"], n, 0, np.int32)
    snap["last_selected"] = _dense(snap["last_selected"], n, -1, np.int32)
    snap["last_loss"] = _dense(snap["last_loss"], n, np.nan, np.float32)
    snap.setdefault("planner", {})
    return snap


def _array(part: Any) -> np.ndarray:
    if isinstance(part, tuple):  # (dtype, shape, bytes)
        dtype, shape, data = part
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    return np.asarray(part)  # a tensor or array of an earlier form


def _dense(stored: Any, n: int, default: float, dtype: type) -> np.ndarray:
    if isinstance(stored, dict):
        out = np.full(n, default, dtype=dtype)
        out[_array(stored["index"])] = _array(stored["value"])
        return out
    return _array(stored).astype(dtype, copy=False)


def _small(state: dict[str, Any] | None) -> dict[str, Any]:
    return _to_torch(state) if state else {}


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return _TensorBox(obj.detach().cpu().numpy())
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


def _to_torch(obj: Any) -> Any:
    if isinstance(obj, _TensorBox):
        return torch.from_numpy(np.array(obj.array))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    return obj


class _TensorBox:
    """A tensor's values in a pickled state (plain numpy arrays stay numpy when read back).
    Its module and name are in snapshots already written: they stay."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
