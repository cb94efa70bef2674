from pathlib import Path

import pytest

from greenfl.config import build_config, load_config
from greenfl.core.errors import ConfigError


def test_quickstart_defaults_and_overrides() -> None:
    cfg = load_config(
        None, ["train.rounds=7", "data.partition=dirichlet", "stop.target_accuracy=0.8"]
    )
    assert cfg.train.rounds == 7
    assert cfg.data.partition == "dirichlet"
    assert cfg.stop.target_accuracy == 0.8
    assert cfg.data.dataset == "digits"


def test_file_then_override_precedence(tmp_path: Path) -> None:
    p = tmp_path / "c.toml"
    p.write_text("seed = 3\n[train]\nrounds = 5\nlr = 0.05\n")
    cfg = load_config(p, ["train.rounds=9"])
    assert (cfg.seed, cfg.train.rounds, cfg.train.lr) == (3, 9, 0.05)


def test_yaml_file(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("train:\n  rounds: 4\nstrategy:\n  name: fedprox\n  params:\n    mu: 0.1\n")
    cfg = load_config(p)
    assert cfg.train.rounds == 4 and cfg.strategy.name == "fedprox"
    assert cfg.strategy.params["mu"] == 0.1


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["train.rounds=-1"], "train.rounds"),
        (["data.alpha=-0.5"], "data.alpha"),
        (["train.clients_per_round=500"], "clients_per_round"),
        (["strategy.name=fedfoo"], "unknown strategy 'fedfoo'"),
        (["data.dataset=mnist"], "unknown dataset 'mnist'"),
        (["model.name=resnet"], "unknown model 'resnet'"),
        (["selection.name=best"], "unknown selector 'best'"),
        (["train.lr=fast"], "train.lr"),
        (["trian.rounds=3"], "trian: unknown key"),
        (["data.alpah=3"], "data.alpah: unknown key"),
        (["noequals"], "KEY=VALUE"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert fragment in str(info.value)


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nrounds=")
    with pytest.raises(ConfigError, match="bad.toml: invalid TOML"):
        load_config(bad)


def test_config_is_frozen_and_replace_revalidates() -> None:
    cfg = build_config({})
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        cfg.train.rounds = 3  # type: ignore[misc]
    assert cfg.replace(**{"train.rounds": 4}).train.rounds == 4
    with pytest.raises(ConfigError):
        cfg.replace(**{"train.rounds": 0})


def test_every_example_scenario_is_a_valid_config() -> None:
    from pathlib import Path

    from greenfl.config import load_config

    examples = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml"))
    assert {"shakespeare-fedavg.toml", "femnist-fedavg.toml"} <= {p.name for p in examples}
    for path in examples:
        cfg = load_config(path)
        assert cfg.fleet.catalog == "builtin", path.name
