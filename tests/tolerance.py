"""Comparing numbers that come out of float kernels: a stated tolerance per column, and why.

Why values from training differ between CPUs. A float32 matmul, convolution or reduction
adds its K terms in an order that depends on the kernel the library picks for this CPU
(SSE, AVX2 or AVX-512 width; oneDNN/MKL blocking; thread count) and on how the inputs are
batched. Each rounding is at most eps_f32 / 2 = 6e-8 relative, and a K-term sum in another
order differs by about eps_f32 * sqrt(K) * |terms| (K * eps_f32 at worst). A few rounds of
SGD carry these differences into the weights, where they grow slowly. Seen: the golden
`stragglers` run's test loss on an AVX-512 Xeon/EPYC is 2.2381546 against 2.2381549 where it
was recorded (1.4e-7 relative); sequential and vectorised training of a CNN differ by 1.4e-4
of the update's norm (an activation at a ReLU or max-pool tie takes the other branch).

What does not differ: integers and strings the code counts or copies (ids, counts, bytes,
FLOPs, status), and float64 arithmetic on exact inputs (the footprint model: counted FLOPs
and bytes times catalog constants). +, -, *, / and sqrt are correctly rounded in IEEE 754,
so they give the same bits on every CPU; only fused multiply-adds (compilers contract a*b+c
by default on aarch64) and numpy's SIMD variants of exp/log/pow differ, by an ulp or so per
operation (2.2e-16 relative).

So: integer and string columns are compared exactly; float columns each get a `Tol` with
its reason, see tests/test_golden.py for the table."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Tol:
    """``|got - want| <= max(rel * max(|got|, |want|), abs)`` (math.isclose); zero both: exact."""

    rel: float = 0.0
    abs: float = 0.0
    why: str = "counted or copied: the same on every machine"

    def ok(self, got: object, want: object) -> bool:
        if isinstance(got, bool) or isinstance(want, bool) or self.rel == self.abs == 0.0:
            return got == want
        if not (isinstance(got, int | float) and isinstance(want, int | float)):
            return got == want  # None, str: exactly, whatever the tolerance
        if math.isnan(got) and math.isnan(want):
            return True
        return math.isclose(got, want, rel_tol=self.rel, abs_tol=self.abs)


EXACT = Tol()

# float64 arithmetic on exact inputs (see the module docstring): a few ulp per operation,
# under 1e-13 after the tens of operations of the footprint model. 1e-9 leaves 10^4 of
# headroom and is still 10^6 times finer than the smallest real change: the catalog's
# figures have 2-3 significant digits, so a figure changed by its last digit moves what
# follows from it by 1e-3 relative or more.
FLOAT64_EXACT_INPUTS = Tol(rel=1e-9, why="float64 arithmetic on counted inputs")


# One update computed two ways (sequential and vectorised trainers, chunked or not), or on
# two CPUs: the same batches and steps, float32 reductions in another order. Each op differs
# by ~eps_f32 * sqrt(K) * |values| (K up to a few thousand here: ~1e-5 at most), carried
# through a few local steps; seen 1e-7 of the update's norm for the MLPs, and 1.4e-4 for a
# CNN client where an activation at a ReLU or max-pool tie took the other branch. 1e-3 of
# the update's norm is 7x that worst case. A real bug is above it: the learning rate 1% off
# moves an update by 2e-3 (an MLP client 10 steps in, near its optimum) to 1e-1 of its norm,
# a factor of 2 off by 0.15 to 0.9.
SAME_UPDATE_REL = 1e-3

# The mean training loss a client reports, from the same float32 steps: seen 2e-6 relative
# (the CNN client above); a learning rate 1% off moves it by 7e-4 to 7e-3.
SAME_LOSS_REL = 1e-4


def mismatches(
    got: Sequence[Mapping[str, object]],
    want: Sequence[Mapping[str, object]],
    tolerances: Mapping[str, Tol],
    where: str = "",
) -> list[str]:
    """Every value of ``want``'s rows that ``got``'s rows miss, row by row: the columns of
    ``want`` only (a column added since is not in it), each within its tolerance. Every
    column of ``want`` must be named in ``tolerances`` (EXACT included): a new column gets a
    stated decision, not a silent default."""
    unnamed = sorted({c for row in want for c in row} - set(tolerances))
    if unnamed:
        raise KeyError(f"{where}: no tolerance stated for column(s) {', '.join(unnamed)}")
    if len(got) != len(want):
        return [f"{where}: {len(got)} rows, want {len(want)}"]
    bad = []
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for col, value in w.items():
            tol = tolerances[col]
            if col not in g:
                bad.append(f"{where}[{i}].{col}: missing")
            elif not tol.ok(g[col], value):
                bad.append(f"{where}[{i}].{col}: {g[col]!r}, want {value!r} ({tol})")
    return bad


def assert_rows_match(
    got: Sequence[Mapping[str, object]],
    want: Sequence[Mapping[str, object]],
    tolerances: Mapping[str, Tol],
    where: str = "",
) -> None:
    bad = mismatches(got, want, tolerances, where)
    assert not bad, f"{len(bad)} value(s) differ:\n" + "\n".join(bad[:40])


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """``||got - want|| / ||want||`` (2-norms, in float64): the error on the scale of the values."""
    diff = (got.double() - want.double()).norm()
    return float(diff / want.double().norm().clamp_min(torch.finfo(torch.float64).tiny))


def assert_close_to_scale(
    got: torch.Tensor, want: torch.Tensor, rel: float, what: str = ""
) -> None:
    """``got`` equals ``want`` up to ``rel`` of ``want``'s norm. Not elementwise: an entry
    near zero (a weight the update barely moves) carries the same absolute rounding as its
    neighbours, and an elementwise relative bound would fail on it for no error at all."""
    assert got.shape == want.shape, f"{what}: shape {tuple(got.shape)}, want {tuple(want.shape)}"
    err = relative_error(got, want)
    assert err <= rel, f"{what}: ||got - want|| / ||want|| = {err:.3g} > {rel:g}"
