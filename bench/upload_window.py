"""What the server's pinned HTTP/2 receive window costs a legitimate upload.

``greenfl serve`` pins each stream's receive window (``listener.RECEIVE_WINDOW_BYTES``,
4 MiB) instead of letting gRPC grow it from the measured bandwidth-delay product, which
bounds what a flood of oversized requests costs it (bench/preauth_flood.py). A window caps
one upload at one window per round trip. This measures an update's upload, in the client's
256 KiB chunks, to a gRPC server built with ``listener.server_options``, pinned and with
gRPC's own window (``bdp``), side by side, at the round-trip times given.

A round-trip time above 0 is added by a delay line between client and server: a loopback
TCP proxy that forwards every byte, in each direction, half the RTT after it arrived, so
that HTTP/2's window updates take the round trip too; ``--link-mbps`` also serialises each
direction at that rate (no loss either way). (Kernel netem would do the same; container
kernels often lack it.)

    python bench/upload_window.py                            # 0, 20, 100 ms; 32 MB
    python bench/upload_window.py --rtt-ms 100 --link-mbps 6 50 --mb 8   # LTE-like, WiFi-like
    python bench/upload_window.py --rtt-ms 0 --mb 64

Prints one line per case and a JSON list at the end."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc

from greenfl.deploy.client.upload import SERVICE, chunks_of
from greenfl.deploy.server.listener import RECEIVE_WINDOW_BYTES, server_options


def _receive(chunks: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    total = sum(len(c) for c in chunks)
    return total.to_bytes(8, "big")


def _server(window: int | None) -> tuple[grpc.Server, int]:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=server_options(64 << 20, window),
    )
    handler = grpc.method_handlers_generic_handler(
        SERVICE.strip("/"), {"SubmitUpdate": grpc.stream_unary_rpc_method_handler(_receive)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class DelayLine:
    """A loopback TCP proxy to ``127.0.0.1:target_port`` that delays each direction by
    ``one_way_s``: what it reads is written out once that long has passed since it arrived,
    in order, while later bytes keep arriving (a pipe with latency, not a stop-and-wait).
    With ``link_bits_per_s``, bytes also leave no faster than that rate."""

    def __init__(self, target_port: int, one_way_s: float, link_bits_per_s: float = 0) -> None:
        self.target_port, self.one_way_s = target_port, one_way_s
        self.link_bits_per_s = link_bits_per_s
        self.loop = asyncio.new_event_loop()
        ready: futures.Future[int] = futures.Future()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        self.port = ready.result(timeout=30)

    def _run(self, ready: futures.Future[int]) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
        ready.set_result(server.sockets[0].getsockname()[1])
        self.loop.run_forever()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        due: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                at, data = await due.get()
                if not data:
                    writer.close()
                    return
                await asyncio.sleep(max(0.0, at - self.loop.time()))
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(send())
        link_free_at = 0.0  # when the link has sent what came before
        while True:
            data = await reader.read(64 * 1024)
            now = self.loop.time()
            link_free_at = max(now, link_free_at)
            if self.link_bits_per_s:
                link_free_at += 8 * len(data) / self.link_bits_per_s
            due.put_nowait((link_free_at + self.one_way_s, data))
            if not data:
                break
        await sender

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        # Cancelled at close(): end quietly (asyncio logs a cancelled connection task).
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(
                self._pipe(reader, up_writer),
                self._pipe(up_reader, writer),
                return_exceptions=True,
            )

    async def _shutdown(self) -> None:
        tasks = asyncio.all_tasks(self.loop) - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(10)


def upload_s(port: int, raw: bytes) -> float:
    """Seconds to upload ``raw`` in chunks on a fresh connection, the connection's set-up
    excluded."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=30)
        call = ch.stream_unary(SERVICE + "SubmitUpdate")
        t0 = time.perf_counter()
        got = call(chunks_of(raw), timeout=600)
        elapsed = time.perf_counter() - t0
    assert int.from_bytes(got, "big") == len(raw)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rtt-ms", type=float, nargs="+", default=[0.0, 20.0, 100.0])
    ap.add_argument("--link-mbps", type=float, nargs="+", default=[0.0], help="0: unlimited")
    ap.add_argument("--mb", type=float, default=32.0)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    raw = bytes(int(args.mb * 1_000_000))
    windows = {"pinned": RECEIVE_WINDOW_BYTES, "bdp": None}
    servers = {name: _server(w) for name, w in windows.items()}
    rows = []
    try:
        for rtt_ms, mbps in [(r, m) for r in args.rtt_ms for m in args.link_mbps]:
            lines = {
                name: DelayLine(port, rtt_ms / 2000, mbps * 1e6)
                for name, (_, port) in servers.items()
            }
            times: dict[str, list[float]] = {name: [] for name in windows}
            for _ in range(args.repeats):  # interleaved, so drift hits both alike
                for name, line in lines.items():
                    port = line.port if rtt_ms > 0 or mbps > 0 else servers[name][1]
                    times[name].append(upload_s(port, raw))
            for line in lines.values():
                line.close()
            med = {name: statistics.median(t) for name, t in times.items()}
            row = {
                "rtt_ms": rtt_ms,
                "link_mbps": mbps or None,
                "upload_mb": args.mb,
                "pinned_s": round(med["pinned"], 3),
                "bdp_s": round(med["bdp"], 3),
                "pinned_mb_per_s": round(args.mb / med["pinned"], 1),
                "bdp_mb_per_s": round(args.mb / med["bdp"], 1),
                "pinned_over_bdp": round(med["pinned"] / med["bdp"], 2),
                "runs": {name: [round(x, 3) for x in t] for name, t in times.items()},
            }
            rows.append(row)
            print(
                f"RTT {rtt_ms:g} ms, link {mbps or 'unlimited'} Mbit/s, {args.mb:g} MB: "
                f"pinned {row['pinned_s']} s "
                f"({row['pinned_mb_per_s']} MB/s), bdp {row['bdp_s']} s "
                f"({row['bdp_mb_per_s']} MB/s); pinned/bdp {row['pinned_over_bdp']}",
                flush=True,
            )
    finally:
        for server, _ in servers.values():
            server.stop(None)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
