"""Issue 16's live attacks on a deployment: a client that lies about its round's size and
footprint cannot move the server's clock or ledger past what the server saw, and the run
(and its resume) completes."""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path

import pytest

from greenfl.core.errors import TransportError
from tests.integration.test_deploy import (
    Procs,
    ThreadClients,
    finish,
    free_port,
    max_round,
    procs,  # noqa: F401 - the fixture
    rows,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.slow

HUGE_SAMPLES = 2**62
TIMEOUT_S = 60.0  # the config's deploy.round_timeout_s


def _liar(address: str, client_id: int, compute_s: float) -> threading.Thread:
    """A client that declares 2^62 samples of its own data at join, then reports the FLOPs
    the server expects for them, ``compute_s`` (NaN: "absent") and no energy."""
    from greenfl.deploy.client import ClientOptions, FederatedClient
    from greenfl.footprint.meters import NullMeter

    class Liar(FederatedClient):
        def _join(self, stub, wait_s):  # type: ignore[no-untyped-def]
            real = stub.Join

            def patched(req, **kw):  # type: ignore[no-untyped-def]
                req.num_samples = HUGE_SAMPLES
                return real(req, **kw)

            stub.Join = patched
            return super()._join(stub, wait_s)

        def _fit(self, task, session_id):  # type: ignore[no-untyped-def]
            up = super()._fit(task, session_id)
            if up is not None:
                epochs = task.instructions.local_epochs
                up.num_samples = HUGE_SAMPLES
                up.footprint.flops = self._local.flops_per_sample * HUGE_SAMPLES * epochs
                up.footprint.compute_s = compute_s
                up.footprint.ClearField("energy_j")
            return up

    liar = Liar(ClientOptions(address, client_id, backoff_max_s=2.0, retry_for_s=30), NullMeter())
    refused: list[TransportError] = []

    def run() -> None:
        # a refusal ends the liar's thread: kept for the test, not an unhandled exception
        try:
            liar.run()
        except TransportError as exc:
            refused.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.refused = refused  # type: ignore[attr-defined]
    t.start()
    return t


@pytest.mark.parametrize("compute_s", [math.nan, 0.01])
def test_a_client_claiming_2e62_samples_cannot_overflow_the_clock_or_poison_resume(
    tmp_path: Path,
    procs: Procs,  # noqa: F811
    compute_s: float,
) -> None:
    rounds = 30
    # The join cap off, so the checks behind it are what stops the liar.
    write_config(tmp_path / "c.toml", n=4, rounds=rounds,
                 extra="max_client_samples = 9223372036854775807")  # fmt: skip
    port = free_port()
    addr = f"127.0.0.1:{port}"
    serve = ("serve", "--address", addr, "--out", "run", "--min-clients", "4", "--quiet")
    server = procs.start(*serve, "c.toml", cwd=tmp_path)
    honest = ThreadClients(addr, [0, 1, 2])
    _liar(addr, 3, compute_s)
    db = tmp_path / "run" / "ledger.sqlite"
    # Kill the server once the lie is in the ledger and the clock, then resume the run.
    wait_for(lambda: max_round(db) >= 2, 90, "round 2 in the ledger")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    assert max_round(db) < rounds
    resumed = procs.start(*serve, "--resume", cwd=tmp_path)
    code, _, err = finish(resumed, 180)
    assert code == 0, err[-3000:]
    honest.join(60)
    got = rows(db, "SELECT client_id, status, reason, compute_s, energy_compute_j "
                   "FROM client_rounds")  # fmt: skip
    assert len(got) == 4 * rounds
    assert all(s <= TIMEOUT_S and e < 1e6 for _, _, _, s, e in got), max(got, key=lambda r: r[3])
    liar = [(s, r) for c, s, r, _, _ in got if c == 3]
    assert liar and all(s in ("rejected", "failed") for s, _ in liar)
    assert "implausible" in liar[0][1]
    ends = rows(db, "SELECT MAX(end_s) FROM rounds")[0][0]
    assert ends < rounds * TIMEOUT_S * 2


def test_the_default_join_cap_refuses_2e62_samples(tmp_path: Path, procs: Procs) -> None:  # noqa: F811
    write_config(tmp_path / "c.toml", n=4, rounds=1)
    addr = f"127.0.0.1:{free_port()}"
    server = procs.start("serve", "c.toml", "--address", addr, "--out", "run", "--min-clients",
                         "3", "--quiet", cwd=tmp_path)  # fmt: skip
    liar = _liar(addr, 3, math.nan)
    honest = ThreadClients(addr, [0, 1, 2])
    code, _, err = finish(server, 120)
    assert code == 0, err
    honest.join(30)
    liar.join(30)
    log = (tmp_path / "run" / "server.log").read_text()
    assert f"{HUGE_SAMPLES} local samples" in log
    # the liar was told why, in one refusal
    assert [str(e) for e in liar.refused] == [  # type: ignore[attr-defined]
        f"server {addr} refused: {HUGE_SAMPLES} local samples is out of range 1..100000 "
        "(deploy.max_client_samples)"
    ]
