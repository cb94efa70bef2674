#!/usr/bin/env bash
# Install greenfl with its test tools into .venv and run lint + the whole test suite.
# torch is installed first, the CPU build where PyTorch's index answers (scripts/install.sh),
# so that pip never takes a multi-GB CUDA build for it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
. scripts/install.sh
install_torch
pip install -q -e '.[test,flower]'
# The browser test drives Debian's Chromium with Playwright (its Python package bundles the
# driver; no `playwright install`). CI runs as root on a fresh Debian machine.
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
fi
mkdir -p test-artifacts
# As root (CI) the browser test must run, not skip.
if [ "$(id -u)" = 0 ]; then export GREENFL_REQUIRE_BROWSER="${GREENFL_REQUIRE_BROWSER:-1}"; fi
# The Flower tests (the `flower` extra, installed above where Python is 3.11+) must run, not
# skip, wherever Flower installs.
if python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  export GREENFL_REQUIRE_FLOWER="${GREENFL_REQUIRE_FLOWER:-1}"
fi
ruff check .
python -m pytest -q -p no:cacheprovider tests "$@"
# The documentation site (docs/, mkdocs.yml): broken links, anchors or API references fail.
NO_MKDOCS_2_WARNING=1 mkdocs build --strict
