"""Energy meters chosen by name (greenfl join --meter), the optional codecarbon meter, and
how a meter's own model reaches the ledger as estimated."""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import numpy as np
import pytest

from greenfl.accounting.cohort import account_cohort
from greenfl.accounting.entries import EntryTable
from greenfl.cli import main
from greenfl.core.errors import MeterError
from greenfl.core.messages import ClientReport
from greenfl.fleet.catalog import load_fleet
from greenfl.fleet.population import Population
from greenfl.footprint import ConstantIntensity, NullMeter, RaplMeter
from greenfl.footprint import codecarbon_meter as ccm
from greenfl.footprint.measurement import Measurement
from greenfl.footprint.meters import make_meter

HAS_CODECARBON = importlib.util.find_spec("codecarbon") is not None


def _fake_rapl(root: Path, uj: int = 1_000_000) -> Path:
    d = root / "intel-rapl:0"
    d.mkdir(parents=True)
    (d / "energy_uj").write_text(str(uj))
    (d / "max_energy_range_uj").write_text(str(2**32))
    return root


def test_meters_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(make_meter("none", tmp_path), NullMeter)
    with pytest.raises(MeterError, match=r"--meter rapl: no readable RAPL counters under"):
        make_meter("rapl", tmp_path)
    with pytest.raises(MeterError, match="choose one of auto, rapl, codecarbon, none"):
        make_meter("joulemeter", tmp_path)
    rapl_root = _fake_rapl(tmp_path / "powercap")
    assert isinstance(make_meter("rapl", rapl_root), RaplMeter)
    assert isinstance(make_meter("auto", rapl_root), RaplMeter)  # counters first
    # No counters: codecarbon where installed, else none (the server models it).
    monkeypatch.setattr(ccm, "codecarbon_installed", lambda: False)
    assert isinstance(make_meter("auto", tmp_path), NullMeter)


def test_null_measurement_is_estimated_and_a_meter_model_is_too() -> None:
    assert Measurement(1.0, None).estimated
    assert not Measurement(1.0, 5.0).estimated
    assert Measurement(1.0, 5.0, modelled=True).estimated


def test_join_meter_codecarbon_without_it_exits_2_with_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(ccm, "codecarbon_installed", lambda: False)
    code = main(["join", "--server", "127.0.0.1:9", "--client-id", "0", "--meter", "codecarbon"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == "error: --meter codecarbon needs codecarbon: pip install 'greenfl[codecarbon]'"


def test_classify_codecarbon_hardware() -> None:
    def hw(kind: str, **attrs: object) -> object:
        return type(kind, (), {**attrs, "__repr__": lambda self: f"{kind}()"})()

    load = ccm.classify_hardware([hw("RAM"), hw("CPU", _mode="cpu_load")])
    assert not load.cpu_measured and not load.ram_measured
    assert load.description == "RAM() model, CPU() model"
    rapl = ccm.classify_hardware([hw("RAM"), hw("CPU", _mode="intel_rapl"), hw("GPU")])
    assert rapl.cpu_measured and not rapl.ram_measured
    pi = ccm.classify_hardware([hw("Raspberry", chip_part="RAM"), hw("Raspberry", chip_part="CPU")])
    assert pi.cpu_measured and pi.ram_measured
    assert not ccm.classify_hardware([hw("CPU", _mode="constant")]).cpu_measured


def _busy(seconds: float) -> None:
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < seconds:
        x += 1


@pytest.mark.skipif(not HAS_CODECARBON, reason="codecarbon is not installed (greenfl[codecarbon])")
def test_codecarbon_meter_for_real(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    meter = make_meter("codecarbon")
    assert meter.name == "codecarbon"
    readings = []
    for seconds in (0.3, 0.9):  # one tracker, several windows (codecarbon tasks)
        token = meter.begin()
        _busy(seconds)
        readings.append(meter.end(token))
    assert isinstance(meter, ccm.CodecarbonMeter) and meter.parts is not None
    for m, seconds in zip(readings, (0.3, 0.9), strict=True):
        assert m.elapsed_s == pytest.approx(seconds, abs=0.2)
        assert m.energy_j is not None and m.energy_j > 0
        assert 0.1 < m.energy_j / m.elapsed_s < 2000  # watts of a real machine
        # Honest: without a counter for the CPU, codecarbon modelled it (TDP x load).
        assert m.estimated == (not meter.parts.cpu_measured)
    if not os.path.exists("/sys/class/powercap/intel-rapl:0/energy_uj"):
        assert readings[0].estimated, meter.parts.description
    assert readings[1].energy_j > readings[0].energy_j  # a longer window, more joules
    assert list(tmp_path.iterdir()) == []  # offline, no emissions.csv, nothing written


def _report(cid: int, energy_j: float | None, modelled: bool) -> ClientReport:
    return ClientReport(
        client_id=cid,
        status="completed",
        reason=None,
        delta=None,
        num_samples=10,
        flops=1e9,
        loss=0.5,
        bytes_up=1000,
        bytes_down=1000,
        measured_energy_j=energy_j,
        measured_compute_s=1.0,
        energy_estimated=modelled,
    )


def test_a_meters_own_model_is_used_but_marked_estimated(one_device_fleet: Path) -> None:
    fleet = load_fleet(one_device_fleet)
    pop = Population.assign(fleet, np.full(3, 10), seed=0)
    reports = [_report(0, 7.0, False), _report(1, 9.0, True), _report(2, None, False)]
    acc = account_cohort(
        1, 0.0, reports, pop, EntryTable.build(fleet), [ConstantIntensity(400.0)],
        k=3, deadline_s=None, dropout_prob=0.0, rng=np.random.default_rng(0),
    )  # fmt: skip
    rows = list(acc.rows)
    assert [r["energy_compute_j"] for r in rows] == [7.0, 9.0, 2.0]  # 2 W x 1 s modelled
    assert [r["estimated"] for r in rows] == [0, 1, 1]


def test_a_withdrawn_report_is_a_straggler_with_its_work_counted(one_device_fleet: Path) -> None:
    fleet = load_fleet(one_device_fleet)
    pop = Population.assign(fleet, np.full(4, 10), seed=0)
    late = ClientReport(3, "straggler", "withdrawn: the round closed with 3 updates", None,
                        10, 0.0, float("nan"), 0, 1000, measured_compute_s=0.5)  # fmt: skip
    reports = [_report(i, None, False) for i in range(3)] + [late]
    acc = account_cohort(
        1, 0.0, reports, pop, EntryTable.build(fleet), [ConstantIntensity(400.0)],
        k=3, deadline_s=None, dropout_prob=0.0, rng=np.random.default_rng(0),
    )  # fmt: skip
    assert list(acc.status) == ["completed"] * 3 + ["straggler"]
    row = list(acc.rows)[3]
    down_s = 1000 * 8 / 16e6  # 16 Mbit/s down, then 0.5 s of work until withdrawn
    assert row["compute_s"] == pytest.approx(0.5)
    assert row["energy_compute_j"] == pytest.approx(2.0 * 0.5)  # 2 W
    assert row["comm_s"] == pytest.approx(down_s) and row["bytes_up"] == 0
    assert row["estimated"] == 1 and row["reason"].startswith("withdrawn")
