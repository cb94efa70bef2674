import torch

from greenfl.core.params import from_bytes, get_flat, to_bytes
from greenfl.models import build_model
from greenfl.models.flops import training_flops_per_sample


def test_mlp_training_flops_match_6x_weights() -> None:
    model = build_model("mlp", (64,), 10, hidden=[256, 256])
    weights = sum(p.numel() for n, p in model.named_parameters() if n.endswith("weight"))
    counted = training_flops_per_sample(model, (64,), 10, batch_size=32)
    assert abs(counted - 6 * weights) / (6 * weights) < 0.10


def test_cnn_flops_grow_with_input() -> None:
    small = training_flops_per_sample(build_model("cnn", (64,), 10), (64,), 10)
    big = training_flops_per_sample(build_model("cnn", (1, 28, 28), 10), (1, 28, 28), 10)
    assert big > 10 * small > 0


def test_cnn_28x28_has_the_reference_parameter_count() -> None:
    model = build_model("cnn", (1, 28, 28), 10)
    assert sum(p.numel() for p in model.parameters()) == 18_378


def test_param_bytes_are_the_serialized_size() -> None:
    model = build_model("mlp", (64,), 10, hidden=[64])
    flat = get_flat(model)
    payload = to_bytes(flat)
    assert len(payload) == 4 * sum(p.numel() for p in model.parameters()) == 4 * 4810
    assert torch.equal(from_bytes(payload), flat)
