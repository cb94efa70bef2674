"""Network energy by access technology: per-GB figures and the LTE radio tail."""

from __future__ import annotations

import numpy as np
import pytest

from greenfl.fleet import load_fleet
from greenfl.footprint.model import client_cost, tail_energy_j, truncate


def test_the_tail_follows_each_transfer_cut_short_by_the_upload() -> None:
    # 11.6 s timer at 1.06 W: a 3 s training step ends the download's tail at 3 s.
    got = tail_energy_j(np.array([3.0, 20.0]), True, True, 11.6, 1.06)
    assert got.tolist() == pytest.approx([1.06 * (3.0 + 11.6), 1.06 * (11.6 + 11.6)])
    assert tail_energy_j(5.0, True, False, 11.6, 1.06) == pytest.approx(1.06 * 5.0)


def test_comm_energy_by_hand_with_tail() -> None:
    # 1 MB each way at 8 Mbit/s (1 s each), radio 2 W, 0.12 kWh/GB, compute 4 s.
    c = client_cost(4e9, 1e6, 1e6, 1e9, 3.0, 8.0, 8.0, 2.0, 0.12, 10.0, 1.0)
    network_j = 2e6 / 1e9 * 0.12 * 3.6e6  # 864 J
    want = 2.0 * 2.0 + network_j + 1.0 * (4.0 + 10.0)
    assert float(c.energy_comm_j) == pytest.approx(want)
    assert float(c.total_s) == pytest.approx(6.0)  # the tail adds energy, not active time
    # Cut during training: the download's tail runs over what was trained, no upload tail.
    one = np.array
    cut, down, up = truncate(
        c, one([3.0]), one([1e6]), one([1e6]), one([3.0]), one([2.0]), one([0.12]), 10.0, 1.0
    )
    assert up.tolist() == [0]
    assert float(cut.energy_comm_j[0]) == pytest.approx(2.0 * 1.0 + 1e6 / 1e9 * 0.12 * 3.6e6 + 2.0)


def test_builtin_networks_differ_by_technology_and_name_their_sources() -> None:
    nets = {n.name: n for n in load_fleet("builtin").networks}
    assert nets["lte"].network_kwh_per_gb > nets["wifi"].network_kwh_per_gb
    assert nets["lte"].tail_s > 0 and nets["wifi"].tail_s == 0
    for n in nets.values():
        assert "Traficom" in n.source or "estimate" in n.source
    assert "estimate: 0.06 kWh/GB" in nets["5g"].source  # no measured 5G-only figure
