"""The client and server state machines of secure aggregation, four message rounds:

1. advertise keys: each client sends two fresh X25519 public keys (c_pk, s_pk); the server
   answers each with the round's parameters and its neighbours' keys;
2. share keys: each client draws a self-mask seed b_u, Shamir-shares b_u and its mask key
   s_sk_u t-of-k among its neighbours, and sends each neighbour's pair of shares encrypted
   (AES-GCM, key from X25519(c_sk_u, c_pk_v)); the server routes them;
3. masked input: y_u = encode(x_u) + PRG(b_u) + sum_v +-PRG(s_uv) mod 2^32, over the
   neighbours that shared (U2);
4. unmasking: each survivor reveals its shares of b_v for the clients whose masked input
   arrived (U3) and of s_sk_v for those that shared but sent none; the server rebuilds
   the self masks and the dropped clients' pairwise masks and removes them.

The server ends with sum_u x_u over U3 and nothing else: every y_u it holds is its input
plus a self mask it can rebuild only from t shares, which honest clients give only for
survivors, never together with the same client's s_sk.

That sum is all the server can check. Each honest client clips its input to
[-clip_range, clip_range] per value (the encoding) and, when the round sets ``max_norm``,
to that L2 norm first; so the k survivors' sum is within k x clip_range per value and
within k x max_norm in L2 (plus the encoding's rounding). ``SecAggServer.aggregate``
refuses any other sum (``SumOutOfRange``): a client that skipped the clip, or sent words
that are no encoding, is caught unless its excess hides inside the room the others left.
It bounds the sum, never one client: docs/secure-aggregation.md says what that gives up."""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from greenfl.secagg import shamir
from greenfl.secagg.errors import SecAggError, SumOutOfRange
from greenfl.secagg.graph import RoundParams, degree, neighbourhoods
from greenfl.secagg.masking import (
    SEED_BYTES,
    agree,
    pair_context,
    pairwise_mask,
    private_bytes,
    public_bytes,
    self_mask,
)
from greenfl.secagg.messages import (
    AdvertiseKeys,
    EncryptedShare,
    KeyBook,
    MaskedInput,
    RevealedShare,
    ShareBundle,
    ShareKeys,
    UnmaskRequest,
    UnmaskResponse,
)

_ENC, _MASK = b"greenfl-secagg-enc", b"greenfl-secagg-mask"
_HEADER = struct.Struct(">qqq")  # sender, recipient, share x


def _x_of(client_id: int) -> int:
    return client_id + 1  # Shamir points must be non-zero


def _aad(round_tag: bytes, sender: int, recipient: int) -> bytes:
    # Binds a ciphertext to its round and direction: the server cannot replay it elsewhere.
    return round_tag + b"|" + _HEADER.pack(sender, recipient, 0)


