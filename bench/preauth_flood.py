"""Issue 29, item 5: the server's memory under a flood of oversized requests from callers
with no token (Join) or no session (Tasks), before authentication.

For each scenario a fresh ``greenfl serve`` (with a token file, default deploy limits) is
started on loopback; N concurrent callers each send one request of ``--mb`` MB (Join: a
token of that size; Tasks: a session id of that size); the server's resident memory is read
from /proc before the flood, at its peak (VmHWM) and a few seconds after. The server is then
killed. Linux only (reads /proc).

Each scenario runs with the server's pinned HTTP/2 receive window (``pinned``, what
``greenfl serve`` ships) and with gRPC's own window grown from the bandwidth-delay product
(``bdp``, before the pin), side by side; ``--load N`` keeps N busy processes running during
the flood, as on a loaded host, where the grown window is largest.

    python bench/preauth_flood.py                 # 6 and 12 callers, Join and Tasks, 120 MB
    python bench/preauth_flood.py --callers 12 --calls join --load 2 --repeats 3

Prints one line per scenario and a JSON list at the end."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import grpc

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy import greenfl_pb2_grpc as pb_grpc

CONFIG = """
seed = 1
[data]
num_clients = 4
[train]
rounds = 1
clients_per_round = 4
[deploy]
join_timeout_s = 600
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mem_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def _flood(addr: str, call: str, callers: int, size_bytes: int) -> list[str]:
    """``callers`` concurrent requests of about ``size_bytes``; their status codes."""
    codes: list[str] = []
    payload = "x" * size_bytes

    def send() -> None:
        opts = [("grpc.max_send_message_length", 2**31 - 1)]
        with grpc.insecure_channel(addr, options=opts) as ch:
            stub = pb_grpc.FederationStub(ch)
            try:
                if call == "join":
                    req = pb.JoinRequest(protocol_version=PROTOCOL_VERSION, token=payload)
                    stub.Join(req, timeout=120)
                else:
                    for _ in stub.Tasks(pb.TaskRequest(session_id=payload), timeout=120):
                        break
                codes.append("OK")
            except grpc.RpcError as exc:
                codes.append(exc.code().name)

    threads = [threading.Thread(target=send) for _ in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    return codes


# The server as `greenfl serve` starts it, with gRPC's own receive window for ``bdp``.
SERVE = """
import functools
import sys
import greenfl.deploy.server.listener as listener
if sys.argv.pop(1) == "bdp":
    listener.server_options = functools.partial(
        listener.server_options, receive_window_bytes=None
    )
from greenfl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def scenario(
    call: str, callers: int, mb: float, settle_s: float, window: str, load: int
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "c.toml").write_text(textwrap.dedent(CONFIG))
        (d / "secret").write_text("bench-secret\n")
        addr = f"127.0.0.1:{_free_port()}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, window, "serve", "c.toml", "--address", addr,
             "--out", "run", "--token-file", "secret", "--quiet"],
            cwd=d, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert server.stderr is not None
            deadline = time.monotonic() + 300
            while "listening on" not in server.stderr.readline():
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the server did not start")
            time.sleep(1.0)
            before = _mem_kb(server.pid)
            ctx = multiprocessing.get_context("spawn")
            hogs = [ctx.Process(target=_busy, args=(600.0,)) for _ in range(load)]
            for hog in hogs:
                hog.start()
            t0 = time.monotonic()
            try:
                codes = _flood(addr, call, callers, int(mb * 1_000_000))
            finally:
                for hog in hogs:
                    hog.terminate()
            flood_s = time.monotonic() - t0
            time.sleep(settle_s)
            after = _mem_kb(server.pid)
        finally:
            server.kill()
            server.wait()
    row = {
        "window": window,
        "load": load,
        "call": call,
        "callers": callers,
        "request_mb": mb,
        "rss_before_mb": round(before["VmRSS"] / 1024),
        "rss_peak_mb": round(after["VmHWM"] / 1024),
        "rss_after_mb": round(after["VmRSS"] / 1024),
        "flood_s": round(flood_s, 1),
        "codes": sorted(set(codes)),
    }
    print(
        f"{window:6s} load {load} {call:5s} x{callers:2d} of {mb:g} MB: "
        f"RSS {row['rss_before_mb']} MB before, "
        f"peak {row['rss_peak_mb']} MB, {row['rss_after_mb']} MB {settle_s:g} s after; "
        f"{flood_s:.1f} s; codes {row['codes']}",
        flush=True,
    )
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--callers", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--calls", nargs="+", choices=["join", "tasks"], default=["join", "tasks"])
    ap.add_argument("--mb", type=float, default=120.0)
    ap.add_argument("--settle-s", type=float, default=3.0)
    ap.add_argument("--windows", nargs="+", choices=["pinned", "bdp"], default=["pinned", "bdp"])
    ap.add_argument("--load", type=int, default=0, help="busy processes during each flood")
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    rows = [
        scenario(call, n, args.mb, args.settle_s, window, args.load)
        for _ in range(args.repeats)
        for n in args.callers
        for call in args.calls
        for window in args.windows
    ]
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
