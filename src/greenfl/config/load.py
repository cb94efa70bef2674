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
        refuse_duplicate_keys(text, str(path))  # TOML refuses them itself
        data = {} if data is None else data
    else:
        data = parse_toml(text, str(path), ConfigError)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a table of keys")
    return data


def refuse_duplicate_keys(text: str, where: str) -> None:
    """ConfigError naming the first key given twice in one YAML mapping: YAML loaders keep
    the last silently, so ``rounds: 2`` then ``rounds: 200`` would run 200 rounds. Called
    on text ``parse_yaml`` accepted (its nesting and aliases bounded); merge keys (``<<``)
    may override, as YAML means them to."""
    import yaml

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    seen: set[int] = set()  # an aliased node is walked once
    stack: list[tuple[yaml.Node, str]] = [] if root is None else [(root, "")]
    while stack:
        node, prefix = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else ""
                if key and key != "<<":
                    if key in keys:
                        line = key_node.start_mark.line + 1
                        raise ConfigError(f"{where}:{line}: duplicate key {prefix}{key}")
                    keys.add(key)
                stack.append((value_node, f"{prefix}{key}."))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, prefix) for item in node.value)


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


# What may change between a run's start and its --resume: the deployment's limits and waits
# (a restarted server may listen elsewhere, wait longer); nothing that shapes the rounds.
RESUMABLE_SECTIONS = ("deploy",)


def resumed_config(
    out_dir: str | Path, config: str | Path | None, overrides: list[str]
) -> RunConfig:
    """The config ``--resume`` continues with: the one stored in ``out_dir``'s ledger, with
    ``overrides`` applied to it (without CONFIG) or CONFIG's ``deploy`` section (with it).
    A ConfigError naming the keys when anything outside ``RESUMABLE_SECTIONS`` would
    change."""
    stored = stored_config(out_dir)
    ledger = Path(out_dir) / "ledger.sqlite"
    if config is None:
        if not overrides:
            return stored
        given = build_config(stored.to_dict(), overrides, source=str(ledger))
    else:
        given = load_config(config, overrides)
    changed = changed_keys(stored.to_dict(), given.to_dict())
    fixed = [k for k in changed if k.split(".", 1)[0] not in RESUMABLE_SECTIONS]
    if fixed:
        shown = ", ".join(fixed[:3]) + (f" and {len(fixed) - 3} more" if len(fixed) > 3 else "")
        what = "--set" if config is None else f"{config}"
        raise ConfigError(
            f"--resume: {what} changes {shown} of the run stored in {ledger}; only "
            f"{', '.join(s + '.*' for s in RESUMABLE_SECTIONS)} may change on resume"
        )
    if config is None:
        return given
    return stored.replace(**{s: getattr(given, s).model_dump() for s in RESUMABLE_SECTIONS})


def changed_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between ``a`` and ``b``, sorted."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out.extend(changed_keys(x, y, f"{prefix}{key}."))
        elif x != y:
            out.append(f"{prefix}{key}")
    return out
