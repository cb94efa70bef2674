"""Shakespeare next-character prediction, one client per speaking role per play, built as
LEAF builds it (Caldas et al., 2018) from the public-domain Project Gutenberg texts that ship
with greenfl (data/builtin/shakespeare.json.xz; scripts/build_shakespeare.py made it).

A role's samples come line by line, as in LEAF: each line (with its newline) is prefixed
with 80 spaces and an 80-character window slides along it, so every character of the line
is one sample's label and the 80 characters before it (spaces before the line starts) are
its input. Runs of two or more spaces become one. Characters are indices into LEAF's
80-character vocabulary, which is also the label set.

Roles with fewer than ``min_samples`` samples are dropped (LEAF's ``-k`` filter), then
``num_clients`` roles are drawn with the run's seed. Each role's samples are split in text
order: the first ``1 - test_fraction`` train, the rest are its own test data (LEAF's
per-user ``sample`` split, ``--tf 0.8`` by default, as in the FedAvg paper).

Windows are cut on demand from each role's character buffer, so the data in memory is the
text itself (a few MB), never 80 copies of it.
"""

from __future__ import annotations

import json
import lzma
import re
from functools import cache
from importlib import resources

import numpy as np
import torch
from pydantic import Field

from greenfl.core.errors import DataError
from greenfl.core.registry import params
from greenfl.data.base import DatasetDefaults, DataSettings

SEQ_LEN = 80
VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"
_SPACES = re.compile(r"  +")
_SELECT_STREAM = 11
_CENTRAL_TEST_STREAM = 12
CENTRAL_TEST_SAMPLES = 2000  # a fixed sample of the clients' test windows: an LSTM's eval is dear


@cache
def _roles() -> tuple[tuple[str, str, np.ndarray, np.ndarray], ...]:
    """Every role of the shipped plays: (play, role, character buffer, window starts)."""
    raw = resources.files("greenfl.data").joinpath("builtin/shakespeare.json.xz").read_bytes()
    doc = json.loads(lzma.decompress(raw))
    table = np.full(256, VOCAB.index(" "), dtype=np.uint8)
    for i, c in enumerate(VOCAB):
        table[ord(c)] = i
    out = []
    for play in doc["plays"]:
        for role in play["roles"]:
            buf, starts = _encode(role["lines"], table)
            out.append((play["play"], role["role"], buf, starts))
    return tuple(out)


def _encode(lines: list[str], table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One buffer of (80 spaces + line + newline) per line, and the start of every window:
    window s is buf[s : s + 80], its label buf[s + 80]."""
    cleaned = [_SPACES.sub(" ", line) + "\n" for line in lines]
    pad = " " * SEQ_LEN
    text = "".join(pad + line for line in cleaned)
    buf = table[np.frombuffer(text.encode("latin-1", "replace"), dtype=np.uint8)]
    lengths = np.array([len(line) for line in cleaned], dtype=np.int64)
    line_start = np.concatenate([[0], np.cumsum(SEQ_LEN + lengths)[:-1]]).astype(np.int64)
    first_sample = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    within = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(first_sample, lengths)
    return buf, np.repeat(line_start, lengths) + within


def role_sizes() -> np.ndarray:
    """Samples of every role of the shipped plays, before any filter (for the docs' stats)."""
    return np.array([len(starts) for *_, starts in _roles()], dtype=np.int64)


class ShakespeareDataset:
    """The built-in Shakespeare data behind the FederatedDataset protocol."""

    def __init__(
        self, num_clients: int, seed: int, min_samples: int = 64, test_fraction: float = 0.2
    ) -> None:
        roles = [r for r in _roles() if len(r[3]) >= min_samples]
        if num_clients > len(roles):
            raise DataError(
                f"shakespeare has {len(roles)} roles with at least {min_samples} samples; "
                f"data.num_clients = {num_clients} asks for more"
            )
        rng = np.random.default_rng([seed, _SELECT_STREAM])
        picked = np.sort(rng.choice(len(roles), num_clients, replace=False))
        self.name = "shakespeare"
        self.num_clients = num_clients
        self.input_shape = (SEQ_LEN,)
        self.num_classes = len(VOCAB)
        self.roles = [f"{roles[i][0]}: {roles[i][1]}" for i in picked]
        # One buffer for all drawn roles: a window is buf[s : s + 80] wherever it is.
        offsets = np.cumsum([0] + [len(roles[i][2]) for i in picked])
        self._buf = torch.from_numpy(np.concatenate([roles[i][2] for i in picked]).astype(np.int64))
        self._train: list[np.ndarray] = []
        self._test: list[np.ndarray] = []
        for i, offset in zip(picked, offsets, strict=False):
            starts = roles[i][3] + offset
            cut = int(round(len(starts) * (1.0 - test_fraction)))
            self._train.append(starts[:cut])
            self._test.append(starts[cut:])
        self._sizes = np.array([len(s) for s in self._train], dtype=np.int64)
        self._seed = seed
        self._central: tuple[torch.Tensor, torch.Tensor] | None = None

    def _windows(self, starts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        s = torch.from_numpy(starts)
        return self._buf[s[:, None] + torch.arange(SEQ_LEN)], self._buf[s + SEQ_LEN]

    def client_sizes(self) -> np.ndarray:
        return self._sizes

    def client_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._windows(self._train[client_id])

    def client_test_data(self, client_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self._windows(self._test[client_id])

    def test_data(self) -> tuple[torch.Tensor, torch.Tensor]:
        """A fixed seeded sample of CENTRAL_TEST_SAMPLES windows from all clients' test
        data (every test window, where there are fewer)."""
        if self._central is None:
            pool = np.concatenate(self._test)
            rng = np.random.default_rng([self._seed, _CENTRAL_TEST_STREAM])
            take = min(CENTRAL_TEST_SAMPLES, len(pool))
            self._central = self._windows(pool[np.sort(rng.choice(len(pool), take, replace=False))])
        return self._central


@params
class ShakespeareParams:
    min_samples: int = Field(
        64, ge=1, le=1_000_000, description="roles with fewer samples are dropped (LEAF's filter)"
    )


class Shakespeare:
    """LEAF's Shakespeare: one client per speaking role, next-character prediction."""

    Params = ShakespeareParams
    reads_path = False
    # LEAF's char-LSTM costs 382 MFLOPs a training sample: 20 local steps of 10 windows and
    # 10 clients a round take about a minute on 2 CPU cores (30 rounds: 8 min 43 s). The
    # central and per-client evaluations are capped for the same reason.
    defaults = DatasetDefaults(
        model="char_lstm",
        train={
            "clients_per_round": 10,
            "local_epochs": 1,
            "max_local_steps": 20,
            "batch_size": 10,
            "lr": 0.8,
        },
        eval={"every": 5, "clients": 20, "max_samples": 200},
    )

    @classmethod
    def load(cls, settings: DataSettings, params: ShakespeareParams) -> ShakespeareDataset:
        return ShakespeareDataset(
            settings.num_clients, settings.seed, params.min_samples, settings.test_fraction
        )
