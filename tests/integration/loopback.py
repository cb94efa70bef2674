"""A deployment on loopback inside the test process, shared by the deploy tests: a `serve`
in a thread on a free port, `join` clients as threads running the real client code, a
rogue client's FIT tasks over the generated stubs, and the comparison of the deployed run
with the same run simulated. Each test file keeps its own assertions."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

import greenfl
from greenfl.config import RunConfig
from greenfl.engine.observers import Observation, Observer, RoundView


def config_text(
    n_clients: int,
    rounds: int,
    *,
    seed: int = 3,
    catalog: str = "builtin",
    train: str = "",
    sections: str = "",
    deploy: str = "",
) -> str:
    """A deployment's TOML: ``n_clients`` all selected each of ``rounds`` rounds on the
    fleet ``catalog``, deadlines of 60 s and a 1 s keepalive (quick to notice a gone
    client); ``train`` and ``deploy`` add lines to those tables, ``sections`` more tables."""
    lines = [
        f"seed = {seed}",
        "[data]",
        f"num_clients = {n_clients}",
        "[train]",
        f"rounds = {rounds}",
        f"clients_per_round = {n_clients}",
        textwrap.dedent(train).strip(),
        "[fleet]",
        f'catalog = "{catalog}"',
        textwrap.dedent(sections).strip(),
        "[deploy]",
        "round_timeout_s = 60",
        "join_timeout_s = 60",
        "keepalive_s = 1",
        textwrap.dedent(deploy).strip(),
    ]
    return "\n".join(line for line in lines if line) + "\n"


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread while a test runs: the server, its clients and the simulated run
    share this process and a small machine (import it into a test module to use it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class GlobalParams(Observer):
    """Keeps each round's new global model."""

    def __init__(self) -> None:
        self.params: list[torch.Tensor] = []

    def observe(self, view: RoundView) -> Observation:
        self.params.append(view.global_params.clone())
        return Observation()


def serve_in_thread(
    cfg: RunConfig, out: Path, observers: list[Any]
) -> tuple[str, threading.Thread, dict[str, Any]]:
    """``serve`` on a free loopback port in a thread; its address once it listens, the
    thread, and a dict that gets the run's "result" (or the "error" it raised)."""
    from greenfl.deploy.server import serve

    listening = threading.Event()
    got: dict[str, Any] = {}

    def on_listening(host: str, port: int) -> None:
        got["address"] = f"{host}:{port}"
        listening.set()

    def run() -> None:
        try:
            got["result"] = serve(
                cfg, out, address="127.0.0.1:0", observers=observers, on_listening=on_listening
            )
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            got["error"] = exc
            listening.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert listening.wait(60), "serve did not start listening"
    assert "error" not in got, got.get("error")
    return got["address"], thread, got


def run_in_threads(clients: Sequence[Any], timeout_s: float) -> list[BaseException]:
    """Runs each client's ``run()`` in a thread until all finish; what they raised."""
    errors: list[BaseException] = []

    def run(c: Any) -> None:
        try:
            c.run()
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    assert not any(t.is_alive() for t in threads), "a client did not finish"
    return errors


def run_clients(address: str, ids: list[int]) -> list[Any]:
    """Well-behaved clients ``ids`` (no meter) run to the end of the deployment."""
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    clients = [
        FederatedClient(ClientOptions(address, i, backoff_max_s=2.0, retry_for_s=60), NullMeter())
        for i in ids
    ]
    errors = run_in_threads(clients, 120)
    assert not errors, errors
    return clients


def serve_and_join(
    cfg: RunConfig, out: Path, n_clients: int, observers: list[Any]
) -> tuple[list[Any], Any]:
    """A whole deployment: ``serve`` into ``out`` and clients 0 .. n_clients - 1; the
    clients and the server's result once both ended without error."""
    address, server, got = serve_in_thread(cfg, out, observers)
    clients = run_clients(address, list(range(n_clients)))
    server.join(timeout=60)
    assert not server.is_alive() and "error" not in got, got.get("error")
    return clients, got["result"]