class SecAggClient:
    """One client through one aggregation. Call advertise, share_keys, masked_input and
    unmask in order; each raises SecAggError when the server's message is out of protocol."""

    def __init__(self, client_id: int) -> None:
        self.id = int(client_id)
        self._c_sk = X25519PrivateKey.generate()
        self._s_sk = X25519PrivateKey.generate()
        self._b = os.urandom(SEED_BYTES)
        self.params: RoundParams | None = None
        self._keys: dict[int, AdvertiseKeys] = {}
        self._held: dict[int, tuple[shamir.Share, shamir.Share]] = {}  # owner -> (b, s_sk)
        self._masked_with: tuple[int, ...] = ()
        self._revealed = False

    def advertise(self) -> AdvertiseKeys:
        return AdvertiseKeys(self.id, public_bytes(self._c_sk), public_bytes(self._s_sk))

    def share_keys(self, book: KeyBook) -> ShareKeys:
        p = book.params
        ids = [k.client_id for k in book.neighbours]
        if self.id in ids or len(set(ids)) != len(ids):
            raise SecAggError("the key book lists this client or a neighbour twice")
        pks = [k.c_pk for k in book.neighbours] + [k.s_pk for k in book.neighbours]
        if len(set(pks)) != len(pks):  # a repeated key would mean a peer impersonated
            raise SecAggError("the key book repeats a public key")
        if not 1 <= p.threshold <= len(ids):
            raise SecAggError(f"threshold {p.threshold} with {len(ids)} neighbours")
        self.params = p
        self._keys = {k.client_id: k for k in book.neighbours}
        xs = [_x_of(v) for v in ids]
        b_shares = shamir.split(self._b, p.threshold, xs)
        s_shares = shamir.split(private_bytes(self._s_sk), p.threshold, xs)
        out = []
        for v, bs, ss in zip(ids, b_shares, s_shares, strict=True):
            key = agree(self._c_sk, self._keys[v].c_pk, _ENC, pair_context(p.round_tag, self.id, v))
            nonce = os.urandom(12)
            plain = _HEADER.pack(self.id, v, bs.x) + bs.y + ss.y
            ct = AESGCM(key).encrypt(nonce, plain, _aad(p.round_tag, self.id, v))
            out.append(EncryptedShare(self.id, v, nonce, ct))
        return ShareKeys(self.id, tuple(out))

    def masked_input(self, bundle: ShareBundle, x: np.ndarray) -> MaskedInput:
        p = self._params
        if self.id not in bundle.sharers:
            raise SecAggError("this client is not among the round's sharers")
        peers = sorted(set(bundle.sharers) & self._keys.keys())
        if len(peers) < p.threshold:
            raise SecAggError(f"{len(peers)} neighbours shared keys, fewer than t={p.threshold}")
        for es in bundle.shares:
            self._take_share(es, p)
        missing = [v for v in peers if v not in self._held]
        if missing:
            raise SecAggError(f"no share from neighbours {missing[:5]} that the server says shared")
        vec = np.asarray(x).reshape(-1)
        if vec.size != p.vector_length:
            raise SecAggError(f"input of {vec.size} values, the round aggregates {p.vector_length}")
        n = p.vector_length
        y = p.encoding.encode(bounded_input(vec, p)) + self_mask(self._b, n)
        for v in peers:
            seed = agree(
                self._s_sk, self._keys[v].s_pk, _MASK, pair_context(p.round_tag, self.id, v)
            )
            y += pairwise_mask(seed, self.id, v, n)
        self._masked_with = tuple(peers)
        return MaskedInput(self.id, y.astype("<u4").tobytes())

    def unmask(self, req: UnmaskRequest) -> UnmaskResponse:
        p = self._params
        alive, gone = set(req.survivors), set(req.dropped)
        if alive & gone:
            raise SecAggError("asked for both secrets of the same client: refused")
        if len(alive) < p.threshold or self.id not in alive:
            raise SecAggError(f"{len(alive)} survivors (t={p.threshold}), or not this client")
        if self._revealed:  # a second request could name another split of the survivors
            raise SecAggError("already unmasked once this round")
        self._revealed = True
        b = tuple(
            RevealedShare(v, s.x, s.y) for v, (s, _) in sorted(self._held.items()) if v in alive
        )
        k = tuple(
            RevealedShare(v, s.x, s.y) for v, (_, s) in sorted(self._held.items()) if v in gone
        )
        return UnmaskResponse(self.id, b, k)

    def _take_share(self, es: EncryptedShare, p: RoundParams) -> None:
        if es.recipient != self.id or es.sender not in self._keys:
            raise SecAggError(f"a share from {es.sender} to {es.recipient} is not for this client")
        key = agree(
            self._c_sk,
            self._keys[es.sender].c_pk,
            _ENC,
            pair_context(p.round_tag, self.id, es.sender),
        )
        try:
            plain = AESGCM(key).decrypt(
                es.nonce, es.ciphertext, _aad(p.round_tag, es.sender, self.id)
            )
        except InvalidTag:
            raise SecAggError(f"the share from client {es.sender} failed authentication") from None
        sender, recipient, x = _HEADER.unpack_from(plain)
        y = shamir.SHARE_Y_BYTES
        body = plain[_HEADER.size :]
        if (sender, recipient, x) != (es.sender, self.id, _x_of(self.id)) or len(body) != 2 * y:
            raise SecAggError(f"the share from client {es.sender} is malformed")
        self._held[sender] = (shamir.Share(x, body[:y]), shamir.Share(x, body[y:]))

    @property
    def _params(self) -> RoundParams:
        if self.params is None:
            raise SecAggError("share_keys has not run")
        return self.params


