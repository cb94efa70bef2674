"""Secure aggregation (Bonawitz et al., CCS 2017, with the SecAgg+ neighbourhoods of Bell et
al., CCS 2020): the server learns the sum of the clients' updates and nothing else about
any one of them. Pure protocol code: no transport, no config. See
docs/secure-aggregation.md."""

from greenfl.secagg.cost import SecAggCost, secagg_cost
from greenfl.secagg.encoding import FixedPoint
from greenfl.secagg.errors import SecAggError, SumOutOfRange
from greenfl.secagg.graph import RoundParams
from greenfl.secagg.protocol import SecAggClient, SecAggServer

__all__ = [
    "FixedPoint",
    "RoundParams",
    "SecAggClient",
    "SecAggCost",
    "SecAggError",
    "SecAggServer",
    "SumOutOfRange",
    "secagg_cost",
]
