"""The documentation site: the generated config reference is fresh and complete, the README
stays short, and every ```bash / ```python block of docs/tutorials/*.md runs as written."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("*.md"))
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
RUNNABLE = ("bash", "python")


def _generator():
    spec = importlib.util.spec_from_file_location(
        "gen_config_reference", DOCS / "gen_config_reference.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blocks(page: Path) -> list[tuple[str, str]]:
    """The page's fenced blocks as (language, code), in order; fences must start a line."""
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(page.read_text())]


def test_config_reference_page_equals_a_fresh_generation():
    gen = _generator()
    assert gen.PAGE.read_text() == gen.render(), (
        "docs/reference/config.md is stale: run python docs/gen_config_reference.py"
    )


def test_every_config_key_has_a_description():
    gen = _generator()
    missing = [key for _, table in gen.sections() for key, _, _, desc in table if not desc]
    assert not missing, f"config keys without a description: {', '.join(missing)}"


def test_config_reference_lists_every_key():
    from greenfl.config import RunConfig

    page = (DOCS / "reference" / "config.md").read_text()
    for attr, field in RunConfig.model_fields.items():
        name = field.alias or attr  # the [async] section is the field async_
        sub = getattr(field.annotation, "model_fields", None)
        keys = [f"{name}.{k}" for k in sub] if sub else [name]
        for key in keys:
            assert f"| `{key}` |" in page, key


def test_readme_is_short_and_keeps_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert "```bash\nbash scripts/quickstart.sh\n```" in text
    assert "```bash\nbash scripts/test.sh\n```" in text


def test_readme_links_resolve():
    text = (ROOT / "README.md").read_text()
    links = re.findall(r"\]\(([^)#\s]+)[^)]*\)", text)
    assert any(link.startswith("docs/") for link in links)
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links to a missing {link}"


def test_every_tutorial_has_runnable_blocks():
    assert TUTORIALS, "no tutorials found"
    for page in TUTORIALS:
        assert any(lang in RUNNABLE for lang, _ in blocks(page)), page.name


def _run_page(page: Path, tmp_path: Path, langs: tuple[str, ...] = RUNNABLE) -> None:
    """Every block of ``page``, in order, in one folder, each in a fresh interpreter (a
    Python block) or shell (a bash block): a block may use the files earlier blocks wrote,
    never their variables or imports."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "1")
    for i, (lang, code) in enumerate(blocks(page), 1):
        if lang not in langs:
            continue
        where = f"{page.name}, block {i} ({lang})"
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [
            sys.executable, "-c", code]  # fmt: skip
        proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)  # fmt: skip
        assert proc.returncode == 0, (
            f"{where} exited {proc.returncode}\n--- code\n{code}\n"
            f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("page", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_runs_as_written(page, tmp_path):
    _run_page(page, tmp_path)


@pytest.mark.slow
def test_readme_python_snippet_runs_as_written(tmp_path):
    # The README's shell blocks are the set-up commands (they build a venv); its Python runs.
    assert any(lang == "python" for lang, _ in blocks(ROOT / "README.md"))
    _run_page(ROOT / "README.md", tmp_path, langs=("python",))