def fit_tasks(address: str, client_id: int, token: str = "") -> Iterator[tuple[Any, str, Any]]:
    """A hand-made client: joins as ``client_id`` and yields (stub, session id, task) for
    each FIT task until the server says SHUTDOWN; the caller answers each task."""
    import grpc

    from greenfl.deploy import greenfl_pb2 as pb
    from greenfl.deploy import greenfl_pb2_grpc as pbg

    with grpc.insecure_channel(address) as ch:
        stub = pbg.FederationStub(ch)
        req = pb.JoinRequest(protocol_version=1, token=token, client_id=client_id)
        reply = stub.Join(req, wait_for_ready=True, timeout=60)
        for task in stub.Tasks(pb.TaskRequest(session_id=reply.session_id)):
            if task.kind == pb.Task.SHUTDOWN:
                return
            if task.kind == pb.Task.FIT:
                yield stub, reply.session_id, task


def update_to(task: Any, session_id: str, client_id: int, **fields: Any) -> Any:
    """A hand-made pb.Update answering ``task``: one sample at loss 0.1 unless ``fields``
    say otherwise (the tensors, an error)."""
    from greenfl.deploy import greenfl_pb2 as pb

    return pb.Update(
        protocol_version=1,
        session_id=session_id,
        client_id=client_id,
        round=task.round,
        task_id=task.task_id,
        **{"num_samples": 1, "loss": 0.1, **fields},
    )


def serve_with_rogue(
    cfg: RunConfig,
    out: Path,
    rogue: Callable[[str, int, dict[str, Any]], None],
    rogue_id: int,
    honest_ids: list[int],
) -> dict[str, Any]:
    """A deployment with one hand-made client ``rogue(address, rogue_id, seen)`` in a
    thread beside well-behaved clients ``honest_ids``; what the rogue put in ``seen``."""
    address, server, got = serve_in_thread(cfg, out, [])
    seen: dict[str, Any] = {}
    thread = threading.Thread(target=rogue, args=(address, rogue_id, seen), daemon=True)
    thread.start()
    run_clients(address, honest_ids)
    server.join(timeout=60)
    thread.join(timeout=30)
    assert not server.is_alive() and "error" not in got, got.get("error")
    assert not thread.is_alive(), "the rogue client did not finish"
    return seen


def assert_simulation_equal(
    cfg: RunConfig,
    deployed: Sequence[torch.Tensor],
    result: Any = None,
    atol: float = 1e-6,
) -> list[torch.Tensor]:
    """Simulates ``cfg`` and asserts the deployed global model is the simulated one round
    for round (to ``atol``: the same kernels, float32 rounding) and, given the server's
    ``result``, so are the rounds' accuracies; the simulated models."""
    simulated = GlobalParams()
    sim = greenfl.run(cfg, observers=[simulated])
    assert len(deployed) == len(simulated.params) == cfg.train.rounds
    for d, s in zip(deployed, simulated.params, strict=True):
        assert torch.allclose(d, s, rtol=0, atol=atol)
    if result is not None:
        assert [r.accuracy for r in result.history] == pytest.approx(
            [r.accuracy for r in sim.history], abs=1e-9
        )
    return simulated.params


def varint_len(n: int) -> int:
    """Bytes of a protobuf varint of ``n`` >= 0."""
    return max(1, (n.bit_length() + 6) // 7)


def framed(payload_len: int) -> int:
    """A length-delimited field of field number < 16: tag, length, payload."""
    return 1 + varint_len(payload_len) + payload_len


def tensor_len(name: str, shape: tuple[int, ...]) -> int:
    """One framed Tensor field, by the encoding rules: its name, its shape as packed
    varints, dtype "float32", the float32 data."""
    numel = 1
    for s in shape:
        numel *= s
    body = (
        framed(len(name))
        + framed(sum(varint_len(s) for s in shape))
        + framed(len("float32"))
        + framed(4 * numel)
    )
    return framed(body)
