"""greenfl: federated learning that knows what its training costs the planet."""

from greenfl._version import __version__
from greenfl.api import RunResult, run  # noqa: E402
from greenfl.config import RunConfig, build_config, load_config  # noqa: E402
from greenfl.core.errors import (  # noqa: E402
    ConfigError,
    DataError,
    FleetError,
    GreenflError,
    TransportError,
    UpdateRejected,
)
from greenfl.data.base import FederatedDataset  # noqa: E402
from greenfl.engine.records import RoundRecord
from greenfl.fleet.catalog import Fleet, load_fleet  # noqa: E402
from greenfl.ledger.reader import Ledger, read_ledger  # noqa: E402

__all__ = [
    "ConfigError",
    "DataError",
    "FederatedDataset",
    "Fleet",
    "FleetError",
    "GreenflError",
    "Ledger",
    "RoundRecord",
    "RunConfig",
    "RunResult",
    "TransportError",
    "UpdateRejected",
    "__version__",
    "build_config",
    "load_config",
    "load_fleet",
    "read_ledger",
    "run",
]
