"""Real deployment on loopback: a `greenfl serve` process, `greenfl join` processes, and test
clients that misbehave on purpose, talking gRPC through the generated stubs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import greenfl
from greenfl.config import load_config
from tests.integration.loopback import (
    config_text,
    fit_tasks,
    one_torch_thread,  # noqa: F401  (autouse)
    update_to,
)

CLI = [sys.executable, "-m", "greenfl"]
# One torch thread per process: four processes share a small CI machine.
# Child processes import the greenfl under test (an absolute path: they run elsewhere).
SRC = str(Path(greenfl.__file__).resolve().parents[1])
ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]),
    "OMP_NUM_THREADS": "1",
    "PYTHONUNBUFFERED": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, n: int, rounds: int, extra: str = "") -> Path:
    path.write_text(config_text(n, rounds, deploy=extra))
    return path


class Procs:
    """Child processes, killed at the end of a test whatever happens."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, cwd: Path) -> subprocess.Popen[str]:
        p = subprocess.Popen(
            [*CLI, *args],
            cwd=cwd,
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        return p

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for stream in (p.stdout, p.stderr):
                if stream is not None:
                    stream.close()


@pytest.fixture
def procs() -> Iterator[Procs]:
    ps = Procs()
    try:
        yield ps
    finally:
        ps.kill_all()


def wait_for(cond: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def finish(p: subprocess.Popen[str], timeout_s: float) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=timeout_s)
    return p.returncode, out, err


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def max_round(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return rows(db, "SELECT COALESCE(MAX(round), 0) FROM rounds")[0][0]
    except sqlite3.OperationalError:  # the schema is not written yet
        return 0


class ThreadClients:
    """Well-behaved clients as threads of the test process: cheaper than processes on a
    small machine, and the same code as `greenfl join`."""

    def __init__(
        self, address: str, ids: list[int], token: str = "", delay_s: dict[int, float] | None = None
    ) -> None:
        from greenfl.deploy.client import ClientOptions, FederatedClient
        from greenfl.deploy.security import client_token
        from greenfl.footprint.meters import NullMeter

        delay_s = delay_s or {}
        self.clients = [
            FederatedClient(
                ClientOptions(
                    address,
                    i,
                    token=client_token(token, i) if token else "",
                    backoff_max_s=2.0,
                    retry_for_s=60,
                    test_delay_s=delay_s.get(i, 0.0),
                ),
                NullMeter(),
            )
            for i in ids
        ]
        self.errors: list[BaseException] = []
        self.threads = [
            threading.Thread(target=self._run, args=(c,), daemon=True) for c in self.clients
        ]
        for t in self.threads:
            t.start()

    def _run(self, client: object) -> None:
        try:
            client.run()  # type: ignore[attr-defined]
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.errors.append(exc)

    def join(self, timeout_s: float) -> None:
        for t in self.threads:
            t.join(timeout=timeout_s)
        assert not any(t.is_alive() for t in self.threads), "a client did not finish"
        assert not self.errors, self.errors


def simulated_accuracies(cfg_path: Path) -> list[float]:
    """The same run in-process: deployment must compute exactly what simulation does."""
    res = greenfl.run(load_config(cfg_path))
    return [r.accuracy for r in res.history]


@pytest.mark.slow
def test_three_client_processes_over_tls_match_simulation(tmp_path: Path, procs: Procs) -> None:
    cfg = write_config(tmp_path / "c.toml", n=3, rounds=3)
    (tmp_path / "token").write_text("correct-horse\n")
    from greenfl.deploy.security import client_token

    for i in range(3):  # each client's own token (deploy.auth = "per_client")
        (tmp_path / f"token-{i}").write_text(client_token("correct-horse", i))
    port = free_port()
    tls: list[str] = []
    ca: list[str] = []
    if shutil.which("openssl"):
        # The command of docs/readme-issue6.md: a self-signed pair for localhost.
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                "-keyout", "key.pem", "-out", "cert.pem", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            cwd=tmp_path, check=True, capture_output=True,
        )  # fmt: skip
        tls = ["--tls-cert", "cert.pem", "--tls-key", "key.pem"]
        ca = ["--ca-cert", "cert.pem"]
    server = procs.start(
        "serve", "c.toml", "--address", f"127.0.0.1:{port}", "--out", "run",
        "--token-file", "token", "--min-clients", "3", "--quiet", *tls, cwd=tmp_path,
    )  # fmt: skip
    addr = f"localhost:{port}"
    clients = [
        procs.start(
            "join",
            "--server",
            addr,
            "--client-id",
            str(i),
            "--token-file",
            f"token-{i}",
            *ca,
            cwd=tmp_path,
        )  # fmt: skip
        for i in range(3)
    ]
    expected = simulated_accuracies(cfg)  # meanwhile, the same run in-process
    code, out, err = finish(server, 90)
    assert code == 0, err
    for c in clients:
        c_code, _, c_err = finish(c, 30)
        assert c_code == 0, c_err
        assert "done: 3 rounds" in c_err

    db = tmp_path / "run" / "ledger.sqlite"
    got = rows(db, "SELECT round, client_id, status, bytes_up, bytes_down FROM client_rounds")
    assert sorted((r, c) for r, c, *_ in got) == [(r, c) for r in (1, 2, 3) for c in (0, 1, 2)]
    # a real meter reads this host, not the phone the fleet enrols: disputed (issue 29)
    assert {s for _, _, s, _, _ in got} <= {"completed", "disputed"}
    # Bytes are the serialized messages: 4810 float32 parameters plus names and framing.
    assert all(4 * 4810 < up < 4 * 4810 + 400 and 4 * 4810 < down < 4 * 4810 + 400
               for *_, up, down in got)  # fmt: skip
    accuracies = [a for (a,) in rows(db, "SELECT accuracy FROM rounds ORDER BY round")]
    assert accuracies == pytest.approx(expected, abs=1e-9)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rounds_completed"] == 3 and summary["clients_completed"] == 9


@pytest.mark.slow
def test_kill9_server_then_resume_loses_no_round(tmp_path: Path, procs: Procs) -> None:
    rounds = 40  # enough that the kill lands mid-run even when rounds are quick
    cfg = write_config(tmp_path / "c.toml", n=3, rounds=rounds)
    port = free_port()
    serve = ("serve", "--address", f"127.0.0.1:{port}", "--out", "run", "--quiet")
    server = procs.start(*serve, "c.toml", "--min-clients", "3", cwd=tmp_path)
    clients = ThreadClients(f"127.0.0.1:{port}", [0, 1, 2])
    db = tmp_path / "run" / "ledger.sqlite"
    wait_for(lambda: max_round(db) >= 2, 60, "round 2 in the ledger")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    done_before = max_round(db)
    assert 2 <= done_before < rounds

    resumed = procs.start(*serve, "--resume", "--min-clients", "3", cwd=tmp_path)
    expected = simulated_accuracies(cfg)
    code, _, err = finish(resumed, 90)
    assert code == 0, err
    clients.join(30)
    assert all(c.stats.reconnects >= 1 for c in clients.clients)
    got = rows(db, "SELECT round FROM rounds ORDER BY round")
    assert [r for (r,) in got] == list(range(1, rounds + 1))
    per_round = rows(db, "SELECT round, COUNT(*) FROM client_rounds GROUP BY round")
    assert per_round == [(r, 3) for r in range(1, rounds + 1)]
    # Restored model, strategy and RNG state: the run is the uninterrupted run, exactly.
    accuracies = [a for (a,) in rows(db, "SELECT accuracy FROM rounds ORDER BY round")]
    assert accuracies == pytest.approx(expected, abs=1e-9)
    assert rows(db, "SELECT status FROM runs") == [("completed",)]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["rounds_completed"] == rounds


# A client that takes its task and then hangs, so the test can kill it mid-round.
HANGING_CLIENT = """
import sys, time, grpc
from greenfl.deploy import greenfl_pb2 as pb, greenfl_pb2_grpc as pbg
from greenfl.deploy.security import client_token
ch = grpc.insecure_channel(sys.argv[1])
stub = pbg.FederationStub(ch)
cid = int(sys.argv[2])
req = pb.JoinRequest(protocol_version=1, token=client_token("t0k", cid), client_id=cid)
r = stub.Join(req, wait_for_ready=True, timeout=60)
for task in stub.Tasks(pb.TaskRequest(session_id=r.session_id)):
    if task.kind == pb.Task.FIT:
        print("GOT TASK", task.round, flush=True)
        time.sleep(3600)
"""


def _malicious_client(address: str, client_id: int, log: list[str]) -> None:
    """Sends, round by round: NaN, a wrong shape, an oversized message, a huge norm."""
    import numpy as np

    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy.security import client_token

    for stub, session_id, task in fit_tasks(address, client_id, client_token("t0k", client_id)):
        tensors = [pb.Tensor() for _ in task.params]
        for t, p in zip(tensors, task.params, strict=True):
            t.CopyFrom(p)
            t.data = np.zeros(len(p.data) // 4, "<f4").tobytes()
        attack = task.round % 4
        if attack == 1:
            tensors[0].data = np.full(len(tensors[0].data) // 4, np.nan, "<f4").tobytes()
        elif attack == 2:
            tensors[0].shape[0] += 1
        elif attack == 3:
            tensors.append(pb.Tensor(name="padding", dtype="float32", data=b"\0" * 300_000))
        else:
            tensors[0].data = np.full(len(tensors[0].data) // 4, 1e6, "<f4").tobytes()
        up = update_to(task, session_id, client_id, tensors=pb.TensorList(tensors=tensors))
        ack = stub.SubmitUpdate(up, metadata=(("greenfl-session", session_id),))
        log.append(f"{task.round}:{ack.accepted}:{ack.reason}")


@pytest.mark.slow
def test_bad_clients_are_rejected_or_dropped_and_the_run_completes(
    tmp_path: Path, procs: Procs
) -> None:
    # Clients 0, 1 honest; 2 malicious; 3 is killed mid-round 1. 0.2 MB message limit.
    # Quarantine off: every round must reach client 2, to try each attack.
    extra = "max_update_norm = 100.0\nmax_message_mb = 0.2\nquarantine_rounds = 0"
    write_config(tmp_path / "c.toml", n=4, rounds=4, extra=extra)
    (tmp_path / "token").write_text("t0k")
    port = free_port()
    addr = f"127.0.0.1:{port}"
    server = procs.start(
        "serve", "c.toml", "--address", addr, "--out", "run", "--token-file", "token",
        "--min-clients", "4", "--quiet", cwd=tmp_path,
    )  # fmt: skip
    honest = ThreadClients(addr, [0, 1], token="t0k")
    hanging = subprocess.Popen(
        [sys.executable, "-c", HANGING_CLIENT, addr, "3"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    procs.procs.append(hanging)
    acks: list[str] = []
    bad = threading.Thread(target=_malicious_client, args=(addr, 2, acks), daemon=True)
    bad.start()

    assert hanging.stdout is not None
    line = hanging.stdout.readline()  # blocks until it holds round 1's task
    assert line.startswith("GOT TASK 1"), line
    hanging.send_signal(signal.SIGKILL)

    from greenfl.core.errors import TransportError
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.deploy.security import client_token

    with pytest.raises(TransportError, match="invalid token"):
        FederatedClient(ClientOptions(addr, 0, token="guess")).run()
    with pytest.raises(TransportError, match="invalid token"):  # client 1's token as client 0
        FederatedClient(ClientOptions(addr, 0, token=client_token("t0k", 1))).run()
    code, _, err = finish(server, 90)
    assert code == 0, err
    honest.join(30)
    bad.join(timeout=30)

    db = tmp_path / "run" / "ledger.sqlite"
    got = {
        (r, c): (s, reason or "")
        for r, c, s, reason in rows(
            db, "SELECT round, client_id, status, reason FROM client_rounds"
        )
    }
    assert got[(1, 3)][0] == "failed" and "disconnected" in got[(1, 3)][1]
    assert all(c != 3 for (r, c) in got if r > 1)  # gone: never selected again
    assert got[(1, 2)][0] == "rejected" and "non-finite" in got[(1, 2)][1]
    assert got[(2, 2)][0] == "rejected" and "shape" in got[(2, 2)][1]
    assert got[(3, 2)][0] == "rejected" and "exceeds the limit" in got[(3, 2)][1]
    assert got[(4, 2)][0] == "rejected" and "max_update_norm" in got[(4, 2)][1]
    assert all(got[(r, c)][0] == "completed" for r in (1, 2, 3, 4) for c in (0, 1))
    assert len(acks) == 4 and not any(":True:" in a for a in acks)
    accuracies = [a for (a,) in rows(db, "SELECT accuracy FROM rounds ORDER BY round")]
    assert len(accuracies) == 4 and accuracies[-1] > 0.6  # learned; not poisoned
    log = (tmp_path / "run" / "server.log").read_text()
    assert "refused client 0" in log and "invalid token" in log
    assert "rejected update of client 2" in log


def test_a_client_trains_on_its_own_data_dir(tmp_path: Path, procs: Procs) -> None:
    """Client 2 brings its own data (150 digits written with the documented np.savez
    one-liner); client 3's data does not fit the model and it exits 2 before training."""
    import numpy as np
    from sklearn.datasets import load_digits

    write_config(tmp_path / "c.toml", n=4, rounds=3, extra="max_client_samples = 200")
    text = (
        (tmp_path / "c.toml").read_text().replace("clients_per_round = 4", "clients_per_round = 3")
    )
    (tmp_path / "c.toml").write_text(text)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    (tmp_path / "own").mkdir()
    np.savez(tmp_path / "own" / "data.npz", x=x[:150], y=y[:150])
    np.savez(tmp_path / "own" / "test.npz", x=x[1500:], y=y[1500:])
    (tmp_path / "wrong").mkdir()
    np.savez(tmp_path / "wrong" / "data.npz", x=x[:20].reshape(20, 8, 8), y=y[:20])

    port = free_port()
    addr = f"127.0.0.1:{port}"
    server = procs.start(
        "serve", "c.toml", "--address", addr, "--out", "run", "--min-clients", "3", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    # With codecarbon installed, client 2 reports codecarbon's reading (modelled on a
    # machine without RAPL): the ledger must use it and still say estimated.
    import importlib.util

    meter = "codecarbon" if importlib.util.find_spec("codecarbon") else "none"
    own = procs.start(
        "join", "--server", addr, "--client-id", "2", "--data-dir", "own", "--meter", meter,
        cwd=tmp_path,
    )  # fmt: skip
    wrong = procs.start(
        "join", "--server", addr, "--client-id", "3", "--data-dir", "wrong", "--meter", "none",
        cwd=tmp_path,
    )  # fmt: skip
    threads = ThreadClients(addr, [0, 1])

    # A client claiming more data than deploy.max_client_samples is refused at Join.
    from greenfl.core.errors import TransportError
    from greenfl.data.local_dir import LocalDirDataset, write_local_dir
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    big = LocalDirDataset.load(write_local_dir(tmp_path / "big", x[:250], y[:250]))
    with pytest.raises(TransportError, match=r"250 local samples .*max_client_samples"):
        FederatedClient(ClientOptions(addr, 3, retry_for_s=30), NullMeter(), data=big).run()
    w_code, _, w_err = finish(wrong, 60)
    code, _, err = finish(server, 90)
    assert code == 0, err
    threads.join(30)
    o_code, _, o_err = finish(own, 30)
    assert o_code == 0, o_err
    assert "done: 3 rounds" in o_err and "global model on local test" in o_err
    import re

    printed = [float(j) for j in re.findall(r"energy ([0-9.e+-]+) J \(codecarbon", o_err)]

    # Refused before any training, at join (the first moment the model is known).
    assert w_code == 2
    lines = w_err.strip().splitlines()
    assert lines[-1].startswith("error: ") and "wrong/data.npz" in lines[-1]
    assert "feature shape [8, 8], the run's model (mlp on digits) takes [64]" in lines[-1]

    db = tmp_path / "run" / "ledger.sqlite"
    got = rows(db, "SELECT round, client_id, status, num_samples FROM client_rounds")
    assert sorted((r, c) for r, c, *_ in got) == [(r, c) for r in (1, 2, 3) for c in (0, 1, 2)]
    # a real meter reads this host, not the phone the fleet enrols: disputed (issue 29)
    assert {s for _, _, s, _ in got} <= {"completed", "disputed"}
    # FedAvg weighs client 2 by its local count; the others by their partitions.
    from greenfl.factories import dataset_for

    sizes = dataset_for(load_config(tmp_path / "c.toml").data, 3).client_sizes()
    assert all(n == (150 if c == 2 else sizes[c]) for _, c, _, n in got)
    own_rows = rows(
        db,
        "SELECT COALESCE(reported_energy_j, energy_compute_j), estimated FROM client_rounds "
        "WHERE client_id = 2 ORDER BY round",
    )
    assert all(est == 1 for _, est in own_rows)
    if meter == "codecarbon" and not Path("/sys/class/powercap/intel-rapl:0").exists():
        assert len(printed) == 3 and "modelled" in o_err
        assert [e for e, _ in own_rows] == pytest.approx(printed, rel=5e-3)
    assert "client 2 joined" in (tmp_path / "run" / "server.log").read_text()
    assert "local data, 150 samples" in (tmp_path / "run" / "server.log").read_text()


def test_round_closes_early_once_k_updates_are_in(tmp_path: Path, procs: Procs) -> None:
    """4 clients selected (over-selection), 3 needed; client 3 would take 60 s. Each round
    closes as soon as the other 3 are in, far before the 20 s deadline; client 3's task is
    withdrawn and it is a straggler, as in simulation."""
    deadline_s = 20
    write_config(tmp_path / "c.toml", n=4, rounds=2, extra="")
    text = (tmp_path / "c.toml").read_text()
    text = text.replace("clients_per_round = 4", "clients_per_round = 3")
    text = text.replace("round_timeout_s = 60", f"round_timeout_s = {deadline_s}")
    text = text.replace('catalog = "builtin"', 'catalog = "builtin"\nover_selection = 0.34')
    (tmp_path / "c.toml").write_text(text)
    port = free_port()
    addr = f"127.0.0.1:{port}"
    server = procs.start(
        "serve", "c.toml", "--address", addr, "--out", "run", "--min-clients", "4", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    clients = ThreadClients(addr, [0, 1, 2, 3], delay_s={3: 60.0})
    code, _, err = finish(server, 60)
    assert code == 0, err
    clients.join(15)

    db = tmp_path / "run" / "ledger.sqlite"
    walls = [w for (w,) in rows(db, "SELECT wall_s FROM rounds ORDER BY round")]
    # Round 1's wall time also holds the wait for all four clients to join (their start-up
    # on a busy machine); how fast each round closed is in the server's log.
    assert len(walls) == 2 and walls[1] < deadline_s / 4, walls
    log_text = (tmp_path / "run" / "server.log").read_text()
    closed = [float(v) for v in re.findall(r"round \d+ closed after ([0-9.]+) s", log_text)]
    assert len(closed) == 2 and max(closed) < deadline_s / 4, closed
    got = rows(
        db,
        "SELECT round, client_id, status, reason, bytes_up, compute_s, energy_compute_j, "
        "estimated FROM client_rounds ORDER BY round, client_id",
    )
    assert [(r, c, s) for r, c, s, *_ in got] == [
        (r, c, "straggler" if c == 3 else "completed") for r in (1, 2) for c in (0, 1, 2, 3)
    ]
    for _, c, _, reason, up, compute_s, energy_j, estimated in got:
        if c == 3:  # withdrawn mid-task: its work until the close counts, modelled
            assert reason == "withdrawn: the round closed with 3 updates"
            assert up == 0 and estimated == 1
            assert 0 < compute_s < deadline_s / 4 and energy_j > 0
    assert rows(db, "SELECT selected, completed FROM rounds") == [(4, 3), (4, 3)]
    slow = clients.clients[3].stats
    assert slow.withdrawn == 2 and slow.rounds == 0  # stopped, never submitted
    assert "withdrew 1 task(s)" in (tmp_path / "run" / "server.log").read_text()
