"""Dotted config keys: ``--set KEY=VALUE`` parsed and applied to a raw mapping, and each key
checked against a section schema before validation, so that a typo is named (with the key
it was probably meant to be) before any dataset or policy module is imported."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import BaseModel

from greenfl.config.base import Section
from greenfl.core.errors import ConfigError
from greenfl.core.registry import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def parse_value(raw: str) -> Any:
    """An override value: a TOML/JSON literal where it parses as one, else a plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def split_override(assignment: str) -> tuple[str, Any]:
    """``KEY=VALUE`` as (key, parsed value)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    key, raw = assignment.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set expects KEY=VALUE, got {assignment!r}")
    return key, parse_value(raw.strip())


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Set one ``KEY=VALUE`` (dotted key) in a raw config mapping."""
    key, value = split_override(assignment)
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


def key_problem(root: type[BaseModel], parts: list[str]) -> str | None:
    """Why the dotted key ``parts`` is not a config key (unknown, with the likely one;
    moved, with its new place), or None. Keys under a ``params`` table belong to the named
    policy and are checked by it."""
    model = root
    for depth, part in enumerate(parts):
        # a field's config key is its alias where it has one ([async] is ``async_``)
        keyed = {f.alias or name: name for name, f in model.model_fields.items()}
        fields = list(keyed)
        if part not in fields:
            where = ".".join(parts[: depth + 1])
            if issubclass(model, Section) and part in model.moved:
                section = ".".join(parts[:depth])
                return f"{where} has moved: set {section}.{model.moved[part]} instead"
            return f"{where}: unknown key{did_you_mean(part, fields)}"
        if part == "params":
            return None
        sub = model.model_fields[keyed[part]].annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            rest = parts[depth + 1 :]
            return f"{'.'.join(parts[: depth + 1])} is not a section" if rest else None
        model = sub
    return None


def raw_keys(data: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every dotted key of a raw mapping (tables expanded, ``params`` tables not)."""
    out: list[list[str]] = []
    for k, v in data.items():
        key = [*prefix, str(k)]
        if isinstance(v, dict) and k != "params" and prefix == ():
            out.extend(raw_keys(v, (str(k),)) or [key])
        else:
            out.append(key)
    return out
