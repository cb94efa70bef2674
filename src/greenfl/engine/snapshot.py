"""The loop's state as the ledger keeps it: the ``server_state`` row written in the same
transaction as each round's rows, from which ``--resume`` continues.

A snapshot is an ``.npz`` archive read with ``allow_pickle=False``: every array (tensors as
numpy arrays) is an entry of its own, and the rest is one JSON document, ``meta``, in which
arrays are referenced by name. Reading one can never run code, whoever wrote the ledger.
Earlier greenfl wrote pickles (and first a ``torch.save`` archive); those are refused with
an error that says so, because unpickling a hostile ledger runs the attacker's code."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import torch

from greenfl.core.errors import LedgerError

FORMAT = 3
_META = "meta"
# The global model is the snapshot's first array, "a0" (state.state_bytes writes it first):
# the ledger's hash chain digests that member by name (greenfl.ledger.store.MODEL_MEMBER).
MODEL_ARRAY = "a0"


def array_part(values: np.ndarray) -> np.ndarray:
    """An array as a snapshot holds it."""
    return np.ascontiguousarray(values)


def dumps(parts: dict[str, Any]) -> bytes:
    """A snapshot's bytes (``parts``: plain values, arrays and tensors; see state_bytes).
    Raises TypeError for a value the format cannot hold, at write time, not at resume."""
    arrays: dict[str, np.ndarray] = {}
    meta = _encode({"format": FORMAT, **parts}, arrays)
    text = json.dumps(meta, allow_nan=True, separators=(",", ":")).encode("utf-8")
    arrays[_META] = np.frombuffer(text, dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def compact(values: np.ndarray, default: float) -> np.ndarray | dict[str, np.ndarray]:
    """The entries that differ from ``default``, where they are few (a snapshot then costs
    the clients that have taken part so far, not the whole population: a million clients
    would be 12 MB a round); the whole array where most of them do."""
    changed = ~np.isnan(values) if np.isnan(default) else values != default
    if 3 * np.count_nonzero(changed) > len(values):
        return array_part(values)
    idx = np.flatnonzero(changed)
    return {"index": idx, "value": values[idx]}


def small_state(state: dict[str, Any]) -> dict[str, Any]:
    """A strategy's or planner's state (tensors, arrays, numbers) as the snapshot holds it."""
    return state


def read_snapshot(blob: bytes, population_size: int) -> dict[str, Any]:
    """A snapshot as one dict: ``global_params`` a tensor; ``participation``,
    ``last_selected``, ``last_loss`` dense numpy arrays; ``strategy`` and ``planner`` state
    dicts (tensors back as tensors, arrays as arrays); ``rngs`` bit-generator states; and
    the scalars.
    A LedgerError for anything that is not a snapshot of this format."""
    snap = _load(blob)
    snap["global_params"] = torch.from_numpy(np.array(snap["global_params"]))
    snap["strategy"] = snap.get("strategy") or {}
    snap["planner"] = snap.get("planner") or {}
    n = int(snap.get("population_size", population_size))
    if n != population_size:
        raise LedgerError(
            f"the snapshot is of a population of {n} clients, this run has {population_size}"
        )
    snap["participation"] = _dense(snap["participation"], n, 0, np.int32)
    snap["last_selected"] = _dense(snap["last_selected"], n, -1, np.int32)
    snap["last_loss"] = _dense(snap["last_loss"], n, np.nan, np.float32)
    return snap


# The bit generators a snapshot's random streams may name (numpy's own).
_BIT_GENERATORS: dict[str, type[np.random.BitGenerator]] = {
    "PCG64": np.random.PCG64,
    "PCG64DXSM": np.random.PCG64DXSM,
    "MT19937": np.random.MT19937,
    "Philox": np.random.Philox,
    "SFC64": np.random.SFC64,
}


def check_snapshot(blob: bytes) -> None:
    """A LedgerError, in one line, for a snapshot that must not be resumed: one that does
    not read, a model with NaN or infinite weights, or a random-generator state numpy would
    refuse. Checked before a resumed run is marked running, so a refused resume leaves the
    ledger as it found it."""
    snap = _load(blob)
    params = np.asarray(snap.get("global_params"))
    if params.dtype.kind not in "fc" or not np.isfinite(params).all():
        raise LedgerError(
            f"the model saved with round {snap.get('round')} has NaN or infinite weights "
            "(or is not a model): it is not resumed"
        )
    rngs = snap.get("rngs")
    if not isinstance(rngs, dict):
        raise LedgerError("the ledger's saved random-generator states are missing")
    for name, state in rngs.items():
        rng_state(name, state)


def rng_state(name: str, state: Any) -> None:
    """A LedgerError unless ``state`` is a state numpy's named bit generator takes."""
    kind = state.get("bit_generator") if isinstance(state, dict) else None
    cls = _BIT_GENERATORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise LedgerError(f"the ledger's saved random-generator state {name!r} is not one")
    try:
        cls().state = state
    except (ValueError, TypeError, KeyError, OverflowError) as exc:
        raise LedgerError(
            f"the ledger's saved random-generator state {name!r} is not valid: {exc}"
        ) from None


