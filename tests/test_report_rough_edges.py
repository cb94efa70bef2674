"""Issue 27's rough edges of the report and the reporting commands, each with its own test:
everyday equivalents that read once, the clients' accuracy note true to eval.every, integer
round ticks, end labels that do not overlap, one energy unit per table and one rule across
the tools, no bare None from greenfl compare, a plain reading from greenfl audit, and a
report that reads what the run recorded (and says so where an older run did not)."""

from __future__ import annotations

import ast
import html
import json
import math
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from report_fixtures import HAND_CURVES, _client, _round, write_hand_ledger

from greenfl.analysis.centralised_result import CentralisedEstimate
from greenfl.analysis.seed_stats import METRICS, ConfigRuns
from greenfl.report import equivalents as eq
from greenfl.report.audit_view import privacy_reading, table_lines
from greenfl.report.centralised_view import comparison_rows
from greenfl.report.compare import config_table
from greenfl.report.compare_terminal import compare_rows, run_done_line
from greenfl.report.headline import (
    client_accuracy_note,
    format_carbon,
    format_energy,
    headline_metrics,
    plain_number,
)
from greenfl.report.plots import intensity_figure, round_breakdown_figure
from greenfl.report.run_data import open_run
from greenfl.report.run_report import equivalents_html, render_run_report
from greenfl.report.svg import NOTE_PX, nice_ticks
from greenfl.report.tables import RoundSeries, participation
from greenfl.report.world import intensity_curves

NS = "{http://www.w3.org/2000/svg}"
SRC = Path(__file__).resolve().parents[1] / "src" / "greenfl"


