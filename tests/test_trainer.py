import torch

from greenfl.clients.trainer import SequentialTrainer
from greenfl.config import build_config
from greenfl.core.messages import FitInstructions
from greenfl.core.params import get_flat
from greenfl.factories import dataset_for
from greenfl.models import build_model


def test_local_training_never_writes_into_the_global_vector() -> None:
    ds = dataset_for(build_config({"data": {"num_clients": 10}}).data, 0)
    model = build_model("mlp", (64,), 10, hidden=[64])
    global_params = get_flat(model)
    before = global_params.clone()
    results = SequentialTrainer().train(
        model, global_params, ds, [0, 1], FitInstructions(1, 16, 0.1), round_idx=1, seed=0
    )
    assert torch.equal(global_params, before)
    for r in results:
        assert float(r.delta.norm()) > 0
    # every client starts from the same global model: client 1 alone gives the same delta
    alone = SequentialTrainer().train(
        model, global_params, ds, [1], FitInstructions(1, 16, 0.1), round_idx=1, seed=0
    )
    assert torch.equal(alone[0].delta, results[1].delta)
