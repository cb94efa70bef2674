"""The server side of a deployment (``greenfl serve``).

``serve`` runs a deployment as ``greenfl.run`` runs a simulation (``serve.py``, the one
module here that reads a RunConfig). ``GrpcTransport`` is the round loop's ClientTransport
(``transport.py``); ``FederationServicer`` the gRPC service and the bookkeeping of the
connected clients (``servicer.py``), listening behind a gate of sizes and sessions
(``listener.py``). Around them: join admission (``sessions.py``), update judging
(``checks.py``) and its bounds (``plausible.py``), the round's reports for clients that did
not deliver (``rounds.py``), task streams (``stream.py``), quarantine, rate limits, and
secure aggregation's server side (``secagg.py``)."""

from greenfl.deploy.server.secagg import SecAggOptions
from greenfl.deploy.server.serve import serve, settings_of, transport_for
from greenfl.deploy.server.servicer import FederationServicer
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.server.transport import GrpcTransport

__all__ = [
    "DeploySettings",
    "FederationServicer",
    "GrpcTransport",
    "SecAggOptions",
    "serve",
    "settings_of",
    "transport_for",
]
