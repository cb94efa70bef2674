"""One registry style for every policy: ``name -> type``, each type declaring its frozen
``Params``; ``make(name, **params)``; names listed without importing a policy; third-party
names through entry points; no policy importing config or the engine; and a new policy is
one file plus one registry line, really."""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from greenfl import adapt, compression, data, models, scheduling, selection, strategy
from greenfl.adapt.bandit import Arm
from greenfl.core.errors import ConfigError
from greenfl.core.registry import NoParams, Registry, params_type

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "greenfl"
TUTORIAL = ROOT / "docs" / "tutorials" / "own-strategy.md"
POLICIES = ("strategy", "selection", "compression", "scheduling", "adapt")
REGISTRIES = [
    (strategy, strategy.STRATEGIES),
    (selection, selection.SELECTORS),
    (compression, compression.CODECS),
    (scheduling, scheduling.SCHEDULERS),
]


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


@pytest.mark.parametrize("package", POLICIES)
def test_no_policy_module_imports_config_or_the_engine(package: str) -> None:
    files = sorted((SRC / package).glob("*.py"))
    assert files
    for path in files:
        bad = {
            m
            for m in _imports(path)
            if m in ("greenfl", "greenfl.config", "greenfl.factories")
            or m.startswith(("greenfl.config.", "greenfl.engine", "greenfl.cli"))
        }
        assert not bad, f"{path.relative_to(SRC)} imports {sorted(bad)}"