def bounded_input(x: np.ndarray, p: RoundParams) -> np.ndarray:
    """What an honest client encodes: each value in [-clip_range, clip_range] (NaN as 0,
    as the encoding takes it), then scaled down to ``max_norm`` in L2 if the round sets one.
    Scaling after the per-value clip keeps both bounds."""
    clip = p.encoding.clip_range
    v = np.clip(np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0), -clip, clip)
    if p.max_norm is not None:
        norm = float(np.linalg.norm(v))
        if norm > p.max_norm:
            v = v * (p.max_norm / norm)
    return v


def sum_norm_bound(
    survivors: Sequence[int], p: RoundParams, norm_bounds: Mapping[int, float] | None = None
) -> float | None:
    """Largest L2 norm of the decoded sum of the survivors' honest inputs: each within
    the round's max_norm and its own bound in ``norm_bounds`` (the smaller), plus the
    rounding, at most max_sum_error per decoded value. None: some input has no bound."""
    total = 0.0
    for u in survivors:
        own = (norm_bounds or {}).get(u, math.inf)
        bound = min(own, p.max_norm if p.max_norm is not None else math.inf)
        if not math.isfinite(bound):
            return None
        total += bound
    rounding = p.encoding.max_sum_error(len(survivors)) * math.sqrt(p.vector_length)
    return total + rounding


def check_sum(
    total: np.ndarray,
    survivors: Sequence[int],
    p: RoundParams,
    norm_bounds: Mapping[int, float] | None = None,
) -> None:
    """SumOutOfRange unless ``total`` (decoded) is a sum the survivors could have sent
    honestly: every value within k x clip_range (exactly: k times the encoding's largest
    step count) for k survivors, and the L2 norm within ``sum_norm_bound``."""
    num_inputs = len(survivors)
    limit = p.encoding.max_abs_sum(num_inputs)
    over = np.abs(total) > limit
    if over.any():
        raise SumOutOfRange(
            f"the unmasked sum of {num_inputs} inputs has {int(over.sum())} of {total.size} "
            f"values beyond {num_inputs} x clip_range = {limit:.6g} (largest "
            f"{float(np.abs(total).max()):.6g}): some client did not clip; the round is refused"
        )
    bound = sum_norm_bound(survivors, p, norm_bounds)
    if bound is not None:
        norm = float(np.linalg.norm(total))
        if norm > bound:
            raise SumOutOfRange(
                f"the unmasked sum of {num_inputs} inputs has L2 norm {norm:.6g}, beyond the "
                f"{bound:.6g} their norm bounds allow (with rounding): some client's input "
                "was larger; the round is refused"
            )


@dataclass
class Aggregate:
    """What the server learns: the decoded sum over ``survivors`` (U3)."""

    total: np.ndarray  # float64
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]  # shared keys but sent no masked input