def _load(blob: bytes) -> dict[str, Any]:
    if blob[:2] != b"PK":
        raise LedgerError(
            "the ledger's snapshot is a pickle written by an earlier greenfl; it is not read, "
            "because unpickling can run code: start the run anew (without --resume)"
        )
    try:
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            if _META not in npz.files:
                raise LedgerError(
                    "the ledger's snapshot is not a greenfl snapshot (a torch.save archive of "
                    "an earlier greenfl?); it is not read: start the run anew"
                )
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop(_META).tobytes().decode("utf-8"))
    except (ValueError, OSError, zipfile.BadZipFile, UnicodeDecodeError, KeyError) as exc:
        raise LedgerError(f"the ledger's snapshot is unreadable: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise LedgerError(f"the ledger's snapshot has an unknown format: {meta.get('format')!r}")
    try:
        out = _decode(meta, arrays)
    except (KeyError, TypeError, ValueError) as exc:
        raise LedgerError(f"the ledger's snapshot is malformed: {exc}") from None
    return out


def _encode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, torch.Tensor):
        name = f"a{len(arrays)}"
        arrays[name] = obj.detach().cpu().numpy()
        return {"$tensor": name}
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise TypeError("a snapshot cannot hold an object array")
        name = f"a{len(arrays)}"
        arrays[name] = obj
        return {"$array": name}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in obj):
            return {k: _encode(v, arrays) for k, v in obj.items()}
        return {"$items": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    raise TypeError(f"a snapshot cannot hold a {type(obj).__name__}")


def _decode(obj: Any, arrays: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "$array" in obj:
        return arrays[obj["$array"]]
    if "$tensor" in obj:
        return torch.from_numpy(np.array(arrays[obj["$tensor"]]))
    if "$tuple" in obj:
        return tuple(_decode(v, arrays) for v in obj["$tuple"])
    if "$items" in obj:
        return {_key(_decode(k, arrays)): _decode(v, arrays) for k, v in obj["$items"]}
    return {k: _decode(v, arrays) for k, v in obj.items()}


def _key(k: Any) -> Any:
    # A dict key must be hashable; a list can only come from a tampered file.
    if isinstance(k, list | dict | np.ndarray):
        raise TypeError("a snapshot dict key is not hashable")
    return k


def _dense(stored: Any, n: int, default: float, dtype: type) -> np.ndarray:
    if isinstance(stored, dict):
        out = np.full(n, default, dtype=dtype)
        out[np.asarray(stored["index"], dtype=np.int64)] = stored["value"]
        return out
    values = np.asarray(stored).astype(dtype, copy=False)
    if values.shape != (n,):
        raise LedgerError(f"the snapshot's per-client array has shape {values.shape}, not ({n},)")
    return values
