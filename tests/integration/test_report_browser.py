"""The HTML report in a real browser: Debian's headless Chromium, driven by Playwright,
opens the file from disk with every network request blocked, and checks that each plot
rendered, the console stayed clean, and the headline numbers are summary.json's."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import greenfl
from greenfl.config import build_config
from greenfl.report.headline import summary_value

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).is_file()),
    None,
)
_MISSING = (
    "playwright not installed (pip install playwright; scripts/test.sh does)"
    if importlib.util.find_spec("playwright") is None
    else "chromium not found at /usr/bin/chromium (apt-get install -y chromium)"
    if CHROMIUM is None
    else None
)
if _MISSING is not None and os.environ.get("GREENFL_REQUIRE_BROWSER") == "1":
    # CI (scripts/test.sh as root) sets this: there the browser test must not skip.
    raise RuntimeError(f"GREENFL_REQUIRE_BROWSER=1 but {_MISSING}")
pytestmark = [
    pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING)),
    pytest.mark.slow,  # a real run and a browser start: ~15 s alone, more on a busy machine
]

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PLOTS = {"accuracy", "split", "rounds", "groups", "intensity", "participation"}
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short real run with drop-outs and stragglers, so every section has content."""
    out = tmp_path_factory.mktemp("browser") / "run"
    cfg = build_config(
        {
            "data": {"num_clients": 30},
            "train": {"rounds": 4, "clients_per_round": 6},
            "fleet": {"dropout_prob": 0.2, "over_selection": 0.5},
            "stop": {"target_accuracy": 0.99},
        }
    )
    greenfl.run(cfg, out)
    from greenfl.report.run_report import write_run_report

    write_run_report(out)
    return out


def _open(page_path: Path, shot: Path | None = None) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            ctx = browser.new_context(viewport={"width": 1100, "height": 900})

            def route(r: Any) -> None:
                if r.request.url.startswith("file://"):
                    r.continue_()
                else:
                    blocked.append(r.request.url)
                    r.abort()

            ctx.route("**/*", route)
            page = ctx.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.perf_counter()
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            load_s = time.perf_counter() - t0
            info = page.evaluate(
                """() => ({
                  plots: [...document.querySelectorAll('svg.plot')].map(s => {
                    const r = s.getBoundingClientRect();
                    return {id: s.dataset.plot, w: r.width, h: r.height,
                            shapes: s.querySelectorAll('path, rect, use, line').length,
                            texts: s.querySelectorAll('text').length};
                  }),
                  numbers: [...document.querySelectorAll('[data-summary-key]')].map(e => ({
                    key: e.dataset.summaryKey, value: e.dataset.value,
                    text: e.textContent.trim()})),
                  metrics: Object.fromEntries([...document.querySelectorAll('[data-metric]')]
                    .map(e => [e.dataset.metric, e.dataset.value])),
                  nav: performance.getEntriesByType('navigation')[0].toJSON(),
                })"""
            )
            if shot is not None:
                shot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    info.update(blocked=blocked, errors=errors, load_s=load_s)
    return info


def test_report_renders_offline_with_summary_numbers(run_dir: Path) -> None:
    info = _open(run_dir / "report.html", ARTIFACTS / "report.png")
    assert info["blocked"] == [], "the report tried to reach the network"
    assert info["errors"] == []
    plots = {p["id"]: p for p in info["plots"]}
    assert set(plots) >= PLOTS
    for p in plots.values():
        assert p["w"] > 300 and p["h"] > 80, p
        assert p["shapes"] > 5 and p["texts"] > 3, p
    summary = json.loads((run_dir / "summary.json").read_text())
    keys = {n["key"] for n in info["numbers"]}
    assert keys >= {
        "final_accuracy",
        "energy_j.total",
        "carbon_g.total",
        "carbon_g.operational",
        "carbon_g.embodied",
        "carbon_g_to_target",
        "rounds_completed",
    }
    for n in info["numbers"]:
        expected = summary_value(summary, n["key"])
        got = None if n["value"] == "null" else float(n["value"])
        assert got == expected, n
        assert n["text"], n
    acc = next(n for n in info["numbers"] if n["key"] == "final_accuracy")
    assert acc["text"] == f"{summary['final_accuracy'] * 100:.2f}%"
    rounds = next(n for n in info["numbers"] if n["key"] == "rounds_completed")
    assert rounds["text"] == str(summary["rounds_completed"])
    assert float(info["metrics"]["intelligence_per_kwh"]) > 0
    assert info["nav"]["loadEventEnd"] < 2000  # ms from navigation start
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_comparison_report_overlays_runs(run_dir: Path, tmp_path: Path) -> None:
    from report_fixtures import write_hand_ledger

    from greenfl.report.compare import write_compare_report

    write_hand_ledger(tmp_path / "runs" / "hand")
    shutil.copytree(run_dir, tmp_path / "runs" / "real")
    dest = write_compare_report([tmp_path / "runs"], tmp_path / "cmp")
    info = _open(dest, ARTIFACTS / "compare.png")
    assert info["blocked"] == [] and info["errors"] == []
    overlay = next(p for p in info["plots"] if p["id"] == "overlay")
    assert overlay["w"] > 300 and overlay["shapes"] > 5