@dataclass
class SecAggServer:
    """The server through one aggregation: it routes, sums and unmasks, and never holds
    anything that decodes one client's input."""

    params_base: RoundParams
    keys: dict[int, AdvertiseKeys] = field(default_factory=dict)
    graph: dict[int, tuple[int, ...]] = field(default_factory=dict)
    sharers: tuple[int, ...] = ()
    masked: dict[int, np.ndarray] = field(default_factory=dict)

    def key_books(self, msgs: Iterable[AdvertiseKeys]) -> dict[int, KeyBook]:
        """Round 1: U1 = the clients that advertised; each gets its neighbours' keys."""
        self.keys = {m.client_id: m for m in msgs}
        p = self.params_base
        k = degree(len(self.keys), p.neighbours)
        if len(self.keys) < 2 or not 1 <= p.threshold <= k:
            raise SecAggError(f"{len(self.keys)} clients and t={p.threshold}: cannot aggregate")
        self.graph = neighbourhoods(list(self.keys), p.neighbours, p.graph_seed)
        return {u: KeyBook(p, tuple(self.keys[v] for v in vs)) for u, vs in self.graph.items()}

    def route_shares(self, msgs: Iterable[ShareKeys]) -> dict[int, ShareBundle]:
        """Round 2: U2 = the clients that shared; each gets the ciphertexts addressed to it."""
        got = {m.client_id: m for m in msgs if m.client_id in self.graph}
        self.sharers = tuple(sorted(got))
        self._need(len(self.sharers), "clients shared keys")
        inbox: dict[int, list[EncryptedShare]] = {u: [] for u in self.sharers}
        for u, m in got.items():
            for es in m.shares:
                if es.sender == u and es.recipient in inbox and es.recipient in self.graph[u]:
                    inbox[es.recipient].append(es)
        return {u: ShareBundle(self.sharers, tuple(inbox[u])) for u in self.sharers}

    def unmask_requests(self, msgs: Iterable[MaskedInput]) -> dict[int, UnmaskRequest]:
        """Round 3: U3 = the sharers whose masked input arrived (well-formed)."""
        n = self.params_base.vector_length
        for m in msgs:
            if m.client_id in self.sharers and len(m.data) == 4 * n:
                self.masked[m.client_id] = np.frombuffer(m.data, dtype="<u4").astype(np.uint32)
        survivors = tuple(sorted(self.masked))
        self._need(len(survivors), "masked inputs arrived")
        dropped = tuple(u for u in self.sharers if u not in self.masked)
        return {u: UnmaskRequest(survivors, dropped) for u in survivors}

    def aggregate(
        self, msgs: Sequence[UnmaskResponse], norm_bounds: Mapping[int, float] | None = None
    ) -> Aggregate:
        """Round 4: the sum over U3 from the survivors' shares; SecAggError when some
        client's secret has fewer than t shares (never a wrong sum), SumOutOfRange when
        the sum is not one the survivors' clipped inputs can make (``check_sum``;
        ``norm_bounds``: the L2 norm the server expects of each client's input, where it
        knows more than the round's max_norm)."""
        p = self.params_base
        survivors = tuple(sorted(self.masked))
        dropped = tuple(u for u in self.sharers if u not in self.masked)
        self_sh: dict[int, list[shamir.Share]] = {u: [] for u in survivors}
        key_sh: dict[int, list[shamir.Share]] = {u: [] for u in dropped}
        for m in msgs:
            holder = m.client_id
            if holder not in self.masked:
                continue
            for bucket, shares in ((self_sh, m.self_shares), (key_sh, m.key_shares)):
                for r in shares:
                    # A share counts only from a neighbour of its owner, at its own point.
                    if r.owner in bucket and holder in self.graph[r.owner] and r.x == _x_of(holder):
                        bucket[r.owner].append(shamir.Share(r.x, r.y))
        total = np.zeros(p.vector_length, dtype=np.uint32)
        for u in survivors:
            total += self.masked[u]
        for u in survivors:
            b = self._rebuild(u, self_sh[u], "self-mask seed")
            total -= self_mask(b, p.vector_length)
        for u in dropped:
            sk = X25519PrivateKey.from_private_bytes(self._rebuild(u, key_sh[u], "mask key"))
            for v in self.graph[u]:
                if v in self.masked:  # v masked with u: take v's share of the pair's mask out
                    ctx = pair_context(p.round_tag, u, v)
                    seed = agree(sk, self.keys[v].s_pk, _MASK, ctx)
                    total -= pairwise_mask(seed, v, u, p.vector_length)
        decoded = p.encoding.decode_sum(total, len(survivors))
        check_sum(decoded, survivors, p, norm_bounds)
        return Aggregate(decoded, survivors, dropped)

    def _rebuild(self, owner: int, shares: list[shamir.Share], what: str) -> bytes:
        t = self.params_base.threshold
        if len(shares) < t:
            raise SecAggError(
                f"client {owner}'s {what}: {len(shares)} shares from survivors, t={t} needed"
            )
        return shamir.combine(shares, t)

    def _need(self, count: int, what: str) -> None:
        t = self.params_base.threshold
        if count < t:
            raise SecAggError(f"only {count} {what}, fewer than the threshold t={t}")
