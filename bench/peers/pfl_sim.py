"""FedAvg in pfl-research's simulator (PyTorch backend), one JSON result line at the end.

    bench/.venv-peers/bin/python bench/peers/pfl_sim.py --workload W1

pfl as its benchmarks set it up: a ``FederatedDataset`` of per-user numpy arrays with the
``minimize_reuse`` user sampler, ``PyTorchModel`` (local optimizer SGD; central optimizer SGD with
lr 1.0, so the averaged model difference is applied as is), ``FederatedAveraging``,
``SimulatedBackend`` with ``WeightByDatapoints`` (FedAvg weighted by client sample count) and a
``CentralEvaluationCallback`` on the central test set every iteration (pfl evaluates before
training and after central iterations 1..R-1, i.e. after rounds 2..R; the accuracy after the
last round is the last of these). ``evaluation_frequency = R`` so that pfl's per-user
before/after-training evaluation runs in the first iteration only. pfl's default platform prints
its metrics every iteration (kept). Single process (world size 1). torch threads: PyTorch's
default; pfl sets none.
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
from importlib.metadata import version  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from pfl.aggregate.simulate import SimulatedBackend  # noqa: E402
from pfl.aggregate.weighting import WeightByDatapoints  # noqa: E402
from pfl.algorithm import FederatedAveraging, NNAlgorithmParams  # noqa: E402
from pfl.callback.central_evaluation import CentralEvaluationCallback  # noqa: E402
from pfl.data.dataset import Dataset  # noqa: E402
from pfl.data.federated_dataset import FederatedDataset  # noqa: E402
from pfl.data.sampling import get_user_sampler  # noqa: E402
from pfl.hyperparam import NNEvalHyperParams, NNTrainHyperParams  # noqa: E402
from pfl.metrics import Weighted  # noqa: E402
from pfl.model.pytorch import PyTorchModel  # noqa: E402

import workloads  # noqa: E402


class PflNet(torch.nn.Module):
    """The workload's network plus the ``loss`` and ``metrics`` methods pfl requires."""

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, x: torch.Tensor, y: torch.Tensor, eval: bool = False) -> torch.Tensor:
        self.eval() if eval else self.train()
        return torch.nn.functional.cross_entropy(self(x), y.long())

    @torch.no_grad()
    def metrics(self, x: torch.Tensor, y: torch.Tensor, eval: bool = True) -> dict:
        self.eval() if eval else self.train()
        logits = self(x)
        y = y.long()  # pfl hands every array over as float32
        n = len(y)
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct = (logits.argmax(dim=1) == y).sum().item()
        return {"loss": Weighted(loss, n), "accuracy": Weighted(correct, n)}


class LastCentralEval(CentralEvaluationCallback):
    """CentralEvaluationCallback that also keeps each evaluation's accuracy."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.accuracies: list[float] = []

    def _eval(self, model):
        stop, metrics = super()._eval(model)
        for metric_name, value in metrics:
            if str(metric_name) == "Central val | accuracy":
                self.accuracies.append(float(getattr(value, "overall_value", value)))
        return stop, metrics


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(workloads.SPECS), required=True)
    args = ap.parse_args()

    monitor = workloads.Monitor().start()
    name = args.workload
    spec = workloads.SPECS[name]
    data = workloads.load(name)
    np.random.seed(workloads.SEED)  # pfl's samplers draw from numpy's global RNG

    def make_dataset(user_id: int) -> Dataset:
        return Dataset((data.client_x[user_id], data.client_y[user_id]), user_id=str(user_id))

    train_data = FederatedDataset(
        make_dataset, get_user_sampler("minimize_reuse", list(range(spec.num_clients)))
    )
    test_data = Dataset((data.test_x, data.test_y))

    net = PflNet(workloads.make_model(name))
    model = PyTorchModel(
        model=net,
        local_optimizer_create=torch.optim.SGD,
        central_optimizer=torch.optim.SGD(net.parameters(), lr=1.0),
    )
    backend = SimulatedBackend(
        training_data=train_data, val_data=None, postprocessors=[WeightByDatapoints()]
    )
    eval_params = NNEvalHyperParams(local_batch_size=None)
    central_eval = LastCentralEval(test_data, model_eval_params=eval_params, frequency=1)

    t = time.perf_counter()
    FederatedAveraging().run(
        algorithm_params=NNAlgorithmParams(
            central_num_iterations=spec.rounds,
            # pfl evaluates every trained user before and after local training on iterations
            # where ``iteration % evaluation_frequency == 0``; the other frameworks do not, so
            # keep that to iteration 0 only (it cannot be switched off entirely).
            evaluation_frequency=spec.rounds,
            train_cohort_size=spec.clients_per_round,
            val_cohort_size=None,
        ),
        backend=backend,
        model=model,
        model_train_params=NNTrainHyperParams(
            # pfl takes epochs or steps, not both (W5 caps local work by steps)
            local_num_epochs=None if spec.max_steps else spec.local_epochs,
            local_num_steps=spec.max_steps or None,
            local_learning_rate=spec.lr,
            local_batch_size=spec.batch_size,
        ),
        model_eval_params=eval_params,
        callbacks=[central_eval],
    )
    loop_s = time.perf_counter() - t

    workloads.report(
        "pfl",
        name,
        T0,
        loop_s,
        monitor,
        central_eval.accuracies[-1],
        version=f"pfl {version('pfl')}, torch {torch.__version__}",
        accuracy_per_round=[round(a, 4) for a in central_eval.accuracies],
    )


if __name__ == "__main__":
    main()
