"""The SQL side of the ledger: opening the file, one round's rows in one transaction, and the
ledger writer process that runs them off the round loop.

Standard library only, on purpose: ``LedgerWriter`` starts a child process
(``python -I writer_proc.py``, which imports this file beside it) that never imports
greenfl, torch or numpy, so it starts in tens of milliseconds and holds little memory. The
parent sends each round as packed columns (raw float64 / int64 bytes, name indices) over a
pipe; the child turns them into Python values, binds and commits them, each round with its
link of the hash chain. The same functions write inline when there is no child.

Messages are pickled tuples, framed by their length; byte blocks wrapped in
``pickle.PickleBuffer`` travel out of band, after the pickle, written from where they lie:
  parent -> child: ("init", path, (round columns, client columns), lock wait s),
                   ("rounds", round rows, packed client rows, state), ("flush", n), ("stop",)
  child -> parent: ("ready", pid), ("error", text) when a write fails,
                   ("flushed", n, error text or None) once all before ("flush", n) is
                   committed, ("ok",) after ("stop",)
The child holds an exclusive ``flock`` on the ledger file for its life, so a second writer
(a resumed server while the killed one's writer still commits its last rounds) waits for the
first to finish instead of writing beside it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import pickle
import sqlite3
import struct
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

# Client rows a single INSERT carries: 256 x 21 = 5,376 parameters, under SQLite's 32,766.
ROWS_PER_INSERT = 256
_HEADER = struct.Struct("<II")  # pickle bytes, out-of-band buffers
_SIZE = struct.Struct("<Q")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN / COMMIT
    conn.execute("PRAGMA journal_mode=WAL" if path != ":memory:" else "PRAGMA journal_mode=MEMORY")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def unpack_rounds(packed: Sequence[Any]) -> list[list[list[Any]]]:
    """Packed rounds (greenfl.ledger.rows.pack_rounds): per round, one list per column."""
    fblock, iblock, rounds = packed
    floats = memoryview(fblock).cast("d").tolist() if len(fblock) else []
    ints = memoryview(iblock).cast("q").tolist() if len(iblock) else []
    out: list[list[list[Any]]] = []
    for n, desc in rounds:
        columns: list[list[Any]] = []
        for d in desc:
            kind = d[0]
            if kind == "f":
                columns.append(floats[d[1] : d[1] + n])
            elif kind == "i":
                columns.append(ints[d[1] : d[1] + n])
            elif kind == "names":
                names = d[1]
                columns.append([names[i] for i in ints[d[2] : d[2] + n]])
            elif kind == "const":
                columns.append([d[1]] * n)
            elif kind == "list":
                columns.append(list(d[1]))
            else:
                raise ValueError(f"unknown packed column kind {kind!r}")
        out.append(columns)
    return out


class RoundSQL:
    """The statements of one round, built once from the schema's column names."""

    def __init__(self, round_columns: Sequence[str], client_columns: Sequence[str]) -> None:
        self.client_columns = tuple(client_columns)
        self.client_id_at = self.client_columns.index("client_id")
        self.round = (
            f"INSERT INTO rounds ({', '.join(round_columns)}) "
            f"VALUES ({', '.join('?' * len(round_columns))})"
        )
        self.state = "INSERT OR REPLACE INTO server_state VALUES (?, ?, ?)"
        self._client: dict[int, str] = {}

    def clients(self, rows: int) -> str:
        sql = self._client.get(rows)
        if sql is None:
            one = "(" + ", ".join("?" * len(self.client_columns)) + ")"
            cols = ", ".join(self.client_columns)
            sql = f"INSERT INTO client_rounds ({cols}) VALUES " + ", ".join([one] * rows)
            self._client[rows] = sql
        return sql


