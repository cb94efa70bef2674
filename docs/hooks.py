"""MkDocs hook: a page may include a file from the repository root (``BENCHMARKS.md``) with
a ``--8<-- "FILE.md"`` line. Such a file's relative links are written from the repository
root, as GitHub resolves them (``docs/safety-price.md``); in the site that file's text sits
inside a page under ``docs/``, where those links would not resolve. So the hook inlines the
file itself, each ``docs/...`` link rewritten relative to the including page, before the page
is converted; pymdownx.snippets then has nothing left to include. A relative link into the
repository outside ``docs/`` is left as it is, and ``mkdocs build --strict`` rejects it."""

from __future__ import annotations

import posixpath
import re
from pathlib import Path
from typing import Any

_INCLUDE = re.compile(r'^--8<-- "([^"/]+\.md)"[ \t]*$', re.MULTILINE)  # a repo-root file
_DOCS_LINK = re.compile(r"\]\(docs/([^)\s]*)\)")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    root = Path(config["config_file_path"]).parent
    here = posixpath.dirname(page.file.src_uri)

    def link(m: re.Match[str]) -> str:
        return "](" + posixpath.relpath(m.group(1), here or ".") + ")"

    def inline(m: re.Match[str]) -> str:
        return _DOCS_LINK.sub(link, (root / m.group(1)).read_text(encoding="utf-8"))

    return _INCLUDE.sub(inline, markdown)
