from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from greenfl.config import RunConfig, build_config

ONE_DEVICE_FLEET = """
[[device]]
name = "dev"
flops_per_s = 1.0e9
active_power_w = 2.0
idle_power_w = 0.5
embodied_kg = 50.0
lifetime_years = 3.0
active_share = 0.25
source = "test"

[[network]]
name = "net"
up_mbps = 8.0
down_mbps = 16.0
radio_power_w = 1.0
network_kwh_per_gb = 0.01
source = "test"

[[region]]
name = "R"
ci_g_per_kwh = 400.0
utc_offset_h = 0
source = "test"

[server]
power_w = 100.0
idle_power_w = 20.0
pue = 1.5
region = "R"
source = "test"

[[population]]
device = "dev"
network = "net"
region = "R"
share = 1.0
"""


@pytest.fixture
def one_device_fleet(tmp_path: Path) -> Path:
    p = tmp_path / "fleet.toml"
    p.write_text(textwrap.dedent(ONE_DEVICE_FLEET))
    return p


@pytest.fixture
def tiny_config() -> RunConfig:
    """A few-second digits run: one local epoch of batch 16 (set here, not left to the
    digits dataset's round defaults of 5 epochs of batch 8)."""
    return build_config(
        {
            "data": {"num_clients": 20},
            "train": {"rounds": 3, "clients_per_round": 5, "local_epochs": 1, "batch_size": 16},
        }
    )


@pytest.fixture(autouse=True)
def _greenfl_logging_reset():
    """A serve or join command run in-process installs log handlers on the stderr pytest
    captured for that test; they must not outlive it (a later test's warnings would go to
    a closed stream and print a 'Logging error' traceback into its output)."""
    yield
    from greenfl.cli.logs import reset_logging

    reset_logging()
