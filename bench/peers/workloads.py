"""Benchmark workloads W1-W5 shared by the peer scripts (plain PyTorch, Flower, pfl).

Only numpy, scikit-learn, torch and psutil are used here, so every framework trains on
byte-identical client data, starts from identical initial weights and runs the same local
update (SGD, no momentum, fixed in-client sample order, cross-entropy, batch ``B``).

Data (see /work/shared/reference/peers.md):

* W1: sklearn digits, X/16, 80/20 stratified split (random_state=0); the training rows are
  shuffled once (seed 0) and split IID into 1,000 clients (1-2 samples each); the 360 test rows
  are the central test set. MLP 64-64-10, 100 clients/round, 10 rounds, lr 0.1.
* W2: FedProx Synthetic(alpha=1, beta=1) (Li et al. 2020, generate_synthetic.py, vectorised):
  u_k ~ N(0, alpha) (mean of W_k and b_k), B_k ~ N(0, beta), v_k ~ N(B_k, 1) (60-d),
  W_k ~ N(u_k, 1) (60x10), b_k ~ N(u_k, 1) (10), x ~ N(v_k, diag(j^-1.2)),
  y = argmax(softmax(W_k^T x + b_k)). 10,000 clients; client k's training size
  n_k = clip(int(lognormal(2.4, 1.1)), 5, 444) (mean ~20, median 10; 201,445 samples in all).
  Each client also draws ceil(n_k / 4) extra samples from its own distribution (20% of its
  data); these are pooled into the central test set (55,189 samples). MLP 60-64-10,
  1,000 clients/round, 10 rounds, lr 0.1.
* W3: synthetic 28x28 greyscale images: 10 class templates (N(0,1) pixels, 3x3 box-blurred,
  rescaled to unit std) plus N(0, 1.5^2) pixel noise; 100 clients x 100 samples with uniformly
  random labels; central test set 1,000 fresh samples (100 per class). CNN with 18,378
  parameters, 10 clients/round, 10 rounds, lr 0.05.

* W4: FEMNIST-shaped (LEAF's JSON format, 28x28 grey images flattened to 784 values in [0, 1],
  62 classes): 62 class templates (as W3's, squashed into [0, 1]) plus noise, rounded to 3
  decimals; 100 users, n_k = clip(round(N(200, 40)), 100, 300) training samples each with
  uniformly random labels, and ceil(n_k / 9) test samples each (LEAF's 0.9 train fraction);
  the central test set is all users' test data. Written once to LEAF's train/ and test/ JSON
  folders under $GREENFL_BENCH_DATA (default /tmp/greenfl-bench-data) and read back by every
  framework (greenfl through its femnist loader). LEAF's FEMNIST CNN (6,603,710 parameters),
  10 clients/round, 10 rounds, lr 0.05.
* W5: Shakespeare as greenfl ships it (src/greenfl/data/builtin/shakespeare.json.xz, LEAF's
  recipe: 80-character windows, next character as label), roles with >= 64 samples, 100 of
  them drawn as greenfl draws them for seed 0, each role's first 80% of samples in text order
  its training data; the central test set is the same fixed sample of 2,000 test windows that
  greenfl uses. LEAF's char-LSTM (embedding 8, 2x LSTM 256; 819,920 parameters), 10 roles/round,
  10 rounds, batch 16, lr 0.8, at most 10 local steps (160 samples) per client and round.

All workloads: batch 16, 1 local epoch, FedAvg weighted by client sample count.
"""

from __future__ import annotations

import functools
import json
import lzma
import os
import re
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psutil
import torch
from torch import nn

SEED = 0


@dataclass(frozen=True)
class Spec:
    name: str
    num_clients: int
    clients_per_round: int
    rounds: int
    batch_size: int
    lr: float
    local_epochs: int = 1
    max_steps: int = 0  # local steps per round (0: the whole epoch)


SPECS = {
    "W1": Spec("W1", num_clients=1000, clients_per_round=100, rounds=10, batch_size=16, lr=0.1),
    "W2": Spec("W2", num_clients=10_000, clients_per_round=1000, rounds=10, batch_size=16, lr=0.1),
    "W3": Spec("W3", num_clients=100, clients_per_round=10, rounds=10, batch_size=16, lr=0.05),
    "W4": Spec("W4", num_clients=100, clients_per_round=10, rounds=10, batch_size=16, lr=0.05),
    "W5": Spec(
        "W5", num_clients=100, clients_per_round=10, rounds=10, batch_size=16, lr=0.8, max_steps=10
    ),
}


