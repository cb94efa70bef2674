"""Client selectors. Adding one is one module plus one line in SELECTORS."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from greenfl.selection.base import ClientSelector, SelectionContext
from greenfl.selection.random import RandomSelector

if TYPE_CHECKING:
    from greenfl.config import SelectionConfig

SELECTORS: dict[str, Callable[[SelectionConfig], ClientSelector]] = {
    "random": lambda c: RandomSelector(),
}


def make_selector(cfg: SelectionConfig) -> ClientSelector:
    return SELECTORS[cfg.name](cfg)


__all__ = ["SELECTORS", "ClientSelector", "RandomSelector", "SelectionContext", "make_selector"]
