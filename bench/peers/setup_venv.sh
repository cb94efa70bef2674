#!/usr/bin/env bash
# Create bench/.venv-peers with the peer frameworks used in the side-by-side benchmark.
#
# torch==2.13.0 goes in FIRST (a CPU wheel on this machine's disk) and is pinned again through a
# constraints file on every later pip call, so that no framework can pull another (CUDA) torch.
# Idempotent: a venv whose pinned packages are already importable at the right versions is kept.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${PEERS_VENV:-$HERE/../.venv-peers}"
TORCH_VERSION="2.13.0"
FLWR_VERSION="1.41.0"
PFL_VERSION="0.6.0"
PY="${PYTHON:-python3}"

want_ok() {
  "$VENV/bin/python" - "$TORCH_VERSION" "$FLWR_VERSION" "$PFL_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version

torch_v, flwr_v, pfl_v = sys.argv[1:4]
assert version("torch").split("+")[0] == torch_v
assert version("flwr") == flwr_v
assert version("pfl") == pfl_v
import flwr.simulation  # noqa: F401
import pfl.internal.ops.pytorch_ops  # noqa: F401
import psutil  # noqa: F401
import ray  # noqa: F401
import sklearn  # noqa: F401
PYEOF
}

if [[ -x "$VENV/bin/python" ]] && want_ok; then
  echo "peers venv up to date: $VENV"
  exit 0
fi

start=$(date +%s)
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

CONSTRAINTS="$VENV/peers-constraints.txt"
echo "torch==$TORCH_VERSION" > "$CONSTRAINTS"

# 1. torch first, alone.
"${PIP[@]}" "torch==$TORCH_VERSION"
# 2. the frameworks and tools, with torch pinned on the command line and by constraints.
"${PIP[@]}" -c "$CONSTRAINTS" "torch==$TORCH_VERSION" \
  "flwr[simulation]==$FLWR_VERSION" \
  "pfl[pytorch]==$PFL_VERSION" \
  scikit-learn psutil

if ! want_ok; then
  echo "peers venv: import check failed" >&2
  exit 1
fi
"$VENV/bin/python" - <<'PYEOF'
from importlib.metadata import version

for name in ("torch", "flwr", "ray", "pfl", "numpy", "scikit-learn", "psutil"):
    print(f"{name}=={version(name)}")
PYEOF
echo "peers venv ready in $(( $(date +%s) - start )) s: $VENV"