def write_rounds(
    conn: sqlite3.Connection,
    sql: RoundSQL,
    round_rows: Sequence[Sequence[Any]],
    packed: Sequence[Any],
    state: Mapping[str, Any] | None,
) -> None:
    """Rounds (their rows, their client rows packed in ``sql.client_columns`` order) and the
    server state after the last of them, in one transaction, each round with its link of
    the hash chain. Client rows go in multi-row INSERTs: one statement per ROWS_PER_INSERT
    clients costs less than one per client."""
    width = len(sql.client_columns)
    blobs = {key: bytes(blob) for key, blob in (state or {}).items()}
    last = len(round_rows) - 1
    with Transaction(conn):
        prev = chain_head(conn)
        for i, values in enumerate(unpack_rounds(packed)):
            round_row = round_rows[i]
            conn.execute(sql.round, tuple(round_row))
            rows = list(zip(*values, strict=True))
            flat = list(itertools.chain.from_iterable(rows))
            n = len(rows)
            for first in range(0, n, ROWS_PER_INSERT):
                count = min(ROWS_PER_INSERT, n - first)
                conn.execute(sql.clients(count), flat[first * width : (first + count) * width])
            # The chain hashes the values as the writer has them (no read-back): canonical()
            # makes them what SQLite will return.
            link = RoundLink.of(round_row, rows, sql.client_id_at, blobs if i == last else None)
            prev = link.digest(prev)
            conn.execute(CHAIN_ROUND, (*link.columns(), prev))
        for key, blob in blobs.items():
            conn.execute(sql.state, (key, round_rows[-1][0], blob))


# ---- the hash chain (greenfl.ledger.chain verifies it) ----------------------------------
CHAIN_TAG = "greenfl-chain-1"
CHAIN_ROUND = (
    "INSERT INTO chain (kind, round, rounds_sha256, clients_sha256, model_sha256, "
    "state_sha256, body, digest) VALUES ('round', ?, ?, ?, ?, ?, NULL, ?)"
)
# Where the model lies in the server state: greenfl.engine.snapshot writes the global model
# as the first array of the "loop" snapshot (an .npz archive), so its member is "a0.npy".
MODEL_MEMBER = ("loop", "a0.npy")
_INT64 = 2.0**63


