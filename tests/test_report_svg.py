"""The report's SVG writer: ticks, the data-to-pixel mapping and bar sizes, checked against
values worked out by hand."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest

from greenfl.report.plots import round_breakdown_figure, split_figure
from greenfl.report.svg import Figure, nice_ticks, tick_label
from greenfl.report.tables import Breakdown, RoundSeries

NS = "{http://www.w3.org/2000/svg}"


def _bars(svg: str) -> list[ET.Element]:
    """The data rectangles: outside <defs> (hatch tiles) and with the white bar outline
    (legend swatches have none)."""
    root = ET.fromstring(svg)
    return [r for r in root.iter(f"{NS}rect") if r.get("stroke") == "white"]


@pytest.mark.parametrize(
    ("lo", "hi", "ticks", "labels"),
    [
        (0, 100, [0, 20, 40, 60, 80, 100], ["0", "20", "40", "60", "80", "100"]),
        (250, 720, [300, 400, 500, 600, 700], ["300", "400", "500", "600", "700"]),
        (0, 0.0042, [0, 0.001, 0.002, 0.003, 0.004],
         ["0.000", "0.001", "0.002", "0.003", "0.004"]),
        (0, 30_000, [0, 10_000, 20_000, 30_000], ["0", "10,000", "20,000", "30,000"]),
        (0, 1.1, [0, 0.5, 1.0], ["0.0", "0.5", "1.0"]),
    ],
)  # fmt: skip
def test_ticks_are_round_and_labelled_to_their_step(
    lo: float, hi: float, ticks: list[float], labels: list[str]
) -> None:
    got = nice_ticks(lo, hi)
    assert got == pytest.approx(ticks)
    assert [tick_label(v, got) for v in got] == labels


def test_panel_maps_data_to_pixels() -> None:
    ax = Figure("t", "t", 100, 100).panel(10, 20, 80, 50).limits((0, 4), (0, 10))
    assert (ax.px(0), ax.px(1), ax.px(4)) == (10, 30, 90)
    assert (ax.py(0), ax.py(5), ax.py(10)) == (70, 45, 20)  # y grows upwards
    ax.y_down = True  # categories: row 0 at the top
    assert (ax.py(0), ax.py(10)) == (20, 70)


def test_line_leaves_gaps_at_missing_values() -> None:
    fig = Figure("t", "t", 100, 100)
    ax = fig.panel(0, 0, 100, 100).limits((0, 4), (0, 4))
    ax.line([0, 1, 2, 3, 4], [0, 1, math.nan, 3, 4], "#000")
    path = ET.fromstring(fig.svg()).find(f"{NS}path")
    assert path is not None
    assert path.get("d") == "M0,100 L25,75 M75,25 L100,0"


def test_round_bars_stack_to_hand_computed_heights() -> None:
    s = RoundSeries(
        rounds=[1, 2], start_s=[0, 1], end_s=[1, 2], accuracy=[0.5, 0.6],
        compute_g=[1.0, 2.0], comm_g=[1.0, 0.0], server_g=[0.0, 1.0], embodied_g=[2.0, 1.0],
        energy_j=[1.0, 1.0],
    )  # fmt: skip
    bars = _bars(round_breakdown_figure(s))
    # y axis 0..4.2 (the 4 g tallest round + 5%) over a 200 px panel: 1 g = 47.62 px
    px_per_g = 200 / 4.2
    heights = sorted(float(r.get("height", 0)) for r in bars)
    expected = sorted(v * px_per_g for v in (1.0, 1.0, 2.0, 2.0, 1.0, 1.0))  # zeros drawn not
    assert heights == pytest.approx(expected, abs=0.06)
    # each round's segments touch: together they span 4 g from the axis
    for x in {r.get("x") for r in bars}:
        col = [r for r in bars if r.get("x") == x]
        top = min(float(r.get("y", 0)) for r in col)
        bottom = max(float(r.get("y", 0)) + float(r.get("height", 0)) for r in col)
        assert bottom - top == pytest.approx(4 * px_per_g, abs=0.1)


def test_split_bars_are_shares_of_the_panel_width() -> None:
    b = Breakdown(compute_j=10.0, comm_j=30.0, server_j=60.0, client_operational_g=0.0,
                  server_g=1.0, embodied_g=3.0)  # fmt: skip
    svg = split_figure(b)
    energy = [r for r in _bars(svg) if float(r.get("y", 0)) < 80]  # the top bar
    widths = [float(r.get("width", 0)) for r in energy]
    total = sum(widths)
    assert [w / total for w in widths] == pytest.approx([0.1, 0.3, 0.6], abs=2e-3)
    texts = "".join(ET.fromstring(svg).itertext())
    assert "30%" in texts and "60%" in texts and "75%" in texts  # carbon: embodied 3 of 4 g
