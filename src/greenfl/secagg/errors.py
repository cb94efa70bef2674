"""The one error of the secure-aggregation protocol."""

from greenfl.core.errors import GreenflError


class SecAggError(GreenflError):
    """A protocol step cannot go on: too few survivors, a bad share, a tampered ciphertext,
    or a request that would reveal both secrets of one client."""
