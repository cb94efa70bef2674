"""What a meter gives for one named window of work, and the Meter protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Measurement:
    elapsed_s: float
    energy_j: float | None  # None: the meter cannot measure energy; model it instead
    modelled: bool = False  # energy_j is the meter's own model, not a counter reading

    @property
    def estimated(self) -> bool:
        return self.energy_j is None or self.modelled


class Meter(Protocol):
    name: str

    def begin(self) -> object: ...

    def end(self, token: object) -> Measurement: ...
