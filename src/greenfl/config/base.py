"""What every config section shares: frozen, unknown keys refused, no inf or nan; and the
sections that name a registered policy (``name`` plus a ``params`` table that the policy's
own Params type validates)."""

from __future__ import annotations

import types
import typing
from importlib import import_module
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from greenfl.core.errors import ConfigError
from greenfl.core.registry import Registry


class Section(BaseModel):
    """A config section. ``key`` is its name in the config; ``moved`` maps keys that used
    to sit in it to where they live now (a config still using one gets one line naming
    the new place)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    key: ClassVar[str] = ""
    moved: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _moved_keys(cls, data: Any) -> Any:
        return refuse_moved(cls.key, cls.moved, data)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_a_number(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None:
            refuse_bool(field.annotation, value)
        return value


def registry(ref: str) -> Registry[Any]:
    """A policy registry by ``"module:attribute"``, imported on use: the policy packages
    import nothing heavy, and the config does not depend on them at import time."""
    module, _, attr = ref.partition(":")
    return getattr(import_module(module), attr)


def params_field() -> Any:
    """The ``params`` field of a section naming a policy (declared after the name, which
    validating the params needs)."""
    return Field(
        default_factory=dict,
        description="the named policy's own parameters (the tables below); unset ones keep "
        "their defaults",
    )


def refuse_moved(section: str, moved: dict[str, str], data: Any) -> Any:
    """``data`` unchanged, or a ConfigError of one line naming the new place of a key that
    used to sit flat in ``section`` (a ConfigError passes pydantic by, unwrapped)."""
    if isinstance(data, dict):
        for old, new in moved.items():
            if old in data:
                raise ConfigError(f"{section}.{old} has moved: set {section}.{new} instead")
    return data


def refuse_bool(annotation: Any, value: Any) -> None:
    """A one-line error when ``value`` holds a boolean where ``annotation`` takes none:
    pydantic's lax mode would read ``rounds = true`` as 1 round, and ``lr = true`` as 1.0."""
    if _bool_misplaced(annotation, value):
        raise PydanticCustomError(
            "bool_for_number",
            "a boolean ({value}) where a number or text is expected",
            {"value": str(value).lower() if isinstance(value, bool) else value},
        )


def _bool_misplaced(annotation: Any, value: Any) -> bool:
    if isinstance(value, bool):
        return not _takes_bool(annotation)
    if isinstance(value, list | tuple):
        item = _item_type(annotation)
        return item is not None and any(_bool_misplaced(item, v) for v in value)
    return False  # a table: its own section (or policy's Params) checks its keys


def _takes_bool(annotation: Any) -> bool:
    if annotation in (bool, Any, object):
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _takes_bool(args[0])
    if origin is Literal:
        return any(isinstance(a, bool) for a in args)
    if origin in (Union, types.UnionType):
        return any(_takes_bool(a) for a in args)
    return False


def _item_type(annotation: Any) -> Any:
    """The element type of a list or tuple annotation (of the first such member of a
    union), or None when it has none."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return _item_type(args[0])
    if origin in (Union, types.UnionType):
        found = [t for t in map(_item_type, args) if t is not None]
        return found[0] if found else None
    if origin in (list, tuple) and args:
        return args[0]
    return None


def _refuse_bool_params(ref: str, section: str, name: str, value: dict[str, Any]) -> None:
    """``refuse_bool`` over a policy's params, against its Params type's fields."""
    hints = typing.get_type_hints(registry(ref).params_type(name), include_extras=True)
    for key, v in value.items():
        if key in hints and _bool_misplaced(hints[key], v):
            shown = str(v).lower() if isinstance(v, bool) else v
            raise ConfigError(
                f"{section}.params.{key}: a boolean ({shown}) where a number or text is expected"
            )


def validated_params(ref: str, section: str, name: str, value: dict[str, Any]) -> dict[str, Any]:
    """The given params of policy ``name``, validated by its own Params type (importing
    that one policy's module). Only the keys given are kept: the defaults are the
    policy's, and the run records them all in its ledger."""
    if not value:
        return value
    _refuse_bool_params(ref, section, name, value)
    parsed = registry(ref).parse(name, value, f"{section}.params")
    return {k: getattr(parsed, k) for k in value}


class PolicySection(Section):
    """``name`` of a registered policy and its ``params``. Subclasses declare the name
    field and then ``params: dict[str, Any] = params_field()``, and set ``key``,
    ``registry_ref`` and ``moved``."""

    registry_ref: ClassVar[str] = ""
    none_allowed: ClassVar[bool] = False  # "none" switches the policy off

    @field_validator("name", check_fields=False)
    @classmethod
    def _known_policy(cls, name: str) -> str:
        if cls.none_allowed and name == "none":
            return name
        return registry(cls.registry_ref).check(name)

    @field_validator("params", check_fields=False)
    @classmethod
    def _own_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("name")
        if name is None:  # the name failed validation: that error is the one to report
            return value
        if cls.none_allowed and name == "none":
            if value:
                raise ValueError(f"{cls.key}.name = 'none' takes no params")
            return value
        return validated_params(cls.registry_ref, cls.key, name, value)


def refuse_unsupported(setting: str, refused: dict[str, bool]) -> None:
    """One ConfigError line naming every key of ``refused`` whose value is true:
    ``{setting} does not support {keys} yet``, for a feature's combinations not built yet."""
    keys = ", ".join(k for k, v in refused.items() if v)
    if keys:
        raise ConfigError(f"{setting} does not support {keys} yet (docs/submodels.md)")
