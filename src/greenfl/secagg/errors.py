"""The errors of the secure-aggregation protocol: one, and the refusal of a sum."""

from greenfl.core.errors import GreenflError


class SecAggError(GreenflError):
    """A protocol step cannot go on: too few survivors, a bad share, a tampered ciphertext,
    or a request that would reveal both secrets of one client."""


class SumOutOfRange(SecAggError):
    """The unmasked sum is outside what the survivors' clipped inputs can add up to: some
    client did not clip (or sent words that are no encoding at all). The sum is refused
    whole; which client it was, the server cannot tell."""
