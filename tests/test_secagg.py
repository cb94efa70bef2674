"""Secure aggregation, the pure protocol (greenfl.secagg): encoding bound, Shamir sharing,
masking, the four rounds with drop-outs, what the server's view of one client shows, and
the cost model by hand."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from greenfl.secagg import FixedPoint, RoundParams, SecAggClient, SecAggError, SecAggServer, shamir
from greenfl.secagg.cost import ENCRYPTED_SHARE_BYTES, secagg_cost
from greenfl.secagg.graph import default_threshold, neighbourhoods
from greenfl.secagg.masking import agree, pair_context, pairwise_mask, prg_uint32, self_mask
from greenfl.secagg.messages import EncryptedShare, ShareBundle

DIM = 300


def params(n: int, neighbours: int | None = None, threshold: int | None = None) -> RoundParams:
    deg = n - 1 if neighbours is None or neighbours >= n - 1 else 2 * (neighbours // 2)
    return RoundParams(
        round_tag=b"test|r1",
        vector_length=DIM,
        encoding=FixedPoint.for_clients(n, 1.0),
        threshold=threshold or default_threshold(deg),
        neighbours=neighbours,
        graph_seed=7,
    )


@dataclasses.dataclass
class Run:
    server: SecAggServer
    clients: dict[int, SecAggClient]
    masked: dict[int, np.ndarray]
    responses: list


def run_protocol(
    inputs: dict[int, np.ndarray],
    p: RoundParams,
    drop_after_share: frozenset[int] = frozenset(),
    drop_after_mask: frozenset[int] = frozenset(),
    finish: bool = True,
) -> tuple[Run, object]:
    """All four rounds in process; clients in ``drop_after_share`` send no masked input,
    those in ``drop_after_mask`` never answer the unmasking round."""
    server = SecAggServer(p)
    clients = {u: SecAggClient(u) for u in inputs}
    books = server.key_books([c.advertise() for c in clients.values()])
    bundles = server.route_shares([clients[u].share_keys(b) for u, b in books.items()])
    masked_msgs = [
        clients[u].masked_input(b, inputs[u])
        for u, b in bundles.items()
        if u not in drop_after_share
    ]
    requests = server.unmask_requests(masked_msgs)
    responses = [clients[u].unmask(r) for u, r in requests.items() if u not in drop_after_mask]
    masked = {m.client_id: np.frombuffer(m.data, "<u4") for m in masked_msgs}
    run = Run(server, clients, masked, responses)
    return run, (server.aggregate(responses) if finish else None)


def random_inputs(n: int, seed: int = 0) -> dict[int, np.ndarray]:
    rng = np.random.default_rng(seed)
    # Ids need not be 0..n-1: a deployment aggregates a cohort of scattered ids.
    return {3 * i + 1: rng.uniform(-1, 1, DIM).astype(np.float32) for i in range(n)}


# ---- encoding ------------------------------------------------------------------------
def test_encoding_sum_is_within_the_documented_bound() -> None:
    rng = np.random.default_rng(1)
    for n, clip in ((1, 1.0), (50, 1.0), (1000, 0.1), (7, 30.0)):
        enc = FixedPoint.for_clients(n, clip)
        xs = rng.uniform(-clip, clip, (n, 2000)).astype(np.float32)
        xs[0, :4] = [clip, -clip, 0.0, clip / 3]  # the edges of the range too
        total = np.zeros(2000, np.uint32)
        for x in xs:
            total += enc.encode(x)
        err = np.abs(enc.decode_sum(total, n) - xs.astype(np.float64).sum(0)).max()
        assert err <= enc.max_sum_error(n)
        assert enc.max_sum_error(n) == n * 2.0 ** -(enc.frac_bits + 1)
        # The bound is tight-ish: finer steps would not fit the worst-case sum in 31 bits.
        assert n * clip * 2.0 ** (enc.frac_bits + 1) > 2**31 - 1 - n


def test_encoding_clips_nans_and_refuses_sums_it_cannot_decode() -> None:
    enc = FixedPoint.for_clients(4, 1.0)
    got = enc.decode_sum(enc.encode(np.array([5.0, -5.0, np.nan, 0.25])), 1)
    assert got.tolist() == [1.0, -1.0, 0.0, 0.25]
    with pytest.raises(SecAggError, match="decodes 1..4"):
        enc.decode_sum(np.zeros(3, np.uint32), 5)
    with pytest.raises(SecAggError, match="does not fit"):
        FixedPoint(1.0, 31, 2)


# ---- Shamir --------------------------------------------------------------------------
def test_t_shares_reconstruct_and_t_minus_1_do_not_determine_the_secret() -> None:
    secret = bytes(range(32))
    shares = shamir.split(secret, 4, [1, 2, 3, 4, 5, 6, 7])
    rng = np.random.default_rng(0)
    for _ in range(5):
        pick = [shares[i] for i in rng.choice(7, 4, replace=False)]
        assert shamir.combine(pick, 4) == secret
    with pytest.raises(SecAggError, match="3 shares, 4 needed"):
        shamir.combine(shares[:3], 4)
    # Any secret at all is consistent with 3 shares: with a made-up value at x = 0 as the
    # fourth point, the degree-3 polynomial through them exists and gives that value.
    for other in (bytes(32), b"\xff" * 32, bytes(reversed(range(32)))):
        fake = shamir.Share(0, int.from_bytes(other, "big").to_bytes(shamir.SHARE_Y_BYTES, "big"))
        assert shamir.combine([*shares[:3], fake], 4) == other
    # And shares of one secret are not shares of another: a fresh split differs.
    again = shamir.split(secret, 4, [1, 2, 3, 4, 5, 6, 7])
    assert [s.y for s in again[:3]] != [s.y for s in shares[:3]]


def test_shamir_refuses_bad_arguments() -> None:
    with pytest.raises(SecAggError):
        shamir.split(b"short", 2, [1, 2])
    with pytest.raises(SecAggError):
        shamir.split(bytes(32), 3, [1, 2])
    with pytest.raises(SecAggError):
        shamir.split(bytes(32), 2, [0, 1])
    s = shamir.split(bytes(32), 2, [1, 2])
    with pytest.raises(SecAggError, match="duplicate"):
        shamir.combine([s[0], s[0]], 2)


# ---- masks ---------------------------------------------------------------------------
def test_prg_is_deterministic_per_seed_and_pair_masks_cancel() -> None:
    seed = bytes(range(32))
    assert np.array_equal(prg_uint32(seed, 100), prg_uint32(seed, 100))
    assert not np.array_equal(prg_uint32(seed, 100), prg_uint32(bytes(32), 100))
    total = pairwise_mask(seed, 3, 9, 1000) + pairwise_mask(seed, 9, 3, 1000)
    assert not total.any()
    # AES-CTR output looks uniform: each byte value about equally often.
    counts = np.bincount(self_mask(seed, 1 << 16).view(np.uint8), minlength=256)
    expected = (1 << 18) / 256
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 400  # 255 degrees of freedom: p < 1e-7 beyond this


def test_the_graph_is_regular_symmetric_and_deterministic() -> None:
    ids = list(range(0, 100, 2))
    g = neighbourhoods(ids, 10, seed=3)
    assert g == neighbourhoods(ids, 10, seed=3) and g != neighbourhoods(ids, 10, seed=4)
    assert all(len(vs) == 10 and u not in vs for u, vs in g.items())
    assert all(u in g[v] for u, vs in g.items() for v in vs)
    assert neighbourhoods([1, 2, 3], None, 0) == {1: (2, 3), 2: (1, 3), 3: (1, 2)}


# ---- the protocol --------------------------------------------------------------------
def test_50_clients_sum_is_exact_within_the_bound_with_30_percent_dropping() -> None:
    """50 clients, complete graph, t = 25: 3 drop after sharing (their pairwise masks are
    rebuilt from s_sk shares), then 15 (30%) drop after masking (their inputs count, their
    self masks are rebuilt from the others' shares)."""
    inputs = random_inputs(50)
    ids = sorted(inputs)
    after_share = frozenset(ids[:3])
    after_mask = frozenset(ids[3:18])
    p = params(50)
    _, agg = run_protocol(inputs, p, after_share, after_mask)
    kept = [u for u in ids if u not in after_share]
    plain = np.sum([inputs[u].astype(np.float64) for u in kept], axis=0)
    assert agg.survivors == tuple(kept) and agg.dropped == tuple(sorted(after_share))
    assert np.abs(agg.total - plain).max() <= p.encoding.max_sum_error(len(kept))


def test_secagg_plus_neighbourhoods_with_drop_outs() -> None:
    inputs = random_inputs(40, seed=2)
    ids = sorted(inputs)
    p = params(40, neighbours=12, threshold=5)
    _, agg = run_protocol(inputs, p, frozenset(ids[5:8]), frozenset(ids[20:30]))
    kept = [u for u in ids if u not in ids[5:8]]
    plain = np.sum([inputs[u].astype(np.float64) for u in kept], axis=0)
    assert np.abs(agg.total - plain).max() <= p.encoding.max_sum_error(len(kept))


def test_the_servers_view_of_one_client_does_not_decode_to_its_update() -> None:
    """The server holds y_u and, before unmasking, no share of b_u at all; after it, t - 1
    shares of b_u are not enough. y_u alone decodes to noise: it is the input plus a mask
    the server cannot rebuild."""
    inputs = random_inputs(8, seed=3)
    p = params(8, threshold=4)
    run, agg = run_protocol(inputs, p)
    u = sorted(inputs)[0]
    y = run.masked[u]
    x = inputs[u].astype(np.float64)
    alone = p.encoding.decode_sum(y, 1)
    assert np.abs(alone - x).max() > 1.0  # not the update, nowhere near
    assert abs(np.corrcoef(alone, x)[0, 1]) < 0.3
    # Masked values spread over the whole 32-bit ring, while the encoding uses a sliver.
    assert y.max() > 2**31 and y.min() < 2**30
    # With t - 1 of the survivors' shares of b_u, reconstruction fails loudly...
    shares = [shamir.Share(r.x, r.y) for m in run.responses for r in m.self_shares if r.owner == u]
    assert len(shares) >= p.threshold
    with pytest.raises(SecAggError, match="needed"):
        shamir.combine(shares[: p.threshold - 1], p.threshold)
    # ...and a server aggregating from too few responses gets no sum at all.
    server = run.server
    with pytest.raises(SecAggError, match="t=4 needed"):
        server.aggregate(run.responses[: p.threshold - 1])
    # A server that also learnt s_sk_u (by claiming u dropped) strips the pairwise masks,
    # and still holds only encode(x_u) + PRG(b_u): noise without t shares of b_u.
    client = run.clients[u]
    pair = np.zeros(DIM, np.uint32)
    for v in client._masked_with:
        ctx = pair_context(p.round_tag, u, v)
        seed = agree(client._s_sk, client._keys[v].s_pk, b"greenfl-secagg-mask", ctx)
        pair += pairwise_mask(seed, u, v, DIM)
    stripped = p.encoding.decode_sum(y - pair, 1)
    assert np.abs(stripped - x).max() > 1.0
    # Only with b_u as well is it the update: the masks are all that hides it.
    b = shamir.combine(shares, p.threshold)
    exact = p.encoding.decode_sum(y - pair - self_mask(b, DIM), 1)
    assert np.abs(exact - x).max() <= p.encoding.max_sum_error(1)
    assert agg is not None


def test_reconstruction_fails_loudly_below_the_threshold() -> None:
    inputs = random_inputs(10, seed=4)
    ids = sorted(inputs)
    p = params(10, threshold=6)
    with pytest.raises(SecAggError, match="t=6 needed"):
        run_protocol(inputs, p, drop_after_mask=frozenset(ids[:5]))
    # Fewer masked inputs than t: the server stops before asking anyone to unmask.
    with pytest.raises(SecAggError, match="fewer than the threshold t=6"):
        run_protocol(inputs, p, drop_after_share=frozenset(ids[:5]))


def test_a_client_refuses_to_reveal_both_secrets_of_one_peer() -> None:
    inputs = random_inputs(6, seed=5)
    run, _ = run_protocol(inputs, params(6, threshold=3), finish=False)
    ids = sorted(inputs)
    from greenfl.secagg.messages import UnmaskRequest

    with pytest.raises(SecAggError, match="both secrets"):
        run.clients[ids[0]].unmask(UnmaskRequest(tuple(ids), (ids[1],)))


def test_a_tampered_share_is_rejected() -> None:
    inputs = random_inputs(5, seed=6)
    p = params(5, threshold=3)
    server = SecAggServer(p)
    clients = {u: SecAggClient(u) for u in inputs}
    books = server.key_books([c.advertise() for c in clients.values()])
    bundles = server.route_shares([clients[u].share_keys(b) for u, b in books.items()])
    u = sorted(inputs)[0]
    good = bundles[u]
    first = good.shares[0]
    flipped = bytes([first.ciphertext[0] ^ 1]) + first.ciphertext[1:]
    bad = EncryptedShare(first.sender, first.recipient, first.nonce, flipped)
    with pytest.raises(SecAggError, match="failed authentication"):
        clients[u].masked_input(ShareBundle(good.sharers, (bad, *good.shares[1:])), inputs[u])
    # A share re-addressed by the server to another round's tag is refused too (AAD).
    other = SecAggClient(u)
    other.share_keys(dataclasses.replace(books[u], params=dataclasses.replace(p, round_tag=b"x")))
    other._c_sk = clients[u]._c_sk
    with pytest.raises(SecAggError, match="failed authentication"):
        other.masked_input(good, inputs[u])


def test_cost_by_hand_for_a_small_case() -> None:
    """n = 4, complete graph (d = 3, t = 2), 10 values, 32 bits, nobody dropping."""
    c = secagg_cost(4, 10, neighbours=None, bits=32)
    assert ENCRYPTED_SHARE_BYTES == 200
    # up: advertise 8 + 64; shares 8 + 3 x 200; masked input same size as float32, + id 8;
    # unmask 8 + 3 x (8 + 8 + 66)
    assert c.bytes_up == 72 + 608 + 8 + 254
    # down: 3 neighbours' keys 3 x 72; sharers 4 x 8 + 3 x 200; survivors/dropped 4 x 8
    assert c.bytes_down == 216 + 632 + 32
    assert c.message_rounds == 4
    assert c.client_key_agreements == 2 + 3 * 3
    assert c.client_prg_bytes == 4 * 10 * 4 and c.server_prg_bytes == 4 * 10 * 4
    # client seconds: (11 + 6) agreements + 160 PRG bytes + 2*3*2 Shamir multiplies + 40 adds
    expected_s = 17 * 1.0e-4 + 160 / 1.9e8 + 12 * 3.2e-6 + 40 / 1.35e9
    assert c.client_s == pytest.approx(expected_s)
    assert c.client_flops == pytest.approx(expected_s * 3.0e10)
    # Dropping adds server work (agreements and PRG for each dropped client's pairs).
    assert secagg_cost(4, 10, dropped=1).server_s > c.server_s
    # 16 bits per value save 2 bytes a value over float32.
    assert secagg_cost(4, 10, bits=16).bytes_up == c.bytes_up - 20
