"""The error hierarchy. Every error a user can cause is a GreenflError with a message
that names the offending key, file or field."""


class GreenflError(Exception):
    """Base of every error greenfl raises on purpose."""


class NoClientsError(GreenflError):
    """The async loop found no eligible client for a month of simulated time (the fleet's
    eligibility or availability leaves nobody to train)."""


class ConfigError(GreenflError):
    """A config file, key or value is wrong."""


class DataError(GreenflError):
    """A dataset or partition cannot be built as asked."""


class FleetError(GreenflError):
    """A fleet file is missing, malformed or inconsistent."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems or [message]


class UpdateRejected(GreenflError):
    """A client update failed validation and was not aggregated."""


class TransportError(GreenflError):
    """A client could not be reached or answered out of protocol."""


class LedgerError(GreenflError):
    """A row the ledger cannot take, or rounds it could not write."""


class MissingExtraError(GreenflError):
    """An optional dependency is needed for what was asked."""


class MeterError(GreenflError):
    """An energy meter was asked for that this machine cannot provide."""
