"""Issue 16, defect 4: a forged update is refused before its payload is received, and the
small RPCs have their own small size caps. Loopback only, bounded in count and time."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import grpc
import pytest

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc
from greenfl.deploy.server.listener import SMALL_RPC_CAP_BYTES
from tests.integration.test_deploy import Procs, free_port, procs, write_config  # noqa: F401

pytestmark = pytest.mark.slow

FORGED_BYTES = 100_000_000
CALLS = 6
MAX_GROWTH_KB = 150_000


def _hwm_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def _flood(addr: str, call: str) -> list[str]:
    """``CALLS`` concurrent forged calls of ~100 MB each; their status codes."""
    codes: list[str] = []
    big = b"\0" * FORGED_BYTES

    def send() -> None:
        opts = [("grpc.max_send_message_length", 2**31 - 1)]
        with grpc.insecure_channel(addr, options=opts) as ch:
            stub = pb_grpc.FederationStub(ch)
            try:
                if call == "submit":
                    up = pb.Update(protocol_version=PROTOCOL_VERSION, session_id="forged")
                    up.tensors.tensors.add(name="w", data=big)
                    stub.SubmitUpdate(up, metadata=(("greenfl-session", "forged"),), timeout=60)
                else:
                    req = pb.JoinRequest(protocol_version=PROTOCOL_VERSION, client_id=0,
                                         token=big[: SMALL_RPC_CAP_BYTES * 2].decode())  # fmt: skip
                    stub.Join(req, timeout=60)
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)

    threads = [threading.Thread(target=send) for _ in range(CALLS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return codes


def test_forged_updates_are_refused_before_their_payload_is_received(
    tmp_path: Path, procs: Procs  # noqa: F811
) -> None:
    write_config(tmp_path / "c.toml", n=4, rounds=1)
    addr = f"127.0.0.1:{free_port()}"
    server = procs.start("serve", "c.toml", "--address", addr, "--out", "run",
                         "--min-clients", "4", "--quiet", cwd=tmp_path)  # fmt: skip
    assert server.stderr is not None
    deadline = time.monotonic() + 60
    while "listening on" not in server.stderr.readline():
        assert time.monotonic() < deadline and server.poll() is None, "server did not start"
    before_kb = _hwm_kb(server.pid)
    codes = _flood(addr, "submit")
    after_kb = _hwm_kb(server.pid)
    assert codes == ["UNAUTHENTICATED"] * CALLS
    # Received whole, six 100 MB updates cost ~600 MB; refused unread, a few MB.
    assert after_kb - before_kb < MAX_GROWTH_KB, (before_kb, after_kb)
    # A Join with a token over its own cap is refused by size, not parsed and compared.
    assert _flood(addr, "join") == ["RESOURCE_EXHAUSTED"] * CALLS
    assert server.poll() is None
