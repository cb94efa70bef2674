"""Shamir t-of-n secret sharing of 32-byte secrets over the prime field GF(2^521 - 1).

Why this prime: 2^521 - 1 is a Mersenne prime (a standard one: NIST P-521's field), wider
than any 256-bit secret, so a secret is one field element and needs no splitting. A share
is its x (1..n, never 0: f(0) is the secret) and f(x) as 66 big-endian bytes.

Security: the t-1 coefficients above the constant are drawn uniformly with ``secrets``, so
any t-1 shares are consistent with every possible secret (for each candidate secret there
is exactly one polynomial of degree t-1 through it and the t-1 shares) and reveal nothing.
t shares give f, and f(0), by Lagrange interpolation."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from greenfl.secagg.errors import SecAggError

PRIME = 2**521 - 1
SECRET_BYTES = 32
SHARE_Y_BYTES = (PRIME.bit_length() + 7) // 8  # 66


@dataclass(frozen=True)
class Share:
    x: int  # the evaluation point, 1..n
    y: bytes  # f(x), SHARE_Y_BYTES big-endian


def split(secret: bytes, threshold: int, xs: Sequence[int]) -> list[Share]:
    """Shares of ``secret`` at the points ``xs`` (distinct, in 1..PRIME-1); any
    ``threshold`` of them reconstruct it, fewer reveal nothing."""
    if len(secret) != SECRET_BYTES:
        raise SecAggError(f"a secret is {SECRET_BYTES} bytes, got {len(secret)}")
    if not 1 <= threshold <= len(xs):
        raise SecAggError(f"threshold {threshold} outside 1..{len(xs)} shares")
    if len(set(xs)) != len(xs) or any(not 0 < x < PRIME for x in xs):
        raise SecAggError("share points must be distinct and in 1..p-1")
    coeffs = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(PRIME) for _ in range(threshold - 1)
    ]
    out = []
    for x in xs:
        acc = 0
        for c in reversed(coeffs):  # Horner
            acc = (acc * x + c) % PRIME
        out.append(Share(int(x), acc.to_bytes(SHARE_Y_BYTES, "big")))
    return out


def combine(shares: Sequence[Share], threshold: int) -> bytes:
    """The secret from at least ``threshold`` shares (the first ``threshold`` are used);
    SecAggError with fewer, never a wrong secret silently."""
    if len(shares) < threshold:
        raise SecAggError(f"{len(shares)} shares, {threshold} needed to reconstruct")
    use = list(shares)[:threshold]
    xs = [s.x for s in use]
    if len(set(xs)) != len(xs):
        raise SecAggError("duplicate share points")
    ys = []
    for s in use:
        y = int.from_bytes(s.y, "big")
        if len(s.y) != SHARE_Y_BYTES or y >= PRIME:
            raise SecAggError(f"share at x={s.x} is not a field element")
        ys.append(y)
    secret = 0
    for i, (xi, yi) in enumerate(zip(xs, ys, strict=True)):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if j != i:
                num = num * (-xj) % PRIME
                den = den * (xi - xj) % PRIME
        secret = (secret + yi * num * pow(den, -1, PRIME)) % PRIME
    if secret >= 2 ** (8 * SECRET_BYTES):
        # Shares of different secrets (or forged ones) interpolate to a field element that
        # no 32-byte secret encodes: almost surely, so say so instead of truncating.
        raise SecAggError("the shares do not interpolate to a 32-byte secret")
    return secret.to_bytes(SECRET_BYTES, "big")
