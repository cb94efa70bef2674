"""The committed generated gRPC code is what scripts/gen_proto.sh makes from greenfl.proto."""

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "src" / "greenfl" / "deploy"


@pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="grpcio-tools is not installed"
)
@pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not available")
def test_generated_code_matches_a_fresh_generation(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("greenfl_pb2.py", "greenfl_pb2_grpc.py"):
        fresh = (tmp_path / "greenfl" / "deploy" / name).read_text()
        assert fresh == (PKG / name).read_text(), (
            f"{name} is stale: run scripts/gen_proto.sh and commit the result"
        )


def test_schema_round_trips_an_update() -> None:
    from greenfl.deploy import greenfl_pb2 as pb

    up = pb.Update(protocol_version=1, client_id=7, round=3, num_samples=12, loss=0.5)
    up.tensors.tensors.add(name="w", shape=[2, 3], dtype="float32", data=b"\0" * 24)
    up.footprint.flops = 1e9
    assert not up.footprint.HasField("energy_j")  # absent = "model it", not 0 J
    up.footprint.energy_j = 0.0
    back = pb.Update.FromString(up.SerializeToString())
    assert back.WhichOneof("delta") == "tensors"
    assert list(back.tensors.tensors[0].shape) == [2, 3]
    assert back.footprint.HasField("energy_j") and back.footprint.energy_j == 0.0
