#!/usr/bin/env bash
# Regenerate src/greenfl/deploy/greenfl_pb2.py and greenfl_pb2_grpc.py from greenfl.proto
# with grpcio-tools (in the `test` extra). The generated files are committed, and
# tests/test_transport_proto.py checks that they match a fresh generation.
# Usage: scripts/gen_proto.sh [OUT_ROOT]   (default: src; files land in OUT_ROOT/greenfl/deploy)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-src}"
mkdir -p "$out/greenfl/deploy"
python -m grpc_tools.protoc -I src --python_out="$out" --grpc_python_out="$out" \
  src/greenfl/deploy/greenfl.proto
