# shellcheck shell=bash
# Sourced by scripts/quickstart.sh and scripts/test.sh, with .venv active: install_torch.
#
# PyPI's Linux torch wheels are the CUDA build, which pulls ~17 nvidia-* packages (several
# GB). install_torch takes the CPU build from PyTorch's own wheel index when that index
# answers, else the same pin from whatever pip is configured with (PyPI, a mirror, local
# wheels). It prints one line saying which it used.
#
# GREENFL_TORCH_INDEX picks another of PyTorch's indexes, e.g. a CUDA 12.4 build:
#   GREENFL_TORCH_INDEX=https://download.pytorch.org/whl/cu124 bash scripts/quickstart.sh
# A torch of the pinned version already in .venv is kept, whichever build it is: remove
# .venv to change builds. pyproject.toml asks only torch>=2.3; the pin is for these scripts.

GREENFL_TORCH_PIN="torch==2.13.0"
GREENFL_TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

_torch_version() {
  python -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null
}

# True if the simple index $1 serves a torch page within 10 s. Asked before pip is, since
# pip would also search the indexes and local wheels in its own configuration, and might
# install from those while the index asked for never answers.
_index_answers() {
  python - "$1" >/dev/null 2>&1 <<'PY'
import sys
import urllib.request

urllib.request.urlopen(sys.argv[1].rstrip("/") + "/torch/", timeout=10).close()
PY
}

install_torch() {
  local index="${GREENFL_TORCH_INDEX:-$GREENFL_TORCH_CPU_INDEX}" have
  have="$(_torch_version || true)"
  if [ "${have%%+*}" = "${GREENFL_TORCH_PIN#torch==}" ]; then
    echo "torch: $have already in .venv, kept (remove .venv to install another build)"
    return 0
  fi
  # Inside an `if`, a failing attempt does not stop a `set -e` script: it falls through.
  if _index_answers "$index" &&
    pip install -q --timeout 20 --retries 1 --index-url "$index" "$GREENFL_TORCH_PIN"; then
    echo "torch: $(_torch_version) from $index"
  else
    pip install -q "$GREENFL_TORCH_PIN"
    echo "torch: $(_torch_version) from pip's own configuration ($index did not answer)"
  fi
}
