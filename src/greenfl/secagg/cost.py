"""What secure aggregation costs one client and the server in one round, for the footprint
model: bytes, message rounds and compute, as a function of the clients n, the neighbours k,
the vector length and the bits per encoded value.

Bytes are the payloads of the protocol's messages as ``greenfl.secagg.messages`` holds
them (ids as 8 bytes, X25519 keys 32, an encrypted share pair 200: header 24 + two 66-byte
Shamir shares + 16-byte GCM tag, plus nonce 12 and two ids); framing is left out. The
masked input replaces the plain float32 upload, so only its difference from 4 bytes per
value is extra. Down, the round-3 bundle and request carry id lists of up to n.

Compute is counted in operations and turned into seconds on reference rates measured with
``cryptography`` 50 on one core of an AMD EPYC (shared, so conservative), and into
FLOP-equivalents (those seconds x the same core's float32 matmul rate) so a simulation can
charge it on a device's FLOP rate:

    X25519 agreement + HKDF  ~ 1.0e-4 s     (keygen ~ 8e-5 s, counted as an agreement)
    AES-256-CTR expansion     ~ 1.9e8 B/s   (the PRG, incl. the uint32 copy)
    521-bit modular multiply  ~ 3.2e-6 s    (Shamir, pure Python integers)
    AES-GCM of a share pair   ~ one agreement (dominated by per-call setup)
    uint32 add/sub            ~ 1.35e9 words/s
    reference float32 rate    ~ 3.0e10 FLOP/s

A client: 2 key pairs, 3 agreements per neighbour (encrypt, decrypt, mask), 2 Shamir
splits of degree t-1 per neighbour, d + 1 PRG expansions, 2 GCM operations per neighbour,
d + 1 vector additions. The server: sums n inputs, then per survivor one self-mask PRG and
one reconstruction (t^2 multiplies and t inverses of ~22 multiplies each), and per
dropped client a reconstruction plus d agreements and d PRG expansions."""

from __future__ import annotations

from dataclasses import dataclass

from greenfl.secagg.graph import default_threshold, degree
from greenfl.secagg.shamir import SHARE_Y_BYTES

ID_BYTES = 8
KEY_BYTES = 32
ENCRYPTED_SHARE_BYTES = 2 * ID_BYTES + 12 + (24 + 2 * SHARE_Y_BYTES + 16)  # 200
REVEALED_SHARE_BYTES = 2 * ID_BYTES + SHARE_Y_BYTES  # owner, x, y: 82
MESSAGE_ROUNDS = 4

KEY_AGREEMENT_S = 1.0e-4
PRG_BYTES_PER_S = 1.9e8
MODMUL_S = 3.2e-6
ADD_WORDS_PER_S = 1.35e9
REFERENCE_FLOPS_PER_S = 3.0e10
_INVERSE_MULS = 22  # a modular inverse (CPython's extended Euclid) ~7e-5 s ~ 22 multiplies


@dataclass(frozen=True)
class SecAggCost:
    """One round's secure-aggregation overhead (beyond a plain float32 upload)."""

    bytes_up: int  # per client
    bytes_down: int  # per client
    message_rounds: int
    client_s: float  # per client, at the reference rates
    server_s: float
    client_key_agreements: int
    client_prg_bytes: int
    server_prg_bytes: int

    @property
    def client_flops(self) -> float:
        """FLOP-equivalents: client_s at the reference core's float32 rate."""
        return self.client_s * REFERENCE_FLOPS_PER_S

    @property
    def server_flops(self) -> float:
        return self.server_s * REFERENCE_FLOPS_PER_S


def secagg_cost(
    n: int,
    vector_length: int,
    neighbours: int | None = None,
    bits: int = 32,
    threshold: int | None = None,
    dropped: int = 0,
) -> SecAggCost:
    """The cost for ``n`` clients (``dropped`` of them after sharing keys, before their
    masked input) aggregating vectors of ``vector_length`` values of ``bits`` bits."""
    d = degree(n, neighbours)
    t = default_threshold(d) if threshold is None else threshold
    survivors = n - dropped
    up = (
        (ID_BYTES + 2 * KEY_BYTES)  # 1: advertise
        + (ID_BYTES + d * ENCRYPTED_SHARE_BYTES)  # 2: shares out
        + (ID_BYTES + vector_length * (bits - 32) // 8)  # 3: masked vs float32 input
        + (ID_BYTES + d * REVEALED_SHARE_BYTES)  # 4: one share per neighbour
    )
    down = (
        d * (ID_BYTES + 2 * KEY_BYTES)  # 1: neighbours' keys
        + n * ID_BYTES
        + d * ENCRYPTED_SHARE_BYTES  # 2: sharers, shares in
        + n * ID_BYTES  # 3: survivors and dropped
    )
    prg_client = (d + 1) * vector_length * 4
    agreements = 2 + 3 * d
    shamir_muls = 2 * d * t
    client_s = (
        (agreements + 2 * d) * KEY_AGREEMENT_S
        + prg_client / PRG_BYTES_PER_S
        + shamir_muls * MODMUL_S
        + (d + 1) * vector_length / ADD_WORDS_PER_S
    )
    rebuilds = survivors + dropped
    prg_server = (survivors + dropped * d) * vector_length * 4
    server_s = (
        rebuilds * (t * t + t * _INVERSE_MULS) * MODMUL_S
        + dropped * d * KEY_AGREEMENT_S
        + prg_server / PRG_BYTES_PER_S
        + (n + survivors + dropped * d) * vector_length / ADD_WORDS_PER_S
    )
    return SecAggCost(
        bytes_up=up,
        bytes_down=down,
        message_rounds=MESSAGE_ROUNDS,
        client_s=client_s,
        server_s=server_s,
        client_key_agreements=agreements,
        client_prg_bytes=prg_client,
        server_prg_bytes=prg_server,
    )
