"""A client's task stream: the long-lived ``Tasks`` RPC on which the server pushes its
tasks, the run's end, and keep-alives, until the stream is replaced or the client is gone."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import grpc

from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.server.rounds import next_task
from greenfl.deploy.server.sessions import Pending, Session


def stream_tasks(
    cond: threading.Condition,
    sess: Session,
    gen: int,
    context: grpc.ServicerContext,
    keepalive_s: float,
    state: Callable[[], tuple[Pending | None, str | None]],
) -> Iterator[pb.Task]:
    """Yield ``sess``'s tasks while its stream generation ``gen`` is current and the RPC is
    active. ``state()`` (called with ``cond`` held) gives the client's open task and the
    shutdown reason, if the run is over."""
    while True:
        with cond:
            wake = time.monotonic() + keepalive_s
            while not sess.queue and state()[1] is None and sess.stream_gen == gen:
                if not context.is_active():
                    break
                left = wake - time.monotonic()
                if left <= 0:
                    break
                cond.wait(min(left, 1.0))
            if sess.stream_gen != gen or not context.is_active():
                return
            task = next_task(sess, *state())
        yield task
        if task.kind == pb.Task.SHUTDOWN:
            return
