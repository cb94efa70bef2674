"""Policies by name, each owning its parameters.

A registry maps names to *policy types*: a strategy, selector, codec, scheduler, bandit,
dataset or model class. Each declares ``Params``, a frozen dataclass of its parameters with
their defaults and descriptions (``@params`` below makes one validated by pydantic), and is
built from an instance of it. A config section names one (``[strategy] name = "fedprox"``)
and gives its ``[strategy.params]``, which are validated against that type.

Three ways to add a name, none of which edits greenfl:

- one line in a package's table of built-ins (``"fedprox": "greenfl.strategy.fedprox:FedProx"``);
- a Python entry point of an installed package, in the registry's group
  (``greenfl.strategies``, ``greenfl.selectors``, ``greenfl.codecs``, ``greenfl.schedulers``,
  ``greenfl.adapters``, ``greenfl.datasets``, ``greenfl.models``);
- ``REGISTRY.register(name, cls)`` (or ``REGISTRY[name] = cls``) from Python.

Built-ins and entry points are imported on first use only: listing names (what the config
checks a name against) imports nothing, so ``greenfl --help`` never waits for torch.

Run facts: a few parameters depend on the run rather than the policy (the run's seed, its
round window, its local epochs). A ``Params`` field that defaults to ``None`` and is named
like a field of :class:`RunFacts` takes the run's value when greenfl builds the policy from
a config (:func:`bind_run`); a value the user gives wins."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from greenfl.core.errors import ConfigError

T = TypeVar("T")
P = TypeVar("P")

PARAMS_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)

params = partial(_pydantic_dataclass, frozen=True, config=PARAMS_CONFIG)
"""Decorator: a frozen parameter type whose fields pydantic validates on construction
(types, bounds from ``Field(ge=..., description=...)``) and which refuses unknown keys."""


@params
class NoParams:
    """A policy without parameters of its own."""


@dataclass(frozen=True)
class RunFacts:
    """What a policy may need of the run it joins (see the module docstring)."""

    seed: int = 0
    local_epochs: int = 1
    clients_per_round: int = 1
    window_s: float | None = None  # the round's deadline (fleet.deadline_s), if any
    byzantine: int = 0  # Byzantine updates a cohort holds: ceil(attack.fraction x k)


def bind_run(values: Any, facts: RunFacts) -> Any:
    """``values`` (a Params instance) with each None field named like a RunFacts field
    set to the run's value."""
    run = dataclasses.asdict(facts)
    fill = {
        f.name: run[f.name]
        for f in dataclasses.fields(values)
        if f.name in run and getattr(values, f.name) is None and run[f.name] is not None
    }
    return dataclasses.replace(values, **fill) if fill else values


