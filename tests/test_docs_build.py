"""The documentation site builds with ``mkdocs build --strict``, and that check can fail: a
copy of the site with one broken link must not build. Also: the repository-root files that
pages include (BENCHMARKS.md) keep links that resolve on GitHub, from the repository root.

scripts/test.sh runs the same strict build without ``--quiet``: with it, mkdocs 1.6 logs no
warnings, counts none, and exits 0 in strict mode whatever is broken."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs")

ROOT = Path(__file__).resolve().parents[1]
INCLUDE = re.compile(r'^--8<-- "([^"]+)"[ \t]*$', re.MULTILINE)
LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")


def _included() -> list[str]:
    """The files the docs pages include from the repository (``--8<-- "FILE"`` lines)."""
    return sorted(
        {
            m.group(1)
            for page in (ROOT / "docs").rglob("*.md")
            for m in INCLUDE.finditer(page.read_text())
        }
    )


def _build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(config),
            "--site-dir",
            str(site),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _copy_site(dest: Path) -> Path:
    """mkdocs.yml, docs/ and the included files copied into ``dest``; src/ linked (the API
    reference reads it). Every path in mkdocs.yml is relative, so the copy builds alone."""
    shutil.copy(ROOT / "mkdocs.yml", dest / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", dest / "docs")
    for name in _included():
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, dest / name)
    (dest / "src").symlink_to(ROOT / "src", target_is_directory=True)
    return dest / "mkdocs.yml"


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    done = _build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "performance" / "index.html").exists()


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    config = _copy_site(tmp_path)
    # the unchanged copy builds: what fails below is the broken link and nothing else
    assert _build(config, tmp_path / "site-ok").returncode == 0
    (tmp_path / "docs" / "broken.md").write_text("# Broken\n\nSee [nowhere](no-such-page.md).\n")
    done = _build(config, tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr, done.stderr


def test_benchmarks_links_resolve_from_the_repository_root() -> None:
    # On GitHub BENCHMARKS.md is read from the repository root; docs/hooks.py rewrites its
    # docs/... links for the site (test_the_site_builds_strictly checks that side).
    for name in _included():
        for link in LINK.findall((ROOT / name).read_text()):
            if "://" not in link:
                assert (ROOT / link).exists(), f"{name} links to a missing {link}"
