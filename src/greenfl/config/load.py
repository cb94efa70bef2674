"""Config files: a TOML or YAML file (or the built-in quickstart) and ``--set`` overrides
into a RunConfig, and the config a run's ledger was started with (for ``--resume``)."""

from __future__ import annotations

import json
import sqlite3
import sys
from importlib import resources
from pathlib import Path
from typing import Any

from greenfl.config.run import RunConfig, build_config
from greenfl.core.errors import ConfigError
from greenfl.core.files import parse_toml, parse_yaml, read_text

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

QUICKSTART = "examples/quickstart.toml"  # in the package


def read_config_file(path: Path) -> dict[str, Any]:
    """A config file's raw keys (TOML, or YAML by suffix), before validation."""
    text = read_text(path, "config file", ConfigError)
    if path.suffix.lower() in (".yaml", ".yml"):
        data = parse_yaml(text, str(path), ConfigError)
        data = {} if data is None else data
    else:
        data = parse_toml(text, str(path), ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table of keys")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Load a config file (or the built-in quickstart when ``path`` is None) and overrides."""
    if path is None:
        text = resources.files("greenfl").joinpath(QUICKSTART).read_text()
        return build_config(tomllib.loads(text), overrides, source="the built-in quickstart")
    return build_config(read_config_file(Path(path)), overrides, source=str(path))


def stored_config(out_dir: str | Path) -> RunConfig:
    """The config a run in ``out_dir`` was started with (for ``--resume``)."""
    path = Path(out_dir) / "ledger.sqlite"
    if not path.is_file():
        raise ConfigError(f"--resume: no ledger to resume at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT config_json FROM runs WHERE run_id = 1").fetchone()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"--resume: {path} is not a greenfl ledger: {exc}") from None
    finally:
        conn.close()
    if row is None:
        raise ConfigError(f"--resume: {path} holds no run")
    return build_config(json.loads(row[0]), source=str(path))
