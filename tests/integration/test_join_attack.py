"""A test client mounts an attack against a real server (`greenfl join --attack`): under the
deployment's default bounds a scaled update is rejected, the run completes, and the honest
clients' rounds are untouched. ClientAttack's own behaviour is checked by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from greenfl.clients.trainer import TrainResult
from greenfl.core.errors import ConfigError
from greenfl.deploy.client import ClientAttack
from tests.integration.test_deploy import (
    Procs,
    ThreadClients,
    finish,
    free_port,
    rows,
    write_config,
)


@pytest.fixture
def children() -> Iterator[Procs]:
    ps = Procs()
    try:
        yield ps
    finally:
        ps.kill_all()


def _result(delta: torch.Tensor) -> TrainResult:
    return TrainResult(4, delta, num_samples=10, samples_processed=10, steps=1, loss=0.5)


def test_client_attack_changes_the_update_as_simulation_does():
    d = torch.tensor([1.0, -2.0])
    assert torch.equal(ClientAttack("sign_flip", 3.0).on_update(1, _result(d), 0, 10).delta,
                       torch.tensor([-3.0, 6.0]))  # fmt: skip
    # scaling's default boost is the run's clients per round, as in simulation
    assert torch.equal(ClientAttack("scaling").on_update(1, _result(d), 0, 10).delta, 10 * d)
    assert ClientAttack("label_flip").on_update(1, _result(d), 0, 10).delta is not None
    with pytest.raises(ConfigError, match="simulation"):
        ClientAttack("alie")
    with pytest.raises(ConfigError, match="choose one of"):
        ClientAttack("flood")


def test_a_scaling_client_is_rejected_by_the_default_bounds(tmp_path: Path, children: Procs):
    write_config(tmp_path / "c.toml", n=4, rounds=3)
    addr = f"127.0.0.1:{free_port()}"
    server = children.start(
        "serve", "c.toml", "--address", addr, "--out", "run", "--min-clients", "4", "--quiet",
        cwd=tmp_path,
    )  # fmt: skip
    bad = children.start(
        "join", "--server", addr, "--client-id", "3", "--attack", "scaling",
        "--attack-scale", "1e6", "--meter", "none", cwd=tmp_path,
    )  # fmt: skip
    honest = ThreadClients(addr, [0, 1, 2])
    code, _, err = finish(server, 120)
    assert code == 0, err
    honest.join(30)
    b_code, _, b_err = finish(bad, 30)
    assert b_code == 0, b_err
    got = rows(tmp_path / "run" / "ledger.sqlite",
               "SELECT client_id, status, reason FROM client_rounds")  # fmt: skip
    attacker = [(s, r or "") for c, s, r in got if c == 3]
    # rejected by the default norm bound (10x the round's median) twice, then quarantined
    assert [s for s, _ in attacker] == ["rejected", "rejected", "failed"]
    assert all("exceeds 10x the round's median" in r for _, r in attacker[:2])
    assert "quarantined" in attacker[2][1]
    assert {s for c, s, _ in got if c != 3} == {"completed"}
