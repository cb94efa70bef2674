"""Reading the files a user hands greenfl (configs, fleets, traces, tokens) so that no file,
however broken or hostile, gets past as anything but a GreenflError naming it: undecodable
bytes, a folder where a file was expected, a file too large, nesting too deep, a YAML alias
bomb."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from greenfl.core.errors import ConfigError, GreenflError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MAX_TEXT_BYTES = 16 * 1024 * 1024  # a year of hourly trace rows is ~300 KB
MAX_DEPTH = 32  # no greenfl file nests more than a few levels
MAX_YAML_ALIASES = 64
MAX_NODES = 1_000_000  # after aliases are expanded: what validation would walk


def read_text(
    path: Path, what: str, error: type[GreenflError], max_bytes: int = MAX_TEXT_BYTES
) -> str:
    """The UTF-8 text of ``path``; ``error`` (naming ``what`` and the file) if it is missing,
    not a regular file, unreadable, larger than ``max_bytes`` or not UTF-8."""
    try:
        if not path.is_file():
            raise error(f"{what} not found: {path}")
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{path}: {what} is {size} bytes, more than the {max_bytes} allowed")
        raw = path.read_bytes()
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text (byte {exc.start})") from None


def parse_toml(text: str, where: str, error: type[GreenflError]) -> dict[str, Any]:
    """A TOML document's table, nesting bounded."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise error(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    check_shape(data, where, error)
    return data


def parse_yaml(text: str, where: str, error: type[GreenflError]) -> Any:
    """A YAML document, loaded safely: no tags but the standard ones, at most
    ``MAX_YAML_ALIASES`` aliases, nesting and expanded size bounded."""
    import yaml

    class _Loader(yaml.SafeLoader):
        aliases = 0
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:  # type: ignore[override]
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise error(f"{where}: more than {MAX_YAML_ALIASES} YAML aliases")
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(f"{where}: invalid YAML: {exc}".replace("\n", " ")) from None
    except RecursionError:
        raise error(f"{where}: nested deeper than {MAX_DEPTH} levels") from None
    check_shape(data, where, error)
    return data


def check_shape(data: Any, where: str, error: type[GreenflError]) -> None:
    """``error`` if ``data`` nests deeper than ``MAX_DEPTH`` or holds more than ``MAX_NODES``
    values, counting shared (aliased) values each time they appear."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise error(f"{where}: more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise error(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


def check_out_dir(out: Path) -> None:
    """A ConfigError (a usage error), not an OSError deep in a run, when ``out`` cannot be
    a folder: it is a file, or lies under one."""
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            where = "is a file" if p == out else f"lies under {p}, which is a file"
            raise ConfigError(f"--out {out} {where}; choose a folder")
