"""Update codecs: exactness, error bounds, unbiasedness, byte counts, error feedback and
rejection of malformed payloads. Expected values are computed here from the documented
formats, not by calling the codec's own helpers."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from greenfl.compression import CODECS
from greenfl.compression import make as make_codec
from greenfl.compression.base import Codec, EncodedUpdate
from greenfl.compression.topk import TopKCodec
from greenfl.core.errors import ConfigError, UpdateRejected


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, generator=gen(seed), dtype=torch.float32)


# ---- registry -------------------------------------------------------------------------


def test_registry_builds_every_codec_satisfying_the_protocol() -> None:
    assert set(CODECS) == {"identity", "q8", "q4", "topk"}
    for name in CODECS:
        codec = make_codec(name)
        assert isinstance(codec, Codec)
        assert codec.name == name


def test_unknown_codec_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="q3"):
        make_codec("q3")


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("topk", {"ratio": 0.0}),
        ("topk", {"ratio": 1.5}),
        ("topk", {"k": 3}),
        ("q8", {"chunk_size": 0}),
        ("q4", {"chunk_size": 2.5}),
        ("identity", {"bits": 8}),
    ],
)
def test_bad_codec_parameters_are_config_errors(name: str, params: dict) -> None:
    with pytest.raises(ConfigError, match=name):
        make_codec(name, **params)


# ---- identity -------------------------------------------------------------------------


def test_identity_round_trips_exactly_as_little_endian_float32() -> None:
    x = randn(1001)
    codec = make_codec("identity")
    enc = codec.encode(x, 0, gen())
    assert enc.codec == "identity" and enc.num_elements == 1001
    assert len(enc.payload) == 4 * 1001
    assert enc.payload == np.asarray(x.numpy(), dtype="<f4").tobytes()
    out = codec.decode(enc)
    assert out.dtype == torch.float32 and out.shape == (1001,)
    assert torch.equal(out, x)


def test_encode_rejects_wrong_dtype_and_shape() -> None:
    for name in CODECS:
        codec = make_codec(name)
        with pytest.raises(TypeError):
            codec.encode(torch.zeros(4, dtype=torch.float64), 0, gen())
        with pytest.raises(ValueError):
            codec.encode(torch.zeros(2, 2), 0, gen())


@pytest.mark.parametrize("name", ["q8", "q4", "topk"])
def test_lossy_codecs_reject_non_finite_updates(name: str) -> None:
    x = randn(10)
    x[3] = float("nan")
    with pytest.raises(UpdateRejected, match="non-finite"):
        make_codec(name).encode(x, 0, gen())


# ---- q8 / q4 --------------------------------------------------------------------------

BITS = {"q8": 8, "q4": 4}


def chunk_steps(x: torch.Tensor, bits: int, chunk: int) -> np.ndarray:
    """Per-element step (max - min)/(2^bits - 1) of its chunk, computed chunk by chunk."""
    xs = x.double().numpy()
    steps = np.empty_like(xs)
    for start in range(0, xs.size, chunk):
        part = xs[start : start + chunk]
        steps[start : start + chunk] = (part.max() - part.min()) / (2**bits - 1)
    return steps


@pytest.mark.parametrize("name", ["q8", "q4"])
@pytest.mark.parametrize("chunk", [1024, 100, 7])
def test_quantised_values_are_within_one_step(name: str, chunk: int) -> None:
    # Varying scales per chunk so a global (not per-chunk) range would break the bound.
    x = randn(2500) * torch.linspace(0.01, 50.0, 2500)
    out = make_codec(name, chunk_size=chunk).decode(
        make_codec(name, chunk_size=chunk).encode(x, 0, gen(3))
    )
    steps = chunk_steps(x, BITS[name], chunk)
    err = np.abs(out.double().numpy() - x.double().numpy())
    # float32 slack: the stored step may be one ulp larger, and the output is float32.
    assert (err <= steps * (1 + 1e-6) + 1e-6 * np.abs(x.numpy())).all()
    # Lossy but not wildly so: a typical error is well under a step.
    assert err.mean() < 0.5 * steps.mean()


@pytest.mark.parametrize("name", ["q8", "q4"])
def test_stochastic_rounding_is_unbiased(name: str) -> None:
    x = randn(300, seed=5)
    codec = make_codec(name, chunk_size=128)
    g = gen(11)
    draws = 3000
    total = torch.zeros(300, dtype=torch.float64)
    for _ in range(draws):
        total += codec.decode(codec.encode(x, 0, g)).double()
    bias = total.numpy() / draws - x.double().numpy()
    steps = chunk_steps(x, BITS[name], 128)
    # One draw errs by at most a step with std <= step/2, so the mean of `draws` has
    # std <= step / (2 sqrt(draws)); 6 sigma over 300 elements essentially never trips,
    # while round-to-nearest would be off by up to half a step (~40 sigma).
    assert (np.abs(bias) <= 6 * steps / (2 * math.sqrt(draws)) + 1e-7).all()
    assert abs(bias.mean()) <= steps.mean() / math.sqrt(draws * 300) * 6


@pytest.mark.parametrize("name", ["q8", "q4"])
@pytest.mark.parametrize("n", [0, 1, 2, 15, 1023, 1024, 1025, 4097])
def test_quantised_byte_count(name: str, n: int) -> None:
    chunk = 1024
    enc = make_codec(name).encode(randn(n), 0, gen())
    chunks = -(-n // chunk)
    body = n if name == "q8" else (n + 1) // 2
    assert len(enc.payload) == 8 + 8 * chunks + body
    assert make_codec(name).decode(enc).shape == (n,)


def test_q8_is_a_quarter_of_identity_for_large_updates() -> None:
    n = 100_000
    q8 = len(make_codec("q8").encode(randn(n), 0, gen()).payload)
    q4 = len(make_codec("q4").encode(randn(n), 0, gen()).payload)
    assert q8 == 8 + 8 * 98 + n
    assert q4 == 8 + 8 * 98 + n // 2
    assert q8 < 0.26 * 4 * n and q4 < 0.13 * 4 * n


@pytest.mark.parametrize("name", ["q8", "q4"])
def test_header_ranges_cover_each_chunk(name: str) -> None:
    # If the float32 step rounded down, min + L*step would fall short of the chunk's max and
    # the largest element would be clamped, a (small) bias; about half of random chunks hit
    # that rounding, so 40 chunks of 3 make the check bite.
    chunk, n = 3, 120
    x = randn(n, seed=4)
    enc = make_codec(name, chunk_size=chunk).encode(x, 0, gen())
    c = n // chunk
    lo = np.frombuffer(enc.payload, "<f4", c, 8).astype(np.float64)
    step = np.frombuffer(enc.payload, "<f4", c, 8 + 4 * c).astype(np.float64)
    grid = x.double().numpy().reshape(c, chunk)
    assert np.array_equal(lo, grid.min(axis=1))
    assert (lo + (2 ** BITS[name] - 1) * step >= grid.max(axis=1)).all()


@pytest.mark.parametrize("name", ["q8", "q4"])
def test_quantisation_is_deterministic_by_seed(name: str) -> None:
    x = randn(3000)
    codec = make_codec(name)
    a = codec.encode(x, 0, gen(42)).payload
    b = codec.encode(x, 0, gen(42)).payload
    c = codec.encode(x, 0, gen(43)).payload
    assert a == b
    assert a != c


@pytest.mark.parametrize("name", ["q8", "q4"])
def test_constant_chunks_decode_exactly(name: str) -> None:
    codec = make_codec(name, chunk_size=64)
    const = torch.full((200,), 0.3, dtype=torch.float32)
    assert torch.equal(codec.decode(codec.encode(const, 0, gen())), const)
    # One constant chunk beside varying ones: only that chunk's scale is 0.
    mixed = torch.cat([randn(64), torch.full((64,), -2.5), randn(72)])
    out = codec.decode(codec.encode(mixed, 0, gen()))
    assert torch.equal(out[64:128], mixed[64:128])
    assert torch.isfinite(out).all()


def test_q4_packs_low_nibble_first_and_q8_one_byte_per_value() -> None:
    # Integers 0..L with min 0 and max L give step 1 and exact levels, so no randomness.
    levels4 = torch.tensor([0, 1, 2, 15, 14, 3, 7], dtype=torch.float32)
    enc = make_codec("q4", chunk_size=16).encode(levels4, 0, gen())
    n, chunk, lo, step = struct.unpack_from("<IIff", enc.payload)
    assert (n, chunk, lo, step) == (7, 16, 0.0, 1.0)
    assert enc.payload[16:] == bytes([0x10, 0xF2, 0x3E, 0x07])
    levels8 = torch.arange(256, dtype=torch.float32)
    enc8 = make_codec("q8", chunk_size=256).encode(levels8, 0, gen())
    assert enc8.payload[16:] == bytes(range(256))


# ---- topk -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "ratio", "k"),
    [
        (30, 0.1, 3),
        (1000, 0.01, 10),
        (1001, 0.01, 11),
        (5, 0.1, 1),
        (7, 1.0, 7),
        (0, 0.5, 0),
        (100, 0.07, 7),
    ],  # 0.07 * 100 is 7.000000000000001 in binary floats
)
def test_topk_byte_count(n: int, ratio: float, k: int) -> None:
    codec = make_codec("topk", ratio=ratio)
    enc = codec.encode(randn(n), 0, gen())
    assert len(enc.payload) == 8 + 8 * k
    assert int(torch.count_nonzero(codec.decode(enc))) == k


def test_topk_default_ratio_is_a_tenth() -> None:
    enc = make_codec("topk").encode(randn(1000), 0, gen())
    assert len(enc.payload) == 8 + 8 * 100


def test_topk_keeps_largest_of_update_plus_residual_and_stores_the_rest() -> None:
    n, k = 500, 25
    codec = make_codec("topk", ratio=0.05)
    assert isinstance(codec, TopKCodec)
    assert codec.residual(7) is None
    first = randn(n, seed=1)
    codec.encode(first, 7, gen())
    residual = codec.residual(7)
    assert residual is not None
    second = randn(n, seed=2)
    total = (second + residual).numpy()

    out = codec.decode(codec.encode(second, 7, gen())).numpy()

    expected_idx = np.argsort(np.abs(total))[-k:]
    kept = np.flatnonzero(out)
    assert kept.size == k
    assert set(kept) == set(expected_idx)
    assert np.array_equal(out[kept], total[kept])
    dropped = total.copy()
    dropped[kept] = 0.0
    new_residual = codec.residual(7)
    assert new_residual is not None
    assert np.array_equal(new_residual.numpy(), dropped)
    # Every kept magnitude beats every dropped one.
    assert np.abs(out[kept]).min() >= np.abs(dropped).max()


def test_topk_residuals_are_per_client_and_reset() -> None:
    codec = make_codec("topk", ratio=0.1)
    assert isinstance(codec, TopKCodec)
    codec.encode(randn(100, seed=1), 1, gen())
    before = codec.residual(1)
    codec.encode(randn(100, seed=2), 2, gen())
    assert torch.equal(codec.residual(1), before)
    codec.reset(1)
    assert codec.residual(1) is None and codec.residual(2) is not None
    codec.reset()
    assert codec.residual(2) is None
    # The returned residual is a copy: mutating it cannot corrupt codec state.
    codec.encode(randn(100), 3, gen())
    r = codec.residual(3)
    r += 100.0
    assert codec.residual(3).abs().max() < 100.0


def test_topk_error_feedback_delivers_the_update_over_rounds() -> None:
    n, rounds = 1000, 200
    update = randn(n, seed=9)
    codec = make_codec("topk", ratio=0.05)
    assert isinstance(codec, TopKCodec)
    sent = torch.zeros(n, dtype=torch.float64)
    errors = []
    for r in range(1, rounds + 1):
        sent += codec.decode(codec.encode(update, 0, gen())).double()
        errors.append(float((sent / r - update.double()).norm() / update.double().norm()))
    # Conservation: what was sent plus what is still owed is exactly what was given.
    owed = codec.residual(0).double()
    assert torch.allclose(sent + owed, rounds * update.double(), atol=1e-3)
    # Without feedback the average stays topk(update), which misses most of its norm.
    no_feedback = make_codec("topk", ratio=0.05)
    once = no_feedback.decode(no_feedback.encode(update, 0, gen())).double()
    floor = float((once - update.double()).norm() / update.double().norm())
    assert floor > 0.8
    assert errors[-1] < 0.05
    assert errors[-1] < errors[9] < errors[0]


def test_topk_rejects_a_changed_model_size() -> None:
    codec = make_codec("topk")
    codec.encode(randn(100), 0, gen())
    with pytest.raises(ValueError, match="reset"):
        codec.encode(randn(99), 0, gen())


# ---- malformed payloads ---------------------------------------------------------------


def encoded(name: str, n: int = 300) -> EncodedUpdate:
    return make_codec(name, **({"chunk_size": 128} if name in BITS else {})).encode(
        randn(n), 0, gen()
    )


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize("cut", [1, 5, 100])
def test_truncated_payload_is_rejected_clearly(name: str, cut: int) -> None:
    enc = encoded(name)
    bad = EncodedUpdate(name, enc.num_elements, enc.payload[:-cut])
    with pytest.raises(UpdateRejected, match=name):
        make_codec(name).decode(bad)


@pytest.mark.parametrize("name", list(CODECS))
@pytest.mark.parametrize("size", [0, 3, 7])
def test_payload_shorter_than_header_is_rejected(name: str, size: int) -> None:
    enc = encoded(name)
    with pytest.raises(UpdateRejected, match=name):
        make_codec(name).decode(EncodedUpdate(name, enc.num_elements, enc.payload[:size]))


@pytest.mark.parametrize("name", list(CODECS))
def test_trailing_bytes_wrong_count_and_wrong_codec_are_rejected(name: str) -> None:
    enc = encoded(name)
    codec = make_codec(name)
    with pytest.raises(UpdateRejected, match="trailing"):
        codec.decode(EncodedUpdate(name, enc.num_elements, enc.payload + b"\0"))
    with pytest.raises(UpdateRejected):
        codec.decode(EncodedUpdate(name, enc.num_elements + 1, enc.payload))
    other = "q8" if name != "q8" else "q4"
    with pytest.raises(UpdateRejected, match=other):
        codec.decode(EncodedUpdate(other, enc.num_elements, enc.payload))


@pytest.mark.parametrize("name", ["q8", "q4"])
def test_quantised_header_fields_are_validated(name: str) -> None:
    enc = encoded(name)
    codec = make_codec(name)
    zero_chunk = enc.payload[:4] + struct.pack("<I", 0) + enc.payload[8:]
    with pytest.raises(UpdateRejected, match="chunk_size"):
        codec.decode(EncodedUpdate(name, enc.num_elements, zero_chunk))
    nan_min = enc.payload[:8] + struct.pack("<f", float("nan")) + enc.payload[12:]
    with pytest.raises(UpdateRejected, match="min"):
        codec.decode(EncodedUpdate(name, enc.num_elements, nan_min))
    # A chunk_size far above n is legal (one chunk) and must not make the decoder
    # allocate chunk_size elements; a wrong one changes the implied length.
    x = randn(300)
    one_chunk = make_codec(name, chunk_size=2**32 - 1).encode(x, 0, gen())
    assert len(one_chunk.payload) == 8 + 8 + len(enc.payload) - 8 - 8 * 3
    assert codec.decode(one_chunk).shape == (300,)
    huge = enc.payload[:4] + struct.pack("<I", 2**32 - 1) + enc.payload[8:]
    with pytest.raises(UpdateRejected, match="trailing"):
        codec.decode(EncodedUpdate(name, enc.num_elements, huge))


def test_topk_bad_indices_are_rejected() -> None:
    codec = make_codec("topk")

    def payload(n: int, idx: list[int]) -> EncodedUpdate:
        body = struct.pack(f"<II{len(idx)}I{len(idx)}f", n, len(idx), *idx, *[1.0] * len(idx))
        return EncodedUpdate("topk", n, body)

    assert codec.decode(payload(10, [1, 4, 9]))[4] == 1.0
    for idx in ([1, 10], [4, 4], [5, 2]):
        with pytest.raises(UpdateRejected, match="indices"):
            codec.decode(payload(10, idx))
    with pytest.raises(UpdateRejected, match="k=3"):
        codec.decode(payload(2, [0, 1, 1]))
