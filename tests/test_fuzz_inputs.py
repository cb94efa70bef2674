"""Property tests over config and fleet files: whatever a file holds (random keys and
values, wrong types, inf and NaN, huge numbers, deep nesting, bytes that are not text),
loading it gives a validated object or one GreenflError naming the problem; never another
exception, never a hang."""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from greenfl.config import RunConfig, load_config
from greenfl.core.errors import ConfigError, FleetError
from greenfl.fleet.catalog import Fleet, load_fleet

SECTIONS = {
    "data": ["dataset", "num_clients", "partition", "alpha", "samples_per_client"],
    "model": ["name", "hidden"],
    "train": ["rounds", "clients_per_round", "local_epochs", "batch_size", "lr"],
    "strategy": ["name", "trim_fraction", "server_lr"],
    "selection": ["name", "fairness", "fairness_window"],
    "fleet": ["catalog", "deadline_s", "start_time", "partial_work", "dropout_prob"],
    "stop": ["target_accuracy"],
    "deploy": ["max_update_norm", "round_timeout_s", "plausibility_factor", "auth"],
    "nonsense": ["x"],
}
scalars = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.booleans(),
    st.sampled_from(["digits", "mlp", "fedavg", "dirichlet", "oort", "inf", "nan", ""]),
)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3), max_leaves=6)


@st.composite
def configs(draw: st.DrawFn) -> dict:
    out: dict = {}
    if draw(st.booleans()):
        out["seed"] = draw(values)
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=3, unique=True))
        out[section] = {k: draw(values) for k in keys}
    return out


def _load(text: bytes, suffix: str) -> RunConfig | None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"c{suffix}"
        p.write_bytes(text)
        try:
            return load_config(p)
        except ConfigError as exc:
            assert str(exc) and "Traceback" not in str(exc)
            return None


def _toml(data: dict) -> bytes | None:
    try:
        return tomli_w.dumps(data).encode()
    except (ValueError, TypeError):  # e.g. a NaN key TOML cannot write, mixed arrays
        return None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_any_config_table_loads_or_is_a_config_error(data: dict) -> None:
    text = _toml(data)
    if text is not None:
        _load(text, ".toml")
    import yaml

    _load(yaml.safe_dump(data, allow_unicode=True).encode(), ".yaml")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300), st.sampled_from([".toml", ".yaml"]))
def test_any_bytes_load_or_are_a_config_error(raw: bytes, suffix: str) -> None:
    _load(raw, suffix)


BUILTIN = resources.files("greenfl.fleet").joinpath("catalog/builtin.toml").read_text()
FIELDS = [
    "flops_per_s", "active_power_w", "idle_power_w", "up_mbps", "down_mbps",
    "network_kwh_per_gb", "tail_s", "share", "ci_g_per_kwh", "embodied_kg",
]  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(FIELDS),
    st.sampled_from(["inf", "nan", "-1.0", "1e308", "0", '"x"', "[]", "-inf", "1e-320"]),
)
def test_a_fleet_file_with_any_bad_figure_loads_or_is_a_fleet_error(field: str, value: str) -> None:
    lines = BUILTIN.splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(f"{field} = ")]
    if hits:
        lines[hits[len(hits) // 2]] = f"{field} = {value}"
    with tempfile.TemporaryDirectory() as d:
        folder = resources.files("greenfl.fleet").joinpath("catalog")
        p = Path(d) / "fleet.toml"
        p.write_text("\n".join(lines).replace('trace = "traces/', f'trace = "{folder}/traces/'))
        try:
            fleet = load_fleet(p)
        except FleetError as exc:
            assert str(exc)
            return
        assert isinstance(fleet, Fleet)
        if value in ("inf", "nan", "-inf"):
            raise AssertionError(f"{field} = {value} was accepted")