def canonical(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows of ledger values as bytes that do not depend on how they were stored. Values
    are made what SQLite gives back (NaN is stored as NULL; an integral REAL may come back
    as an INTEGER, and the reverse: integral floats are ints here, on both sides), then
    written as a type string (one letter a value, "/" a row), the floats packed as float64,
    the ints as int64, the texts as JSON. Packing, not repr: a float's repr cost 30 ms for
    a round of 1,000 clients; this costs 6."""
    kinds: list[str] = []
    floats: list[float] = []
    ints: list[int] = []
    texts: list[Any] = []
    kind, add_float, add_int, add_text = kinds.append, floats.append, ints.append, texts.append
    for row in rows:
        for v in row:
            if isinstance(v, float):
                if v != v:
                    kind("n")
                elif v.is_integer() and -_INT64 <= v < _INT64:
                    kind("i")
                    add_int(int(v))
                else:
                    kind("f")
                    add_float(v)
            elif isinstance(v, int):  # bool included: SQLite stores it as 0 or 1
                kind("i")
                add_int(int(v))
            elif v is None:
                kind("n")
            else:
                kind("s")
                add_text(v)
        kind("/")
    letters = "".join(kinds).encode("ascii")
    return b"".join(
        (
            struct.pack("<QQQ", len(letters), len(floats), len(ints)),
            letters,
            struct.pack(f"<{len(floats)}d", *floats),
            struct.pack(f"<{len(ints)}q", *ints),
            json.dumps(texts, separators=(",", ":")).encode("utf-8"),
        )
    )


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link_digest(prev: str | None, kind: str, *parts: Any) -> str:
    """A link: the previous link's digest, the link's kind and its parts."""
    text = "\0".join([CHAIN_TAG, prev or "", kind, *("" if p is None else str(p) for p in parts)])
    return sha256_hex(text.encode("utf-8"))


def state_sha256(state: Mapping[str, bytes]) -> str:
    """The server state's digest: its rows' keys and contents, in key order."""
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode("utf-8") + b"\0" + hashlib.sha256(state[key]).digest())
    return h.hexdigest()


def model_sha256(state: Mapping[str, bytes]) -> str | None:
    """The digest of the model's array in the server state; None where there is none (a
    state in another form: it is still covered by state_sha256)."""
    import io
    import zipfile

    blob = state.get(MODEL_MEMBER[0])
    if blob is None or blob[:2] != b"PK":
        return None
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            return sha256_hex(archive.read(MODEL_MEMBER[1]))
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        return None


class RoundLink:
    """One round's link: the digests of its ``rounds`` row, its ``client_rounds`` rows (by
    client id), and of the model and server state saved with it (None: none was)."""

    __slots__ = ("round", "rounds_sha", "clients_sha", "model_sha", "state_sha")

    def __init__(
        self, rnd: int, rounds_sha: str, clients_sha: str, model: str | None, state: str | None
    ) -> None:
        self.round, self.rounds_sha, self.clients_sha = rnd, rounds_sha, clients_sha
        self.model_sha, self.state_sha = model, state

    @classmethod
    def of(
        cls,
        round_row: Sequence[Any],
        client_rows: Sequence[Sequence[Any]],
        client_id_at: int,
        state: Mapping[str, bytes] | None,
    ) -> RoundLink:
        ordered = sorted(client_rows, key=lambda r: r[client_id_at])
        return cls(
            int(round_row[0]),
            sha256_hex(canonical([round_row])),
            sha256_hex(canonical(ordered)),
            model_sha256(state) if state else None,
            state_sha256(state) if state else None,
        )

    def columns(self) -> tuple[Any, ...]:
        return (self.round, self.rounds_sha, self.clients_sha, self.model_sha, self.state_sha)

    def digest(self, prev: str | None) -> str:
        return link_digest(prev, "round", *self.columns())


def chain_head(conn: sqlite3.Connection) -> str | None:
    """The digest of the chain's last link, None before the first."""
    row = conn.execute("SELECT digest FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
    return row[0] if row is not None else None


class Transaction:
    """``with Transaction(conn):`` one immediate transaction, rolled back on any error."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        # SQLite rolls back itself on some errors (a full disk): a second ROLLBACK would
        # raise over the error that caused it
        if not exc_type:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                # A COMMIT that fails (a full disk: its pages go out at COMMIT in WAL mode)
                # may leave the transaction open, holding the write lock, so that the status
                # write that follows would wait on it; SQLite's advice is a ROLLBACK.
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")


# ---- messages ---------------------------------------------------------------------------
def send(out: BinaryIO, msg: tuple[Any, ...]) -> None:
    """One message; objects wrapped in ``pickle.PickleBuffer`` travel out of band, written
    from their own memory (no copy into the pickle)."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(msg, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    header = _HEADER.pack(len(data), len(raws)) + b"".join(_SIZE.pack(r.nbytes) for r in raws)
    parts = [memoryview(header), memoryview(data), *raws]
    fd = out.fileno()
    written = os.writev(fd, parts)
    total = sum(p.nbytes for p in parts)
    if written < total:  # a pipe took part of it: write the rest in order
        for part in parts:
            if written >= part.nbytes:
                written -= part.nbytes
                continue
            view = part[written:]
            written = 0
            while view:
                view = view[os.write(fd, view) :]


def recv(inp: BinaryIO) -> tuple[Any, ...] | None:
    """The next message, or None at end of stream (the other side closed or died)."""
    header = _read_exactly(inp, _HEADER.size)
    if header is None:
        return None
    size, count = _HEADER.unpack(header)
    sizes = _read_exactly(inp, _SIZE.size * count) if count else b""
    data = _read_exactly(inp, size)
    if sizes is None or data is None:
        return None
    buffers = []
    for (nbytes,) in _SIZE.iter_unpack(sizes):
        buf = _read_exactly(inp, nbytes)
        if buf is None:
            return None
        buffers.append(buf)
    return pickle.loads(data, buffers=buffers)


def _read_exactly(inp: BinaryIO, size: int) -> bytes | None:
    parts, left = [], size
    while left:
        chunk = inp.read(left)
        if not chunk:
            return None
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def why(exc: BaseException, path: str) -> str:  # SQLITE_FULL: the disk, or max_page_count
    full = "full" in str(exc).lower()
    return f"the disk holding {path} is full ({exc}); free space, then resume" if full else str(exc)
