"""Free riding and replay: an update identical to, or within ``deploy.replay_distance``
(relative L2) of, the same client's previous accepted update, or of another client's
accepted update in the same round, is refused (docs/trust.md, "Replay").

Keeping every client's last update would cost the model's size per client, so each update
is kept as a sketch: a SHA-256 of its bytes (identity) and a count sketch of ``WIDTH``
buckets (each value added, with a random sign secret to the run, to the bucket of its
index modulo ``WIDTH``). A count sketch is linear and keeps L2 norms in expectation, so the
sketch of the difference of two updates estimates their distance: within ~6% (one sigma,
sqrt(2/WIDTH)) of it, plenty to tell 1e-3 from 1.

Free riding without a replay: an all-zero update, or one whose norm is under
``FREE_RIDE_FRACTION`` of the other clients' last accepted updates' median, from a client
whose task asked for training, is refused too (``ReplayGuard.free_riding``). A task that
asked for no steps (partial work of none, or a client with no data) may answer with zero."""

from __future__ import annotations

import functools
import hashlib
import secrets
import statistics
import threading
from dataclasses import dataclass

import torch

WIDTH = 512
# An update under this fraction of its peers' median norm carries no training: honest
# updates of one round differ by the steps each was asked for and its data (partial work
# of 1 step among clients of 100 is ~1/100 of their norm), and by the round they were
# made in (norms shrink as training converges, ~10x over a run on digits), so 1e-4
# leaves another factor of 100 below the smallest honest one.
FREE_RIDE_FRACTION = 1e-4
MIN_NORM_PEERS = 3  # other clients' norms a median needs


@dataclass(frozen=True)
class Sketch:
    digest: bytes
    norm: float  # the update's exact L2 norm
    buckets: torch.Tensor  # float32, WIDTH


def sketch_of(delta: torch.Tensor, seed: int = 0) -> Sketch:
    """The sketch of a flat float update under the signs of ``seed``."""
    flat = delta.detach().reshape(-1).to(torch.float32)
    digest = hashlib.sha256(flat.numpy().tobytes()).digest()
    signed = torch.where(_signs(flat.numel(), seed), flat, -flat)
    pad = (-flat.numel()) % WIDTH
    if pad:
        signed = torch.cat([signed, signed.new_zeros(pad)])
    buckets = signed.reshape(-1, WIDTH).sum(dim=0, dtype=torch.float64).to(torch.float32)
    return Sketch(digest, float(flat.norm()), buckets)


@functools.lru_cache(maxsize=2)
def _signs(numel: int, seed: int) -> torch.Tensor:
    """The random signs of a model's ``numel`` values under ``seed`` (one byte each, made
    once per run)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (numel,), generator=gen, dtype=torch.int8).bool()


def relative_distance(a: Sketch, b: Sketch) -> float:
    """The estimated ||a - b|| / max(||a||, ||b||); 0 for identical updates."""
    if a.digest == b.digest:
        return 0.0
    scale = max(a.norm, b.norm)
    if scale == 0:
        return 0.0
    return float((a.buckets.double() - b.buckets.double()).norm()) / scale


class ReplayGuard:
    """Each client's last accepted update and the open round's accepted ones, as sketches."""

    def __init__(self, distance: float, seed: int | None = None) -> None:
        self.distance = distance
        # Secret per run: with known signs a replayer could add a perturbation of ~1/sqrt(n
        # / WIDTH) of the threshold, lined up with one bucket's signs, that the sketch
        # magnifies past it. Within a run the signs stay put, so sketches compare.
        self.seed = secrets.randbits(63) if seed is None else seed
        self._last: dict[int, tuple[int, Sketch]] = {}  # client -> (round, sketch)
        self._round: dict[int, dict[int, Sketch]] = {}  # round -> client -> sketch
        self._lock = threading.Lock()

    def reason(self, cid: int, round_idx: int, sk: Sketch) -> str | None:
        """Why the update ``sk`` of client ``cid`` in ``round_idx`` is a replay, or None."""
        if sk.norm == 0:
            return None
        with self._lock:
            last = self._last.get(cid)
            same_round = dict(self._round.get(round_idx, {}))
        if last is not None and last[0] < round_idx:
            d = relative_distance(sk, last[1])
            if d <= self.distance:
                return (
                    f"replay: the update is {_how(d)} the client's own update of round "
                    f"{last[0]} (deploy.replay_distance = {self.distance:g})"
                )
        for other, osk in same_round.items():
            if other == cid:
                continue
            d = relative_distance(sk, osk)
            if d <= self.distance:
                return (
                    f"replay: the update is {_how(d)} client {other}'s in this round "
                    f"(deploy.replay_distance = {self.distance:g})"
                )
        return None

    def free_riding(self, cid: int, sk: Sketch) -> str | None:
        """Why the update ``sk`` of client ``cid``, whose task asked for training, is free
        riding (all zeros, or a norm under FREE_RIDE_FRACTION of the median of the other
        clients' last accepted updates, with MIN_NORM_PEERS of them), or None."""
        if sk.norm == 0:
            return "free riding: the update is all zeros, but its task asked for training"
        with self._lock:
            others = [s.norm for c, (_, s) in self._last.items() if c != cid]
        if len(others) < MIN_NORM_PEERS:
            return None
        median = statistics.median(others)
        if sk.norm < FREE_RIDE_FRACTION * median:
            return (
                f"free riding: update norm {sk.norm:.3g} is under {FREE_RIDE_FRACTION:g} of "
                f"the other clients' median {median:.3g}, but its task asked for training"
            )
        return None

    def accept(self, cid: int, round_idx: int, sk: Sketch) -> None:
        """Remember an accepted update (the rounds before ``round_idx`` are forgotten)."""
        with self._lock:
            self._last[cid] = (round_idx, sk)
            for r in [r for r in self._round if r < round_idx]:
                del self._round[r]
            self._round.setdefault(round_idx, {})[cid] = sk


def _how(d: float) -> str:
    return "identical to" if d == 0 else f"within relative L2 distance {d:.2g} of"
