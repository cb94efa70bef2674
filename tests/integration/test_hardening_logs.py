"""Issue 16: late and duplicate updates on a live server are answered with their reason and
logged once per client per 10 s, however many arrive. Loopback only."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import grpc
import pytest

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from tests.integration.test_deploy import Procs, free_port, procs, wait_for, write_config  # noqa: F401

pytestmark = pytest.mark.slow


def _hold_stream(stub: pb_grpc.FederationStub, sid: str, tasks: queue.Queue[pb.Task]) -> None:
    """Keep the client's Tasks stream open (closing it disconnects the client), passing on
    its FIT tasks."""
    try:
        for task in stub.Tasks(pb.TaskRequest(session_id=sid), timeout=90):
            if task.kind == pb.Task.FIT:
                tasks.put(task)
    except grpc.RpcError:
        pass  # the test is over and the channel closed


def _submit(stub: pb_grpc.FederationStub, sid: str, cid: int, task: pb.Task) -> pb.Ack:
    up = pb.Update(protocol_version=PROTOCOL_VERSION, session_id=sid, client_id=cid,
                   round=task.round, task_id=task.task_id, error="cannot train")  # fmt: skip
    return stub.SubmitUpdate(up, metadata=(("greenfl-session", sid),), timeout=30)


def test_late_and_duplicate_updates_are_answered_and_logged_once(
    tmp_path: Path, procs: Procs  # noqa: F811
) -> None:
    write_config(tmp_path / "c.toml", n=2, rounds=2)
    addr = f"127.0.0.1:{free_port()}"
    procs.start("serve", "c.toml", "--address", addr, "--out", "run", "--min-clients", "2",
                "--quiet", cwd=tmp_path)  # fmt: skip
    with grpc.insecure_channel(addr) as ch:
        grpc.channel_ready_future(ch).result(timeout=60)
        stub = pb_grpc.FederationStub(ch)
        sids = [stub.Join(pb.JoinRequest(protocol_version=PROTOCOL_VERSION, client_id=c),
                          timeout=30).session_id for c in (0, 1)]  # fmt: skip
        queues: list[queue.Queue[pb.Task]] = [queue.Queue(), queue.Queue()]
        for c in (0, 1):
            threading.Thread(target=_hold_stream, args=(stub, sids[c], queues[c]),
                             daemon=True).start()  # fmt: skip
        tasks = [q.get(timeout=60) for q in queues]
        assert _submit(stub, sids[0], 0, tasks[0]).reason.startswith("client error")
        # Client 1 has not answered: round 1 is open, and these are duplicates.
        dups = [_submit(stub, sids[0], 0, tasks[0]).reason for _ in range(3)]
        assert all(r.startswith("duplicate: round 1") for r in dups), dups
        _submit(stub, sids[1], 1, tasks[1])  # round 1 closes
        log = tmp_path / "run" / "server.log"
        wait_for(lambda: "round 1" in log.read_text() and "acc" in log.read_text(), 60,
                 "round 1 in the log")  # fmt: skip
        late = [_submit(stub, sids[0], 0, tasks[0]).reason for _ in range(3)]
        assert all(r.startswith("too late: round 1") for r in late), late
    text = log.read_text()
    assert text.count("update of client 0 not taken") == 1, text
