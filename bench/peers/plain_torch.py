"""FedAvg as a plain PyTorch per-client loop (no framework), one JSON result line at the end.

    bench/.venv-peers/bin/python bench/peers/plain_torch.py --workload W1

One model object; per sampled client: copy the global weights into it, run the local epoch, add
n_k * weights to the running sum; the new global model is sum / sum(n_k). Central evaluation
on the test set after every round. torch threads: PyTorch's default (one per core).
"""

import time

T0 = time.perf_counter()

import argparse  # noqa: E402

import torch  # noqa: E402
from torch.nn.utils import parameters_to_vector  # noqa: E402

import workloads  # noqa: E402


@torch.no_grad()
def load_flat(params: list[torch.Tensor], vec: torch.Tensor) -> None:
    """Copy ``vec`` into the parameters in place (``vector_to_parameters`` would alias it)."""
    i = 0
    for p in params:
        p.copy_(vec[i : i + p.numel()].view_as(p))
        i += p.numel()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", choices=sorted(workloads.SPECS), required=True)
    args = ap.parse_args()

    monitor = workloads.Monitor().start()
    data = workloads.load(args.workload)
    spec = data.spec
    model = workloads.make_model(args.workload)
    params = list(model.parameters())
    global_vec = parameters_to_vector(params).detach().clone()
    acc = workloads.evaluate(model, data.test_x, data.test_y)[1]
    history = [acc]

    t_loop = time.perf_counter()
    for cohort in workloads.cohorts(args.workload):
        acc_sum = torch.zeros_like(global_vec)
        total = 0
        for k in cohort:
            x, y = data.client_x[k], data.client_y[k]
            load_flat(params, global_vec)
            workloads.local_train(
                model, x, y, spec.lr, spec.batch_size, spec.local_epochs, spec.max_steps
            )
            with torch.no_grad():
                acc_sum.add_(parameters_to_vector(params), alpha=len(y))
            total += len(y)
        global_vec = acc_sum / total
        load_flat(params, global_vec)
        acc = workloads.evaluate(model, data.test_x, data.test_y)[1]
        history.append(acc)
    loop_s = time.perf_counter() - t_loop

    workloads.report(
        "plain_torch",
        args.workload,
        T0,
        loop_s,
        monitor,
        acc,
        version=f"torch {torch.__version__}",
        accuracy_per_round=[round(a, 4) for a in history],
    )


if __name__ == "__main__":
    main()
