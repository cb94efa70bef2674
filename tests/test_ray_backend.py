"""engine.backend = "ray": the same seed gives the same run as the local backend."""

import importlib.util
import sys

import pytest

import greenfl
from greenfl.cli import main
from greenfl.config import RunConfig
from greenfl.factories import dataset_for

HAVE_RAY = importlib.util.find_spec("ray") is not None


def test_without_ray_the_backend_exits_2_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["run", "--quiet", "--set", 'engine.backend="ray"', "--set", "train.rounds=1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "pip install 'greenfl[ray]'" in err


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install 'greenfl[ray]'")
def test_ray_backend_equals_local(tiny_config: RunConfig) -> None:
    import ray

    cfg = tiny_config.replace(**{"fleet.dropout_prob": 0.2, "compression.name": "q8"})
    local = greenfl.run(cfg)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = greenfl.run(cfg.replace(**{"engine.backend": "ray"}))
    finally:
        ray.shutdown()
    # Ray workers run one torch thread: float sums may round differently in the last bits,
    # and a test input whose top two logits tie within rounding may be classified the other
    # way, so accuracy may differ by one input of the central test set.
    one_input = 1 / len(dataset_for(cfg.data, cfg.seed).test_data()[1])
    assert [r.accuracy for r in remote.history] == pytest.approx(
        [r.accuracy for r in local.history], abs=one_input + 1e-12
    )
    assert [r.loss for r in remote.history] == pytest.approx([r.loss for r in local.history])
    # Client figures are computed from the training; the server's are measured wall time.
    for key in ("client_compute", "client_comm"):
        assert remote.summary["energy_j"][key] == pytest.approx(local.summary["energy_j"][key])
    assert remote.summary["clients_completed"] == local.summary["clients_completed"]