def _text(page: str) -> str:
    """The page's words as a reader sees them: tags dropped, entities read, spaces folded."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))).strip()


# ---- everyday equivalents --------------------------------------------------------------


def test_equivalents_read_naturally_once() -> None:
    # The run: 0.00999 kettle boils of energy. 4186 J/(kg K) x 1 kg x 80 K / 0.9
    # = 372,088.9 J a boil, so 3,717.17 J: 3717.17 / 3.6e6 / 0.012 = 0.0860 phone charges,
    # 3717.17 / 3.6e6 / 0.01 = 0.10326 h = 371.7 s = 6.195 minutes of the LED bulb.
    energy_j = 0.00999 * 4186 * 80 / 0.9
    # 248.548 g is 1 km of the US car (400 g a mile over 1.609344 km).
    items = {e.key: eq.format_equivalent(e) for e in eq.equivalents(248.548, energy_j)}
    assert items["kettle_boils"] == "1% of the energy to boil a 1 L kettle"
    assert items["phone_charges"] == "8.6% of a full smartphone charge"
    assert items["led_hours"] == "6.2 minutes of light from a 10 W LED bulb"
    assert items["car_us_km"] == "1 km driven by an average US passenger car"
    words = _text(equivalents_html(eq.equivalents(248.548, energy_j)))
    for doubled in ("boils boils", "h hours", "charges full"):
        assert doubled not in words
    assert not re.search(r"\b(\w+) \1\b", words), words  # no word twice in a row
    assert "e-0" not in words  # no exponent notation


def test_equivalents_of_more_than_one() -> None:
    boil_j = 4186 * 80 / 0.9
    many = {e.key: eq.format_equivalent(e) for e in eq.equivalents(0.0, 2.5 * boil_j)}
    assert many["kettle_boils"] == "2.5 boils of a 1 L kettle"
    # 2.5 boils = 930,222 J = 0.2584 kWh: 21.5 phone charges, 25.8 hours of the LED bulb
    assert many["phone_charges"] == "22 full smartphone charges"
    assert many["led_hours"] == "26 hours of light from a 10 W LED bulb"
    one = {e.key: eq.format_equivalent(e) for e in eq.equivalents(0.0, 0.012 * 3.6e6)}
    assert one["phone_charges"] == "1 full smartphone charge"
    assert eq.approx(0.00999) == "0.01" and eq.approx(1234.5) == "1,234"


# ---- the clients' accuracy note ---------------------------------------------------------


def test_client_accuracy_note_says_what_eval_every_did(tmp_path: Path) -> None:
    write_hand_ledger(tmp_path / "every5", config={"eval": {"every": 5}})
    with open_run(tmp_path / "every5") as run:
        note = {m.key: m for m in headline_metrics(run)}["client_accuracy"].note
    # 2 rounds, evaluated every 5: the run ended before round 5, its first evaluation.
    assert note == "not evaluated: the run ended after 2 rounds, before round 5 (eval.every = 5)"
    assert "eval.every = 0" not in note
    write_hand_ledger(tmp_path / "never", config={"eval": {"every": 0}})
    with open_run(tmp_path / "never") as run:
        note = {m.key: m for m in headline_metrics(run)}["client_accuracy"].note
    assert note == "not evaluated (eval.every = 0)"
    client = {"mean": 0.9, "p10": 0.8, "worst_decile": 0.75, "clients": 12, "round": 10}
    assert client_accuracy_note(client, 5, 12) == (
        "worst decile 75.00%, p10 80.00%; 12 clients' own test data; evaluated every 5 "
        "rounds, the last in round 10"
    )
    assert client_accuracy_note(client, 1, 10).endswith(
        "evaluated every round, the last in round 10"
    )


# ---- integer round ticks ------------------------------------------------------------------


def _x_tick_labels(svg: str, axis_y: float) -> list[str]:
    """The tick labels under the axis at pixel ``axis_y`` (labels sit 14 px below it)."""
    root = ET.fromstring(svg)
    return [
        "".join(t.itertext())
        for t in root.iter(f"{NS}text")
        if t.get("y") == f"{axis_y + 14:g}" and t.get("text-anchor") == "middle"
    ]


@pytest.mark.parametrize(("rounds", "labels"), [(2, ["1", "2"]), (3, ["1", "2", "3"])])
def test_round_axis_ticks_are_whole_rounds(rounds: int, labels: list[str]) -> None:
    n = list(range(1, rounds + 1))
    ones = [1.0] * rounds
    s = RoundSeries(n, [0.0] * rounds, ones, [0.5] * rounds, ones, ones, ones, ones, ones)
    # The panel is 200 px high from y = 32: its axis at 232. Limits 0.4 .. rounds + 0.6.
    assert _x_tick_labels(round_breakdown_figure(s), 232) == labels
    assert nice_ticks(0.4, 2.6, integer=True) == [1.0, 2.0]  # not 0.5, 1.0, 1.5, ...
    assert nice_ticks(0.4, 2.6) == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5])


# ---- end labels -----------------------------------------------------------------------


def _labels(svg: str) -> dict[str, float]:
    root = ET.fromstring(svg)
    out = {}
    for t in root.iter(f"{NS}text"):
        text = "".join(t.itertext())
        if text.startswith(" ") and len(text.strip()) == 2:  # " IN", " ZA": the end labels
            out[text.strip()] = float(t.get("y", "nan"))
    return out


def test_line_end_labels_do_not_overlap() -> None:
    curves = intensity_curves({"intensity_curves": json.dumps(HAND_CURVES)})
    assert curves is not None
    svg = intensity_figure(curves, ["FR", "IN", "ZA"], [0.0, 10.0], [10.0, 30.0])
    ys = _labels(svg)
    # IN ends at 709 and ZA at 708.6 g/kWh: 0.4 g/kWh on a 222 px axis spanning about
    # 56 - 52 .. 720 + 53 is about 0.1 px apart. Apart now by at least one text line.
    assert abs(ys["IN"] - ys["ZA"]) >= 1.2 * NOTE_PX - 1e-6
    # FR collides with nobody: its label stays at its line's end.
    ax_lo, ax_hi = 56.0 - 0.08 * (720 - 56), 720.0 + 0.08 * (720 - 56)
    fr_px = 32 + (ax_hi - 56.0) / (ax_hi - ax_lo) * 222
    assert ys["FR"] == pytest.approx(fr_px, abs=0.06)
    # The two moved labels straddle where the lines end, by half a line each.
    mid_px = 32 + (ax_hi - 708.8) / (ax_hi - ax_lo) * 222
    assert (ys["IN"] + ys["ZA"]) / 2 == pytest.approx(mid_px, abs=0.1)


# ---- units ----------------------------------------------------------------------------


def test_format_energy_and_carbon_share_the_unit_of_the_largest() -> None:
    assert format_energy(3708.0) == "1.03 Wh"
    assert format_energy(91.1) == "91.1 J"
    assert format_energy(91.1, 3708.0) == "0.0253 Wh"  # 91.1 / 3600 = 0.025306
    assert format_energy(4.2e6) == "1.17 kWh"
    assert format_energy(3.6e8, 3.6e8) == "100 kWh"
    assert format_carbon(0.000892, 0.0144) == "0.892 mgCO2e"
    assert format_carbon(0.0144) == "14.4 mgCO2e"
    assert format_carbon(None) == "n/a" and format_energy(math.nan) == "n/a"
    assert plain_number(0.000892) == "0.000892" and plain_number(3599.6) == "3,600"


def _estimate(energy_j: float) -> CentralisedEstimate:
    return CentralisedEstimate("same-work", 1e8, 3.0, 3e11, 0.1, energy_j - 1.0, 369.0, 1e-4,
                               1000, 1.0, 1e-3, 1e-4)  # fmt: skip


def test_one_energy_unit_per_table() -> None:
    # The row: the federated run's 3,708 J (1.03 Wh) beside the centralised 91.1 J.
    summary = {"energy_j": {"total": 3708.0}, "carbon_g": {"total": 0.5}}
    rows = {r[0]: r for r in comparison_rows(_estimate(91.1), summary)}
    assert rows["energy: total"][1:3] == ("1.03 Wh", "0.0253 Wh")
    energies = [c for r in rows.values() if r[0].startswith("energy") for c in r[1:3] if c != "-"]
    assert energies and all(c.endswith(" Wh") for c in energies), energies
    carbons = " ".join(c for r in rows.values() if r[0].startswith("carbon") for c in r[1:3])
    assert set(re.findall(r"\d ([µmk]?gCO2e)", carbons)) == {"mgCO2e"}  # 0.5 g is the largest


def _straggler_ledger(out: Path) -> None:
    """Two stragglers: 3,708 J and 91.1 J of wasted work, 0.5 g and 0.004 g."""
    write_hand_ledger(out)
    conn = sqlite3.connect(out / "ledger.sqlite")
    with conn:
        conn.execute(
            "UPDATE client_rounds SET energy_compute_j = 3707.0, energy_comm_j = 1.0, "
            "carbon_operational_g = 0.5, carbon_embodied_g = 0 WHERE client_id = 1"
        )
        conn.execute(
            "UPDATE client_rounds SET energy_compute_j = 90.1, energy_comm_j = 1.0, "
            "carbon_operational_g = 0.004, carbon_embodied_g = 0 WHERE client_id = 2"
        )
    conn.close()


def test_incident_tables_read_in_one_unit(tmp_path: Path) -> None:
    _straggler_ledger(tmp_path / "r")
    with open_run(tmp_path / "r") as run:
        page = render_run_report(run)
    section = page.split('<section id="incidents">')[1].split("</section>")[0]
    cells = re.findall(r"<td class=\"num\">([^<]*)</td>", section)
    assert "1.03 Wh" in cells and "0.0253 Wh" in cells and "91.1 J" not in cells
    assert "500 mgCO2e" in cells and "4 mgCO2e" in cells


def _configs(energy_kwh: list[float], carbon_g: list[float]) -> list[ConfigRuns]:
    out = []
    for name, e, g in zip(("a", "b"), energy_kwh, carbon_g, strict=True):
        m: dict[str, float | None] = {k: None for k, _, _ in METRICS}
        m.update(final_accuracy=0.9, rounds_completed=2.0, energy_kwh=e, carbon_total_g=g,
                 carbon_operational_g=g, carbon_embodied_g=0.0)  # fmt: skip
        out.append(ConfigRuns(name, name, [0], [m], [f"/runs/{name}"]))
    return out


def test_compare_terminal_and_report_use_the_same_units() -> None:
    # 0.001 kWh = 3,600 J = 1 Wh and 0.0005 kWh = 0.5 Wh: one table, Wh throughout.
    configs = _configs([1e-3, 5e-4], [0.02, 0.01])
    rows = dict(compare_rows(configs))
    assert rows["energy (Wh)"] == ["1 ± 0", "0.5 ± 0\n0.5x ± 0"]
    assert rows["total carbon (mgCO2e)"] == ["20 ± 0", "10 ± 0\n0.5x ± 0"]
    html = config_table(configs)
    assert "energy (Wh)" in html and "carbon (mgCO2e)" in html
    assert ">1 ± 0<" in html and ">20 ± 0<" in html


# ---- no bare None --------------------------------------------------------------------------


def test_compare_says_why_a_value_is_missing() -> None:
    no_target = {"rounds_completed": 2, "final_accuracy": None, "carbon_g_to_target": None,
                 "target_accuracy": None}  # fmt: skip
    assert run_done_line(no_target) == (
        "2 rounds, accuracy n/a (not evaluated), carbon to target n/a (no target set)"
    )
    missed = {"rounds_completed": 3, "final_accuracy": 0.5, "carbon_g_to_target": None,
              "target_accuracy": 0.9}  # fmt: skip
    assert run_done_line(missed) == (
        "3 rounds, accuracy 50.00%, carbon to target n/a (90.00% not reached)"
    )
    rows = dict(compare_rows(_configs([1e-3, 5e-4], [0.02, 0.01])))
    text = json.dumps(rows)
    assert "None" not in text
    assert rows["epsilon (DP)"] == ["n/a (no DP)", "n/a (no DP)"]
    assert rows["membership AUC (loss attack)"][0] == "n/a (not audited)"
    assert rows["carbon to target (mgCO2e)"][0] == "n/a (no target)"


def test_compare_progress_has_no_raw_none(tmp_path: Path) -> None:
    from greenfl.analysis.compare_seeds import compare

    cfg = tmp_path / "a.toml"
    cfg.write_text("[data]\nnum_clients = 4\n[train]\nrounds = 1\nclients_per_round = 2\n")
    lines: list[str] = []

    def fake_run(cfg, out):  # noqa: ANN001, ANN202 - the engine's place, nothing run
        return {"final_accuracy": None, "rounds_completed": 1, "rounds_to_target": None,
                "sim_time_s": 1.0, "energy_j": {"total": 1.0}, "target_accuracy": None,
                "carbon_g": {"operational": 1.0, "embodied": 0.0, "total": 1.0},
                "carbon_g_to_target": None}  # fmt: skip

    compare([cfg], [0], tmp_path / "o", run_fn=fake_run, on_progress=lines.append)
    assert lines[-1] == (
        "    done: 1 round, accuracy n/a (not evaluated), carbon to target n/a (no target set)"
    )
    assert not any("None" in ln for ln in lines)


# ---- greenfl audit's reading -------------------------------------------------------------


def _audit(auc: float, tpr: float, privacy: dict | None) -> dict:
    attack = {"auc": auc, "tpr_at_fpr_1e-2": tpr, "tpr_at_fpr_1e-3": 0.0}
    return {"members": 100, "non_members": 100, "round": 5, "member_clients": 3,
            "attacks": {"loss": attack}, "privacy": privacy}  # fmt: skip


def test_audit_reads_out_plainly() -> None:
    lines = table_lines(_audit(0.52, 0.011, {"mode": "none", "delta": 1e-5}))
    assert lines[3] == (
        "reading: membership inference AUC 0.52 (loss, the only attack): close to guessing "
        "(0.5): no leakage this attack could exploit"
    )
    assert lines[4].strip() == (
        "at 1% false positives it finds 1.1% of members, about what guessing finds (1%)"
    )
    assert lines[-1] == (
        "privacy: no differential privacy (privacy.mode = none): no bound on leakage"
    )
    assert not any("{" in ln for ln in lines)  # no raw dict
    leaky = table_lines(_audit(0.74, 0.12, None))
    assert "far better than guessing (0.5)" in leaky[3] and "12x what guessing finds" in leaky[4]
    assert leaky[-1].startswith("privacy: not recorded in config.json")


def test_audit_formats_the_privacy_spent() -> None:
    setting = {"mode": "central", "noise_multiplier": 1.1, "clip_norm": 0.5, "delta": 1e-5}
    assert privacy_reading(setting, {"epsilon": 3.2149, "delta": 1e-5}) == (
        "privacy: central differential privacy, epsilon 3.21 spent at delta 1e-05 "
        "(noise multiplier 1.1, clip norm 0.5)"
    )
    assert privacy_reading(setting, None) == (
        "privacy: central differential privacy, epsilon not recorded at delta 1e-05 "
        "(noise multiplier 1.1, clip norm 0.5)"
    )


# ---- what the run recorded ---------------------------------------------------------------


def _participation_ledger(out: Path, groups: dict | None) -> None:
    """Region A: clients 0 (2 aggregated rounds) and 1 (1), and client 2 never selected;
    region B: client 3 (1 aggregated round) and client 4 never selected."""
    from greenfl.config import build_config
    from greenfl.fleet.catalog import load_fleet
    from greenfl.ledger.writer import LedgerWriter

    out.mkdir(parents=True)
    w = LedgerWriter(out / "ledger.sqlite")
    raw = {"data": {"num_clients": 5}, "train": {"clients_per_round": 3}}
    w.begin_run(build_config(raw).to_dict(), load_fleet().to_dict(), "t")
    if groups is not None:
        w.set_meta("population_groups", json.dumps(groups))
    w.write_round(
        _round(1, 0, 1, 0.5, 1, 1),
        [
            _client(1, 0, "A", "laptop", "completed"),
            _client(1, 1, "A", "laptop", "completed"),
            _client(1, 3, "B", "laptop", "completed"),
        ],
    )
    w.write_round(
        _round(2, 1, 2, 0.5, 1, 1),
        [_client(2, 0, "A", "laptop", "completed"), _client(2, 3, "B", "laptop", "straggler")],
    )
    w.finish("completed", "done")
    w.close()


def test_participation_from_recorded_group_counts(tmp_path: Path) -> None:
    groups = {"region": {"A": 3, "B": 2}, "device": {"laptop": 5}}
    _participation_ledger(tmp_path / "r", groups)
    conn = sqlite3.connect(tmp_path / "r" / "ledger.sqlite")
    p = participation(conn, "region", groups["region"])
    d = participation(conn, "device", groups["device"])
    conn.close()
    by = {g.name: g for g in p.groups}
    # A: aggregated rounds per client [2, 1, 0]: (3)^2 / (3 * (4 + 1)) = 0.6
    assert (by["A"].clients, by["A"].selected, by["A"].completed) == (3, 3, 3)
    assert by["A"].jain == pytest.approx(0.6)
    # B: [1, 0] -> 1 / (2 * 1) = 0.5; selected twice, aggregated once
    assert (by["B"].clients, by["B"].selected, by["B"].completed) == (2, 2, 1)
    assert by["B"].jain == pytest.approx(0.5)
    # all five: [2, 1, 0, 1, 0] -> 16 / (5 * 6)
    assert p.jain_all == pytest.approx(16 / 30) and p.num_clients == 5
    assert d.groups[0].clients == 5 and d.groups[0].jain == pytest.approx(16 / 30)


def test_report_reads_the_recorded_world(tmp_path: Path) -> None:
    write_hand_ledger(tmp_path / "r")
    with open_run(tmp_path / "r") as run:
        page = render_run_report(run)
    intensity = _text(page.split('<section id="intensity">')[1].split("</section>")[0])
    assert "India (annual mean)" in intensity and "South Africa (hourly profile)" in intensity
    assert "for the 2 regions with the most client carbon and the server's (ZA)" in intensity
    assert "Norway" not in intensity  # NO holds no client carbon: not a main region
    part = page.split('<section id="participation">')[1].split("</section>")[0]
    assert "over all 4 clients" in part and "not recorded" not in part
    assert re.search(r"<td>NO</td><td class=\"num\">1</td><td class=\"num\">0</td>", part)


def test_an_older_ledger_gets_a_note_not_a_crash(tmp_path: Path) -> None:
    write_hand_ledger(tmp_path / "old", world=False)
    with open_run(tmp_path / "old") as run:
        page = render_run_report(run)
    intensity = page.split('<section id="intensity">')[1].split("</section>")[0]
    assert "Intensity curves not recorded by this run" in _text(intensity)
    assert "<svg" not in intensity
    part = _text(page.split('<section id="participation">')[1].split("</section>")[0])
    assert "not recorded by this run" in part
    assert "over all 4 clients" in part  # data.num_clients still counts client 3 at zero


def test_recorded_curves_are_the_accounting_sources(tmp_path: Path) -> None:
    """The chain the report now rests on: the accounting records the very intensity it
    charged (here DE's 2020 trace, hour by hour), the report reads it back unchanged."""
    from datetime import datetime, timezone

    from greenfl.accounting.curves import INTENSITY_KEY, intensity_record
    from greenfl.accounting.sources import GridChoice, intensity_sources
    from greenfl.fleet.catalog import load_fleet
    from greenfl.report import world

    assert (world.INTENSITY_KEY, world.GROUPS_KEY) == (INTENSITY_KEY, "population_groups")
    fleet = load_fleet()
    start = datetime(2026, 1, 15, tzinfo=timezone.utc)
    grid = GridChoice("auto", None)
    record = intensity_record(fleet, intensity_sources(fleet, grid, start), grid, start,
                              ["DE", "NO"], 24 * 3600, points=25)  # fmt: skip
    curves = world.intensity_curves({INTENSITY_KEY: json.dumps(record)})
    assert curves is not None
    de = fleet.region("DE")
    assert de.trace is not None
    rows = dict(line.split(",") for line in Path(de.trace).read_text().splitlines()[1:])
    expected = [float(rows[f"2020-01-15T{h:02d}:00:00Z"]) for h in range(24)]
    assert curves.regions["DE"].ci_g_per_kwh[:24] == pytest.approx(expected)
    assert "2020 hourly trace" in curves.legend_label("DE")
    assert set(curves.regions["NO"].ci_g_per_kwh) == {fleet.region("NO").ci_g_per_kwh}


# ---- a pure report, a light CLI ---------------------------------------------------------


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = set()
    for n in nodes:
        if isinstance(n, ast.Import):
            out |= {a.name for a in n.names}
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out |= {n.module} | {f"{n.module}.{a.name}" for a in n.names}
    return out


def _module_file(name: str) -> Path | None:
    rel = Path(*name.split(".")[1:])
    for p in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if p.is_file():
            return p
    return None


def test_the_report_never_reaches_the_config_or_the_engine() -> None:
    forbidden = ("greenfl.config", "greenfl.api", "greenfl.engine", "greenfl.scheduling",
                 "greenfl.accounting.sources", "greenfl.fleet.population")  # fmt: skip
    todo = [f"greenfl.report.{p.stem}" for p in (SRC / "report").glob("*.py")]
    seen: dict[str, str | None] = {m: None for m in todo}
    while todo:
        mod = todo.pop()
        path = _module_file(mod)
        if path is None:
            continue
        for name in _imports(path):
            if not name.startswith("greenfl.") or _module_file(name) is None or name in seen:
                continue
            seen[name] = mod
            todo.append(name)
    bad = {m: via for m, via in seen.items() if m.startswith(forbidden)}
    assert not bad, bad


@pytest.mark.parametrize("command", ["compare", "report", "audit", "export"])
def test_cli_modules_import_nothing_heavy_at_start(command: str) -> None:
    light = {"__future__", "datetime", "pathlib", "typing", "typer", "greenfl.core.errors"}
    top = _imports(SRC / "cli" / f"{command}.py", top_level_only=True)
    heavy = {m for m in top if not any(m == ok or m.startswith(ok + ".") for ok in light)}
    assert not heavy, heavy
