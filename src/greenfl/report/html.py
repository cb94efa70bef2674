"""Transitional: the run report moved to ``greenfl.report.run_report`` (and the page shell
to ``greenfl.report.page``), so that no module of the report is named like the standard
library's ``html``. ``greenfl.cli.run`` still imports ``write_run_report`` from here; delete
this module once it imports ``greenfl.report.run_report`` instead."""

from __future__ import annotations

from greenfl.report.run_report import render_run_report, write_run_report

__all__ = ["render_run_report", "write_run_report"]
