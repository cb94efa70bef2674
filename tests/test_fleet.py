from pathlib import Path

import numpy as np
import pytest

from greenfl.core.errors import FleetError
from greenfl.fleet import Population, available, diurnal_availability, load_fleet


def test_builtin_catalog_meets_the_brief() -> None:
    f = load_fleet()
    assert len(f.devices) >= 8 and len(f.networks) >= 3 and len(f.regions) >= 12
    names = {d.name for d in f.devices}
    assert {
        "phone-high",
        "phone-mid",
        "phone-low",
        "tablet",
        "rpi4",
        "jetson-nano",
        "laptop",
        "desktop",
    } <= names
    assert {"wifi", "lte", "5g"} <= {n.name for n in f.networks}
    ci = {r.name: r.ci_g_per_kwh for r in f.regions}
    assert ci["NO"] < 50 and ci["IN"] > 700
    for item in (*f.devices, *f.networks, *f.regions, f.server):
        assert item.source.strip()
    assert all(len(d.targets) >= 2 for d in f.devices if d.name.startswith("phone"))
    assert all(f.region(n).hourly is not None for n in ("FR", "GB", "DE"))


def test_fleet_validation_reports_each_bad_field(one_device_fleet: Path) -> None:
    text = one_device_fleet.read_text()
    bad = text.replace("active_power_w = 2.0", "active_power_w = -2.0")
    bad = bad.replace('region = "R"\nshare', 'region = "Atlantis"\nshare')
    bad = bad.replace("up_mbps = 8.0\n", "")
    p = one_device_fleet.with_name("bad.toml")
    p.write_text(bad)
    with pytest.raises(FleetError) as info:
        load_fleet(p)
    problems = info.value.problems
    assert any(
        "device[0] (dev).active_power_w" in m and "greater than or equal to 0" in m
        for m in problems
    )
    assert any("network[0] (net).up_mbps: missing key" in m for m in problems)
    # schema and cross-reference problems are reported together (issue 13: every error at once)
    assert any("population[0].region: unknown region 'Atlantis'" in m for m in problems)
    assert len(problems) == 3
    p.write_text(text.replace('region = "R"\nshare', 'region = "Atlantis"\nshare'))
    with pytest.raises(FleetError, match=r"population\[0\].region: unknown region 'Atlantis'"):
        load_fleet(p)


def test_population_assignment_is_deterministic_and_proportional() -> None:
    f = load_fleet()
    sizes = np.ones(50_000, dtype=np.int64)
    a = Population.assign(f, sizes, seed=0)
    b = Population.assign(f, sizes, seed=0)
    assert np.array_equal(a.entry, b.entry)
    shares = np.array([p.share for p in f.population])
    observed = np.bincount(a.entry, minlength=len(shares)) / len(sizes)
    assert np.allclose(observed, shares / shares.sum(), atol=0.01)
    assert a.entry.dtype == np.int32 and a.device.dtype == np.int16


def test_diurnal_availability_peaks_at_night() -> None:
    assert diurnal_availability(np.array([3.0]))[0] > 0.8
    assert diurnal_availability(np.array([15.0]))[0] < 0.2
    f = load_fleet()
    pop = Population.assign(f, np.ones(20_000, dtype=np.int64), 0)
    from datetime import datetime, timezone

    rng = np.random.default_rng(0)
    night_fr = available(pop, datetime(2026, 1, 15, 2, tzinfo=timezone.utc), "diurnal", rng)
    day_fr = available(pop, datetime(2026, 1, 15, 14, tzinfo=timezone.utc), "diurnal", rng)
    fr = f.region_index("FR")
    assert (pop.region[night_fr] == fr).sum() > 3 * (pop.region[day_fr] == fr).sum()
