"""The one way a policy is built from its registry name: ``{name: class}`` tables in each
policy package, and ``make_from`` behind each package's ``make``."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from greenfl.core.errors import ConfigError

T = TypeVar("T")


def make_from(
    kind: str, registry: Mapping[str, Callable[..., T]], name: str, *args: Any, **kwargs: Any
) -> T:
    """``registry[name](*args, **kwargs)``. An unknown name, or keyword arguments the
    constructor does not take, are config mistakes: ConfigError naming the choices."""
    factory = registry.get(name)
    if factory is None:
        raise ConfigError(f"unknown {kind} {name!r}; choose one of {', '.join(sorted(registry))}")
    try:
        inspect.signature(factory).bind(*args, **kwargs)
    except TypeError as exc:
        raise ConfigError(f"{kind} {name!r}: bad parameters {sorted(kwargs)}: {exc}") from None
    return factory(*args, **kwargs)