def test_listing_names_imports_no_policy_nor_torch() -> None:
    code = (
        "import sys\n"
        "from greenfl import strategy, selection, compression, scheduling, adapt, data, models\n"
        "names = [r.names() for r in (strategy.STRATEGIES, selection.SELECTORS,"
        " compression.CODECS, scheduling.SCHEDULERS, adapt.ADAPTERS, data.DATASETS,"
        " models.MODELS)]\n"
        "assert 'fedavg' in names[0] and 'digits' in names[5], names\n"
        "loaded = [m for m in sys.modules if m.startswith('greenfl.strategy.')]\n"
        "print(json.dumps(['torch' in sys.modules, loaded]))\n"
    )
    out = subprocess.run([sys.executable, "-c", "import json\n" + code],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    torch_loaded, policy_modules = json.loads(out)
    assert torch_loaded is False and policy_modules == []


@pytest.mark.parametrize(("module", "registry"), REGISTRIES)
def test_every_registered_policy_declares_params_and_make_builds_it(module, registry) -> None:
    assert len(registry) > 0
    for name, cls in registry.items():
        assert isinstance(cls, type), name
        ptype = params_type(cls)
        assert dataclasses.is_dataclass(ptype), name
        built = module.make(name)
        assert type(built) is cls
        assert built.name == name


def test_every_params_field_has_a_description() -> None:
    """The config reference is generated from these: a field without one is a gap."""
    from pydantic import TypeAdapter

    registries = [r for _, r in REGISTRIES] + [adapt.ADAPTERS, data.DATASETS, models.MODELS]
    for registry in registries:
        for name in registry.names():
            schema = TypeAdapter(registry.params_type(name)).json_schema()
            for key, prop in schema.get("properties", {}).items():
                assert prop.get("description"), f"{registry.kind} {name!r}: {key}"


def test_adapters_are_classes_built_over_their_arms() -> None:
    arms = [Arm(5, 1, 16), Arm(10, 1, 16)]
    for name, cls in adapt.ADAPTERS.items():
        built = adapt.make(name, arms)
        assert type(built) is cls and built.name == name and built.arms == arms
    assert adapt.make("ucb", arms, exploration=0.25).exploration == 0.25


@pytest.mark.parametrize("module", [strategy, selection, compression, scheduling, adapt])
def test_an_unknown_name_is_a_config_error_listing_the_choices(module) -> None:
    args = ([Arm(1, 1, 1)],) if module is adapt else ()
    with pytest.raises(ConfigError) as err:
        module.make("no-such-policy", *args)
    registry = next(v for v in vars(module).values() if isinstance(v, Registry))
    for name in registry.names():
        assert name in str(err.value)


def test_a_misspelt_name_gets_the_likely_one() -> None:
    with pytest.raises(ConfigError, match="did you mean 'fedprox'"):
        strategy.make("fedprx")


def test_make_validates_each_policys_own_parameters() -> None:
    assert strategy.make("fedprox", mu=0.3).mu == 0.3
    starts = scheduling.make("carbon", slack_s=60.0, step_s=30.0).candidate_starts(0.0)
    assert starts.tolist() == [0.0, 30.0, 60.0]
    assert compression.make("topk", ratio=0.5).ratio == 0.5
    with pytest.raises(ConfigError, match="mu: Input should be greater than or equal to 0"):
        strategy.make("fedprox", mu=-1.0)
    with pytest.raises(ConfigError, match="unknown key.*it takes mu"):
        strategy.make("fedprox", mux=1.0)


def test_a_registered_selector_missing_a_declared_attribute_is_refused() -> None:
    class NoEstimatesFlag:
        name = "bare"
        Params = NoParams

        def __init__(self, params: NoParams | None = None) -> None:
            return None

        def select(self, candidates, k, ctx, rng) -> np.ndarray:
            return candidates[:k]

    selection.SELECTORS["bare"] = NoEstimatesFlag
    try:
        with pytest.raises(ConfigError, match="needs_estimates"):
            selection.make("bare")
    finally:
        del selection.SELECTORS["bare"]


def test_a_policy_without_params_is_refused_at_registration() -> None:
    class Bare:
        name = "bare"

    with pytest.raises(ConfigError, match="declares no Params"):
        strategy.STRATEGIES.register("bare", Bare)
    assert "bare" not in strategy.STRATEGIES


# ---- a new policy: one file plus one registry line ----------------------------------------


def tutorial_file(name: str) -> str:
    """The content of ``mypolicies/NAME.py`` as the tutorial writes it (its heredoc)."""
    text = TUTORIAL.read_text()
    m = re.search(rf"cat > mypolicies/{name}\.py <<'PY'\n(.*?)\nPY\n", text, re.S)
    assert m, f"the tutorial no longer writes mypolicies/{name}.py"
    return m.group(1) + "\n"


def tutorial_line(package: str) -> str:
    """The registry line the tutorial adds to ``src/greenfl/PACKAGE/__init__.py``."""
    pattern = (
        rf"the\s+line\s+`([^`]+)`\s+into\s+the\s+table\s+of\s+"
        rf"`src/greenfl/{package}/__init__.py`"
    )
    m = re.search(pattern, TUTORIAL.read_text())
    assert m, f"the tutorial no longer shows the {package} registry line"
    return m.group(1)


def _add_line(init: Path, table: str, line: str) -> None:
    text = init.read_text()
    anchor = re.search(rf"{table}: Registry\[[^\]]+\] = Registry\(\n(?:.*\n){{2}}    \{{\n", text)
    assert anchor, f"no {table} table in {init}"
    init.write_text(text[: anchor.end()] + f"        {line}\n" + text[anchor.end() :])


@pytest.mark.slow
def test_a_new_strategy_and_selector_are_one_file_plus_one_line(tmp_path: Path) -> None:
    """The tutorial's two edits inside greenfl, made to a copy of the package: each policy
    is one new module and one added line, and a run names both."""
    copy = tmp_path / "src" / "greenfl"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "strategy" / "clipped_avg.py").write_text(tutorial_file("clipped_avg"))
    (copy / "selection" / "least_used.py").write_text(tutorial_file("least_used"))
    _add_line(copy / "strategy" / "__init__.py", "STRATEGIES", tutorial_line("strategy"))
    _add_line(copy / "selection" / "__init__.py", "SELECTORS", tutorial_line("selection"))
    # Count the edits against the package as it is.
    new_files, changed = [], {}
    for path in sorted(copy.rglob("*.py")):
        rel = path.relative_to(copy)
        if not (SRC / rel).exists():
            new_files.append(str(rel))
            continue
        before, after = (SRC / rel).read_text().splitlines(), path.read_text().splitlines()
        if before != after:
            diff = [d for d in difflib.ndiff(before, after) if d[:2] in ("+ ", "- ")]
            changed[str(rel)] = diff
    assert sorted(new_files) == ["selection/least_used.py", "strategy/clipped_avg.py"]
    assert sorted(changed) == ["selection/__init__.py", "strategy/__init__.py"]
    assert all(len(d) == 1 and d[0].startswith("+ ") for d in changed.values()), changed
    code = (
        "import greenfl\n"
        "res = greenfl.run(None, None, overrides=['strategy.name=\"clipped_avg\"',"
        " 'strategy.params.max_norm=0.5', 'selection.name=\"least_used\"', 'train.rounds=3',"
        " 'data.num_clients=20', 'train.clients_per_round=5'])\n"
        "assert res.summary['clients_selected'] == 15, res.summary\n"
        "import greenfl.strategy.clipped_avg as m\n"
        "print(m.__file__)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert str(copy) in proc.stdout


# ---- a third-party package: no edit of greenfl at all -------------------------------------


def _plugin(tmp_path: Path) -> Path:
    """The tutorial's mypolicies package with its entry points, installed into a folder of
    its own (never into the environment the tests run in)."""
    pkg = tmp_path / "pkg"
    (pkg / "mypolicies").mkdir(parents=True)
    (pkg / "mypolicies" / "__init__.py").write_text("")
    (pkg / "mypolicies" / "clipped_avg.py").write_text(tutorial_file("clipped_avg"))
    (pkg / "mypolicies" / "least_used.py").write_text(tutorial_file("least_used"))
    m = re.search(r"cat > pyproject.toml <<'TOML'\n(.*?)\nTOML\n", TUTORIAL.read_text(), re.S)
    assert m, "the tutorial no longer writes the plugin's pyproject.toml"
    (pkg / "pyproject.toml").write_text(m.group(1) + "\n")
    site = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
           "--no-index", "--target", str(site), str(pkg)]  # fmt: skip
    subprocess.run(pip, check=True, capture_output=True, timeout=300)
    return site


@pytest.mark.slow
def test_a_policy_of_an_installed_package_runs_by_name_from_the_cli(tmp_path: Path) -> None:
    site = _plugin(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "greenfl", "run", "-q", "--out", str(out),
           "--set", "strategy.name=clipped_avg", "--set", "strategy.params.max_norm=0.5",
           "--set", "selection.name=least_used", "--set", "train.rounds=2",
           "--set", "data.num_clients=20", "--set", "train.clients_per_round=4",
           "--set", "report.html=false"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds_completed"] == 2 and summary["clients_selected"] == 8
    import sqlite3

    conn = sqlite3.connect(out / "ledger.sqlite")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    conn.close()
    policies = json.loads(meta["policies"])
    assert policies["strategy"] == {"name": "clipped_avg", "params": {"max_norm": 0.5}}
    assert policies["selection"]["name"] == "least_used"
    # A bad parameter of the plugin's own is a one-line usage error naming the key.
    bad = [*cmd[:6], str(tmp_path / "bad"), *cmd[7:], "--set", "strategy.params.max_norm=-1"]
    proc = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "strategy.params.max_norm" in proc.stderr
    # Without the package on the path the name is unknown, with the choices listed.
    env.pop("PYTHONPATH")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown strategy 'clipped_avg'" in proc.stderr
