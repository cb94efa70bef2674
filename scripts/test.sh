#!/usr/bin/env bash
# Install greenfl with its test tools into .venv and run lint + the whole test suite.
# torch is pinned first so that pip takes the CPU wheel and never a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e '.[test]'
ruff check .
python -m pytest -q -p no:cacheprovider tests "$@"