@dataclass
class Workload:
    spec: Spec
    client_x: list[np.ndarray]  # float32, one array per client
    client_y: list[np.ndarray]  # int64
    test_x: np.ndarray
    test_y: np.ndarray

    @property
    def num_samples(self) -> int:
        return int(sum(len(y) for y in self.client_y))


# ----------------------------------------------------------------------------- data


def _digits() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    order = np.random.default_rng(SEED).permutation(len(y_tr))
    parts = np.array_split(order, SPECS["W1"].num_clients)
    return [x_tr[p] for p in parts], [y_tr[p] for p in parts], x_te, y_te


def _synthetic_fedprox(
    num_clients: int, alpha: float = 1.0, beta: float = 1.0, dim: int = 60, classes: int = 10
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    sizes = np.clip(rng.lognormal(2.4, 1.1, num_clients).astype(np.int64), 5, 444)
    test_sizes = np.ceil(sizes / 4).astype(np.int64)
    u = rng.normal(0.0, alpha, num_clients)  # mean of W_k and b_k
    b_mean = rng.normal(0.0, beta, num_clients)  # B_k
    std_x = np.power(np.arange(1, dim + 1, dtype=np.float64), -1.2) ** 0.5
    xs, ys, tx, ty = [], [], [], []
    for k in range(num_clients):
        v = rng.normal(b_mean[k], 1.0, dim)
        w = rng.normal(u[k], 1.0, (dim, classes))
        b = rng.normal(u[k], 1.0, classes)
        n = int(sizes[k] + test_sizes[k])
        x = v + rng.standard_normal((n, dim)) * std_x
        y = np.argmax(x @ w + b, axis=1)  # argmax(softmax(z)) == argmax(z)
        xs.append(x[: sizes[k]].astype(np.float32))
        ys.append(y[: sizes[k]].astype(np.int64))
        tx.append(x[sizes[k] :])
        ty.append(y[sizes[k] :])
    return xs, ys, np.concatenate(tx).astype(np.float32), np.concatenate(ty).astype(np.int64)


def _images(
    num_clients: int = 100, per_client: int = 100, test: int = 1000, noise: float = 1.5
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    raw = rng.standard_normal((10, 30, 30))
    tpl = sum(raw[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3)) / 9.0
    tpl = (tpl - tpl.mean(axis=(1, 2), keepdims=True)) / tpl.std(axis=(1, 2), keepdims=True)

    def sample(labels: np.ndarray) -> np.ndarray:
        x = tpl[labels] + noise * rng.standard_normal((len(labels), 28, 28))
        return x[:, None].astype(np.float32)

    ys = [rng.integers(0, 10, per_client).astype(np.int64) for _ in range(num_clients)]
    xs = [sample(y) for y in ys]
    y_te = np.repeat(np.arange(10, dtype=np.int64), test // 10)
    return xs, ys, sample(y_te), y_te


def data_root() -> Path:
    return Path(os.environ.get("GREENFL_BENCH_DATA", "/tmp/greenfl-bench-data"))


def femnist_dir() -> Path:
    """W4's LEAF folder (holding train/ and test/), written on first use; the recipe is seeded,
    so every process that writes it writes the same bytes."""
    root = data_root() / "W4-femnist"
    if (root / "done").exists():
        return root
    rng = np.random.default_rng(SEED)
    raw = rng.standard_normal((62, 30, 30))
    tpl = sum(raw[:, i : i + 28, j : j + 28] for i in range(3) for j in range(3)) / 9.0
    tpl = (tpl - tpl.mean(axis=(1, 2), keepdims=True)) / tpl.std(axis=(1, 2), keepdims=True)
    sizes = np.clip(np.round(rng.normal(200, 40, SPECS["W4"].num_clients)), 100, 300).astype(int)
    split: dict[str, dict] = {"train": {}, "test": {}}
    for k, n in enumerate(sizes):
        for part, m in (("train", int(n)), ("test", int(np.ceil(n / 9)))):
            y = rng.integers(0, 62, m)
            x = tpl[y] + 1.5 * rng.standard_normal((m, 28, 28))
            x = np.round(np.clip(x / 6.0 + 0.5, 0.0, 1.0), 3).reshape(m, 784)
            split[part][f"f_{k:05d}"] = {"x": x.tolist(), "y": y.tolist()}
    for part, users in split.items():
        (root / part).mkdir(parents=True, exist_ok=True)
        doc = {
            "users": list(users),
            "num_samples": [len(u["y"]) for u in users.values()],
            "user_data": users,
        }
        (root / part / f"all_data_{part}.json").write_text(json.dumps(doc))
    (root / "done").write_text("")
    return root


def _femnist() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    root = femnist_dir()
    parts = {}
    for part in ("train", "test"):
        doc = json.loads((root / part / f"all_data_{part}.json").read_text())
        parts[part] = [doc["user_data"][u] for u in sorted(doc["users"])]

    def arrays(u: dict) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(u["x"], np.float32), np.asarray(u["y"], np.int64)

    train = [arrays(u) for u in parts["train"]]
    test = [arrays(u) for u in parts["test"]]
    return (
        [x for x, _ in train],
        [y for _, y in train],
        np.concatenate([x for x, _ in test]),
        np.concatenate([y for _, y in test]),
    )


SHAKESPEARE = Path(__file__).resolve().parents[2] / "src/greenfl/data/builtin/shakespeare.json.xz"
VOCAB = "\n !\"&'(),-.0123456789:;>?ABCDEFGHIJKLMNOPQRSTUVWXYZ[]abcdefghijklmnopqrstuvwxyz}"


def _shakespeare_windows(lines: list[str], table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LEAF's recipe: each line (runs of spaces squeezed, newline kept) prefixed with 80
    spaces; every character of the line is a label, the 80 characters before it its input."""
    xs, ys = [], []
    for line in lines:
        line = re.sub(r"  +", " ", line) + "\n"
        codes = table[np.frombuffer((" " * 80 + line).encode("latin-1", "replace"), np.uint8)]
        idx = np.arange(len(line))[:, None] + np.arange(80)
        xs.append(codes[idx])
        ys.append(codes[80:])
    return np.concatenate(xs).astype(np.int64), np.concatenate(ys).astype(np.int64)


def _shakespeare() -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    doc = json.loads(lzma.decompress(SHAKESPEARE.read_bytes()))
    table = np.full(256, VOCAB.index(" "), dtype=np.uint8)
    for i, c in enumerate(VOCAB):
        table[ord(c)] = i
    roles = [r for play in doc["plays"] for r in play["roles"]]
    sizes = [sum(len(re.sub(r"  +", " ", ln)) + 1 for ln in r["lines"]) for r in roles]
    kept = [r for r, n in zip(roles, sizes, strict=True) if n >= 64]
    rng = np.random.default_rng([SEED, 11])  # greenfl's role-selection stream
    picked = np.sort(rng.choice(len(kept), SPECS["W5"].num_clients, replace=False))
    xs, ys, tx, ty = [], [], [], []
    for i in picked:
        x, y = _shakespeare_windows(kept[i]["lines"], table)
        cut = int(round(len(y) * 0.8))
        xs.append(x[:cut])
        ys.append(y[:cut])
        tx.append(x[cut:])
        ty.append(y[cut:])
    pool_x, pool_y = np.concatenate(tx), np.concatenate(ty)
    take = np.sort(np.random.default_rng([SEED, 12]).choice(len(pool_y), 2000, replace=False))
    return xs, ys, pool_x[take], pool_y[take]


@functools.cache
def load(name: str) -> Workload:
    """Build (once per process) the clients' data and the central test set of workload ``name``."""
    spec = SPECS[name]
    if name == "W1":
        xs, ys, tx, ty = _digits()
    elif name == "W2":
        xs, ys, tx, ty = _synthetic_fedprox(spec.num_clients)
    elif name == "W4":
        xs, ys, tx, ty = _femnist()
    elif name == "W5":
        xs, ys, tx, ty = _shakespeare()
    else:
        xs, ys, tx, ty = _images(spec.num_clients)
    assert len(xs) == spec.num_clients
    return Workload(spec, xs, ys, tx, ty)


def cohorts(name: str) -> list[np.ndarray]:
    """Clients sampled per round without replacement (used by the plain loop; the frameworks
    sample with their own samplers)."""
    spec = SPECS[name]
    rng = np.random.default_rng(SEED + 1)
    return [
        rng.choice(spec.num_clients, spec.clients_per_round, replace=False)
        for _ in range(spec.rounds)
    ]


# ----------------------------------------------------------------------------- model


def make_model(name: str) -> nn.Module:
    """The workload's model, with identical initial weights in every process."""
    torch.manual_seed(SEED)
    if name == "W1":
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    if name == "W2":
        return nn.Sequential(nn.Linear(60, 64), nn.ReLU(), nn.Linear(64, 10))
    # W4/W5 restate greenfl's femnist_cnn and char_lstm (models/reference.py) layer for layer:
    # the peers' venv has no greenfl to import them from.
    if name == "W4":  # LEAF's FEMNIST CNN
        return nn.Sequential(
            nn.Unflatten(1, (1, 28, 28)),
            nn.Conv2d(1, 32, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 2048),
            nn.ReLU(),
            nn.Linear(2048, 62),
        )
    if name == "W5":
        return CharLSTM()
    return nn.Sequential(
        nn.Conv2d(1, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(512, 10),
    )


class CharLSTM(nn.Module):
    """LEAF's Shakespeare model: embedding 8, two LSTM layers of 256, the last step's output
    into the 80-way head."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(len(VOCAB), 8)
        self.lstm = nn.LSTM(8, 256, 2, batch_first=True)
        self.head = nn.Linear(256, len(VOCAB))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(tokens.long()))
        return self.head(out[:, -1, :])


def local_train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    lr: float,
    batch_size: int,
    epochs: int = 1,
    max_steps: int = 0,
) -> float:
    """Plain SGD over the client's data in its fixed order (at most ``max_steps`` batches in
    all, if > 0); returns the last batch's loss."""
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    loss = torch.zeros(())
    starts = [i for _ in range(epochs) for i in range(0, len(yt), batch_size)]
    if max_steps > 0:
        starts = starts[:max_steps]
    for i in starts:
        opt.zero_grad()
        loss = loss_fn(model(xt[i : i + batch_size]), yt[i : i + batch_size])
        loss.backward()
        opt.step()
    return float(loss.detach())


@torch.no_grad()
def evaluate(model: nn.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Central evaluation in one batch: (mean cross-entropy, accuracy)."""
    model.eval()
    logits = model(torch.from_numpy(x))
    yt = torch.from_numpy(y)
    loss = nn.functional.cross_entropy(logits, yt).item()
    acc = (logits.argmax(dim=1) == yt).float().mean().item()
    return loss, acc


# ----------------------------------------------------------------------------- measurement


class Monitor:
    """Background thread: every ``interval`` s, sum the RSS of this process and all of its
    descendants (e.g. Ray's GCS, raylet and worker processes) and keep the maximum.

    The descendant list is refreshed every ``refresh`` s (a full /proc scan); in between only
    the known processes' RSS is read, to keep the sampler's own cost small. It also records the
    CPU time of the process tree, so that ``foreign_cpu_s`` (CPU seconds the machine spent on
    processes outside this tree during the run) can flag a measurement disturbed by other load.
    """

    def __init__(self, interval: float = 0.1, refresh: float = 0.5) -> None:
        self.interval = interval
        self.refresh = refresh
        self.me = psutil.Process()
        self.peak_bytes = 0
        self.peak_procs = 1
        self.foreign_cpu_s = 0.0
        self._cpu: dict[int, float] = {}
        self._procs: list[psutil.Process] = [self.me]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._busy0 = self._machine_busy()

    @staticmethod
    def _machine_busy() -> float:
        t = psutil.cpu_times()
        return sum(t) - t.idle - getattr(t, "iowait", 0.0)

    def _sample(self) -> None:
        total, alive = 0, []
        for p in self._procs:
            try:
                with p.oneshot():
                    total += p.memory_info().rss
                    c = p.cpu_times()
                self._cpu[p.pid] = c.user + c.system
                alive.append(p)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        self._procs = alive
        if total > self.peak_bytes:
            self.peak_bytes = total
        self.peak_procs = max(self.peak_procs, len(alive))

    def _refresh(self) -> None:
        try:
            self._procs = [self.me, *self.me.children(recursive=True)]
        except psutil.Error:
            pass

    def _run(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            if now - last >= self.refresh:
                self._refresh()
                last = now
            self._sample()
            self._stop.wait(self.interval)

    def start(self) -> Monitor:
        self._refresh()
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; return the peak in MB (at least this process's own ru_maxrss)."""
        self._stop.set()
        self._thread.join()
        self._refresh()
        self._sample()
        own_tree = sum(self._cpu.values())
        self.foreign_cpu_s = max(0.0, self._machine_busy() - self._busy0 - own_tree)
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
        return max(self.peak_bytes, own) / 2**20


def report(
    framework: str,
    workload: str,
    t0: float,
    loop_s: float,
    monitor: Monitor,
    final_accuracy: float,
    **extra: object,
) -> dict:
    """Stop ``monitor``; print (and return) the single JSON result line. ``t0`` is
    ``time.perf_counter()`` taken at the very top of the calling script, before heavy imports.
    ``foreign_cpu_s`` well above ~1 s means other load shared the cores: measure again."""
    line = {
        "framework": framework,
        "workload": workload,
        "wall_s": round(time.perf_counter() - t0, 3),
        "loop_s": round(loop_s, 3),
        "peak_rss_mb": round(monitor.stop(), 1),
        "final_accuracy": round(final_accuracy, 4),
        **extra,
        "peak_processes": monitor.peak_procs,
        "foreign_cpu_s": round(monitor.foreign_cpu_s, 2),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    print(json.dumps(line), flush=True)
    return line
