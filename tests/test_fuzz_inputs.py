"""Property tests over config and fleet files: whatever a file holds (random keys and
values, wrong types, inf and NaN, huge numbers, deep nesting, bytes that are not text),
loading it gives a validated object or one GreenflError naming the problem; never another
exception, never a hang."""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from greenfl.config import RunConfig, load_config
from greenfl.core.errors import ConfigError, FleetError
from greenfl.fleet.catalog import Fleet, load_fleet

# "params.x" is key x of the section's params table (the named policy's own parameters);
# the flat keys that moved there stay too: a config using one is a ConfigError naming the
# new place.
SECTIONS = {
    "data": [
        "dataset",
        "num_clients",
        "partition",
        "alpha",
        "samples_per_client",
        "params.samples_per_client",
    ],
    "model": ["name", "hidden", "params.hidden"],
    "train": ["rounds", "clients_per_round", "local_epochs", "batch_size", "lr"],
    "strategy": ["name", "trim_fraction", "server_lr", "params.trim_fraction", "params.server_lr"],
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
    st.sampled_from(
        [
            "digits",
            "mlp",
            "fedavg",
            "dirichlet",
            "oort",
            "inf",
            "nan",
            "",
            "synthetic",
            "trimmed_mean",
            "fedadam",
        ]
    ),
)
values = st.recursive(scalars, lambda c: st.lists(c, max_size=3), max_leaves=6)


@st.composite
def configs(draw: st.DrawFn) -> dict:
    out: dict = {}
    if draw(st.booleans()):
        out["seed"] = draw(values)
    for section in draw(st.lists(st.sampled_from(list(SECTIONS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(SECTIONS[section]), max_size=3, unique=True))
        table: dict = {}
        for k in keys:
            if k.startswith("params."):
                table.setdefault("params", {})[k.removeprefix("params.")] = draw(values)
            else:
                table[k] = draw(values)
        out[section] = table
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


BAD_VALUES = ["inf", "nan", "-1.0", "1e308", "-1e308", "0", "1e-320", '"x"', "1e19", "1e12"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([("share", "1e308", True)])  # the reviewer's: numpy overflow, a traceback
@example([("embodied_kg", "1e308", False), ("active_power_w", "1e308", False)])  # inf carbon
@given(
    st.lists(
        st.tuples(st.sampled_from(FIELDS), st.sampled_from(BAD_VALUES), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_several_bad_figures_through_the_cli_are_one_error_line_or_a_usable_fleet(
    edits: list[tuple[str, str, bool]],
) -> None:
    """Several fields at once, each in one entry or in every entry (two shares of 1e308
    overflowed their sum): `greenfl fleet show` exits 0 with a fleet whose figures stay
    finite through the population, or 2 with exactly one `error:` line, never a
    traceback."""
    import contextlib
    import io

    import numpy as np

    from greenfl.cli import main
    from greenfl.fleet.population import Population

    lines = BUILTIN.splitlines()
    for field, value, everywhere in edits:
        hits = [i for i, line in enumerate(lines) if line.startswith(f"{field} = ")]
        for i in hits if everywhere else hits[len(hits) // 2 : len(hits) // 2 + 1]:
            lines[i] = f"{field} = {value}"
    with tempfile.TemporaryDirectory() as d:
        folder = resources.files("greenfl.fleet").joinpath("catalog")
        p = Path(d) / "fleet.toml"
        p.write_text("\n".join(lines).replace('trace = "traces/', f'trace = "{folder}/traces/'))
        err, out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = main(["fleet", "show", str(p)])
        assert "Traceback" not in err.getvalue()
        if code == 2:
            errors = [line for line in err.getvalue().splitlines() if line.startswith("error:")]
            assert len(errors) == 1 and str(p) in errors[0], err.getvalue()
            return
        assert code == 0, err.getvalue()
        fleet = load_fleet(p)
        pop = Population.assign(fleet, np.full(50, 10), seed=0)
        shares = np.array([e.share for e in fleet.population])
        assert np.isfinite(shares.sum()) and pop.size == 50
        for dev in fleet.devices:
            per_s = dev.embodied_kg / (dev.lifetime_years * 8766 * 3600 * dev.active_share)
            # g/s x a year x a million clients: the ledger's sums must stay finite.
            assert np.isfinite(per_s * 1e3 * 3.2e7 * 1e6) and np.isfinite(1e12 / dev.flops_per_s)
            assert np.isfinite(dev.active_power_w * 3.2e7 * 1e6)