def did_you_mean(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or ``""``."""
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def params_type(policy: Any) -> type:
    """The Params type a policy type declares; TypeError when it declares none (a policy
    must say what it takes, even NoParams)."""
    declared = policy.__dict__.get("Params") if isinstance(policy, type) else None
    if declared is None and isinstance(policy, type):
        # inherited from a base policy class
        owners = (c for c in policy.__mro__ if "Params" in c.__dict__)
        declared = next((c.__dict__["Params"] for c in owners), None)
    if not (isinstance(declared, type) and dataclasses.is_dataclass(declared)):
        raise TypeError(
            f"{policy!r} declares no Params: give it a class attribute Params, a frozen "
            "dataclass of its parameters (greenfl.core.registry.NoParams if it has none)"
        )
    return declared


def parse_params(ptype: type, raw: Mapping[str, Any] | Any, where: str) -> Any:
    """``raw`` validated into ``ptype``; a ConfigError naming each bad key under ``where``
    (e.g. ``strategy.params``). An instance of ``ptype`` passes as it is."""
    if isinstance(raw, ptype):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where} must be a table of keys, not {type(raw).__name__}")
    known = [f.name for f in dataclasses.fields(ptype)]
    unknown = [k for k in raw if k not in known]
    if unknown:
        k = unknown[0]
        takes = ", ".join(known) if known else "no parameters"
        raise ConfigError(f"{where}.{k}: unknown key{did_you_mean(k, known)}; it takes {takes}")
    try:
        return TypeAdapter(ptype).validate_python(dict(raw))
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, where)) from None


def format_errors(exc: ValidationError, where: str = "") -> str:
    """pydantic's errors as one line, each located by its dotted key."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in (where, *err["loc"]) if str(p))
        msg = "unknown key" if err["type"] == "extra_forbid" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(out)


def as_dict(values: Any) -> dict[str, Any]:
    """A Params instance as plain data (for the ledger's record of a run's policies)."""
    return dataclasses.asdict(values)


class Registry(Generic[T]):
    """Names -> policy types of one kind (see the module docstring)."""

    def __init__(self, kind: str, group: str, builtins: Mapping[str, str]) -> None:
        self.kind = kind  # "strategy", as in messages: "unknown strategy 'x'"
        self.group = group  # the entry-point group: "greenfl.strategies"
        self._builtins = tuple(builtins)
        self._refs: dict[str, str] = dict(builtins)  # name -> "module:attribute"
        self._loaded: dict[str, type[T]] = {}
        self._entry_points: dict[str, Any] | None = None

    # ---- names ------------------------------------------------------------------------
    def _plugins(self) -> dict[str, Any]:
        if self._entry_points is None:
            self._entry_points = {ep.name: ep for ep in entry_points(group=self.group)}
        return self._entry_points

    def builtin_names(self) -> list[str]:
        """The names greenfl itself ships, in table order (not those added since)."""
        return list(self._builtins)

    def names(self) -> list[str]:
        """Every name this registry knows, sorted, without importing any policy."""
        return sorted({*self._refs, *self._loaded, *self._plugins()})

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (
            name in self._loaded or name in self._refs or name in self._plugins()
        )

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def check(self, name: str) -> str:
        """``name`` if known; else ValueError listing the choices (a config validator's)."""
        if name not in self:
            choices = self.names()
            raise ValueError(
                f"unknown {self.kind} {name!r}{did_you_mean(name, choices)}; choose one of "
                f"{', '.join(choices)}"
            )
        return name

    # ---- policy types -----------------------------------------------------------------
    def __getitem__(self, name: str) -> type[T]:
        if name in self._loaded:
            return self._loaded[name]
        if name in self._refs:
            module, _, attr = self._refs[name].partition(":")
            policy = getattr(import_module(module), attr)
        elif name in self._plugins():
            policy = self._plugins()[name].load()
        else:
            raise KeyError(name)
        self._loaded[name] = self._checked(name, policy)
        return self._loaded[name]

    def get(self, name: str) -> type[T] | None:
        return self[name] if name in self else None

    def items(self) -> list[tuple[str, type[T]]]:
        """Every (name, policy type), importing each."""
        return [(n, self[n]) for n in self.names()]

    def register(self, name: str, policy: type[T]) -> type[T]:
        """Add (or replace) ``name`` from Python: no file of greenfl changes."""
        self._loaded[name] = self._checked(name, policy)
        self._refs.pop(name, None)
        return policy

    def __setitem__(self, name: str, policy: type[T]) -> None:
        self.register(name, policy)

    def __delitem__(self, name: str) -> None:
        found = self._loaded.pop(name, None) is not None
        found = self._refs.pop(name, None) is not None or found
        if not found:
            raise KeyError(name)

    def _checked(self, name: str, policy: Any) -> type[T]:
        try:
            params_type(policy)
        except TypeError as exc:
            raise ConfigError(f"{self.kind} {name!r}: {exc}") from None
        return policy

    # ---- parameters and building ------------------------------------------------------
    def params_type(self, name: str) -> type:
        return params_type(self.lookup(name))

    def lookup(self, name: str) -> type[T]:
        """The policy type, or a ConfigError naming the choices."""
        try:
            self.check(name)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return self[name]

    def parse(self, name: str, raw: Mapping[str, Any] | Any, where: str) -> Any:
        """``raw`` validated into ``name``'s Params (ConfigError naming the bad key)."""
        return parse_params(self.params_type(name), raw, where)

    def make(self, name: str, *args: Any, **values: Any) -> T:
        """``name``'s policy built from its parameters given as keywords (the others keep
        their defaults), after ``args`` (a bandit's arms): ``make("fedprox", mu=0.1)``."""
        return self.lookup(name)(*args, self.parse(name, values, f"{self.kind} {name!r}"))


def build(
    registry: Registry[T],
    name: str,
    raw: Mapping[str, Any] | Any,
    where: str,
    facts: RunFacts,
    construct: Callable[[type[T], Any], T] | None = None,
) -> tuple[T, Any]:
    """(the policy, its bound parameters): ``raw`` validated into ``name``'s Params, None
    run-fact fields filled from ``facts``, then ``construct(policy_type, params)``
    (default: ``policy_type(params)``). A policy that refuses its parameters (ValueError)
    is a ConfigError naming ``where``."""
    policy = registry.lookup(name)
    bound = bind_run(parse_params(params_type(policy), raw, where), facts)
    try:
        built = construct(policy, bound) if construct is not None else policy(bound)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc, where)) from None
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"{where} ({registry.kind} {name!r}): {exc}") from None
    return built, bound
