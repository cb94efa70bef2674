"""The SQLite ledger: per-round and per-client-round rows, and summary.json from them."""

from greenfl.ledger.reader import Ledger, read_ledger
from greenfl.ledger.schema import CLIENT_ROUND_COLUMNS, ROUND_COLUMNS, STATUSES
from greenfl.ledger.summary import summarize
from greenfl.ledger.writer import LedgerWriter

__all__ = [
    "CLIENT_ROUND_COLUMNS",
    "ROUND_COLUMNS",
    "STATUSES",
    "Ledger",
    "LedgerWriter",
    "read_ledger",
    "summarize",
]
