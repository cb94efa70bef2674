"""One registry style for every policy: ``{name: class}`` plus ``make(name, **kwargs)``,
constructors with plain keyword arguments and defaults, and no policy importing config or
the engine."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

from greenfl import adapt, compression, scheduling, selection, strategy
from greenfl.adapt import Arm
from greenfl.core.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "greenfl"
POLICIES = ("strategy", "selection", "compression", "scheduling", "adapt")
REGISTRIES = [
    (strategy, strategy.STRATEGIES, {}),
    (selection, selection.SELECTORS, {}),
    (compression, compression.CODECS, {}),
    (scheduling, scheduling.SCHEDULERS, {}),
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


@pytest.mark.parametrize(("module", "registry", "_"), REGISTRIES)
def test_every_registered_policy_is_a_class_built_by_make_with_its_defaults(
    module, registry, _
) -> None:
    assert registry
    for name, cls in registry.items():
        assert isinstance(cls, type), name
        built = module.make(name)
        assert type(built) is cls
        assert built.name == name


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
    registry = next(v for k, v in vars(module).items() if k.isupper() and isinstance(v, dict))
    for name in registry:
        assert name in str(err.value)


def test_make_passes_keyword_arguments_to_the_constructor() -> None:
    assert strategy.make("fedprox", mu=0.3).mu == 0.3
    assert scheduling.make("carbon", slack_s=60.0, step_s=30.0).candidate_starts(0.0).tolist() == [
        0.0,
        30.0,
        60.0,
    ]
    assert compression.make("topk", ratio=0.5).ratio == 0.5


def test_a_registered_selector_missing_a_declared_attribute_is_refused() -> None:
    class NoEstimatesFlag:
        name = "bare"

        def select(self, candidates, k, ctx, rng) -> np.ndarray:
            return candidates[:k]

    selection.SELECTORS["bare"] = NoEstimatesFlag
    try:
        with pytest.raises(ConfigError, match="needs_estimates"):
            selection.make("bare")
    finally:
        del selection.SELECTORS["bare"]
