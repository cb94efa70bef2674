#!/usr/bin/env bash
# Install greenfl into .venv and run the offline quickstart (FedAvg on digits, built-in fleet).
# Safe to run again: the quickstart's folder is replaced each time (--force), so a second
# run does not stop at the ledger the first one left.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
. scripts/install.sh
install_torch  # the CPU build where PyTorch's index answers; GREENFL_TORCH_INDEX picks another
pip install -q -e .
greenfl run --out runs/quickstart --force "$@"
