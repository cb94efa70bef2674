"""Issue 16: attacks under the deployment's default bounds, measured in simulation.

``greenfl serve`` applies ``deploy.server.plausible.bound_round`` to every round (the norm bound,
the weight cap, and the declared-weight cap for clients bringing their own data). This
bench applies the same function, with the deployment's default DeployConfig, to simulated
attacks on the digits IID scenario of bench/safety_price.py (100 clients, 10 a round,
30 rounds, 20% attackers, FedAvg), seeds 0-2:

- clean: no attack;
- scaling x1e6: attackers send their update x1e6;
- label flip + 1e9 claimed samples: attackers train on flipped labels and, as clients with
  their own data, claim 1e9 samples. A deployment refuses a claim over
  ``deploy.max_client_samples`` at join, so the largest claim it admits is that cap; the
  round's bound then weighs a declared client at most as a typical one.
- label flip alone (reference: the label flip's own harm, without the inflation);
- label flip + 1e9 claimed samples under the earlier defaults (no join cap, the 10x weight
  cap only), for comparison.

Run: python bench/deploy_defaults.py [--seeds 0 1 2] [--out /tmp/deploy_defaults]
Prints one line per scenario and a markdown table."""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
from collections.abc import Sequence
from pathlib import Path

from greenfl.api import run
from greenfl.clients.transport import ClientTransport, Completion, TransportWrapper, with_reports
from greenfl.config import RunConfig
from greenfl.config.deploy import DeployConfig
from greenfl.deploy.server.plausible import bound_round

# The module, not greenfl.factories.compose (the package's function of that name).
build = importlib.import_module("greenfl.factories.compose")
CLAIMED_SAMPLES = 10**9
BASE = Path(__file__).parent / "results/safety/digits_IID/scaling/fedavg-seed0/config.json"
DEFAULTS = DeployConfig()
MODE = {"inflate": False, "before": False}
_orig_attacked = build.attacked_transport


class DeployBounded(TransportWrapper):
    """The in-process transport, with the deployment's defaults applied to each round as
    ``greenfl serve`` applies them: attackers are clients with their own (claimed) data."""

    def __init__(
        self, inner: ClientTransport, malicious: Sequence[int], largest_partition: int
    ) -> None:
        super().__init__(inner)
        self.malicious = frozenset(int(c) for c in malicious)
        self.largest_partition = largest_partition

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        reports = [c.report for c in batch]
        declared: frozenset[int] = frozenset()
        if MODE["inflate"]:
            # Before issue 16's fix: no join cap and no declared-weight cap, the 10x only.
            cap = None if MODE["before"] else DEFAULTS.max_client_samples
            claim = CLAIMED_SAMPLES if cap is None else min(CLAIMED_SAMPLES, cap)
            reports = [
                r._replace(num_samples=claim) if int(r.client_id) in self.malicious else r
                for r in reports
            ]
            declared = frozenset() if MODE["before"] else self.malicious
        return with_reports(batch, bound_round(
            reports, DEFAULTS.norm_bound_factor, DEFAULTS.sample_bound_factor, declared,
            self.largest_partition,
        ))  # fmt: skip


def _patched(
    cfg: RunConfig, transport: ClientTransport, malicious: Sequence[int]
) -> ClientTransport:
    largest = int(transport.dataset.client_sizes().max())  # type: ignore[attr-defined]
    return DeployBounded(_orig_attacked(cfg, transport, malicious), malicious, largest)


def config_for(scenario: str, seed: int) -> RunConfig:
    c = json.loads(BASE.read_text())
    c["seed"] = seed
    c["report"]["html"] = False
    if scenario == "clean":
        c["attack"] = {"name": "none", "fraction": 0.0}
    elif scenario == "scaling x1e6":
        c["attack"].update(name="scaling", scale=1e6, fraction=0.2)
    else:
        c["attack"].update(name="label_flip", fraction=0.2)
    return RunConfig.model_validate(c)


SCENARIOS = [  # (name, inflate, before)
    ("clean", False, False),
    ("scaling x1e6", False, False),
    ("label flip + 1e9 claimed samples", True, False),
    ("label flip alone", False, False),
    ("label flip + 1e9 claimed samples, earlier defaults (10x cap only)", True, True),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("/tmp/deploy_defaults"))
    args = ap.parse_args()
    build.attacked_transport = _patched  # the in-process round, bounded as a deployment's
    rows = []
    for name, inflate, before in SCENARIOS:
        MODE.update(inflate=inflate, before=before)
        accs = []
        for seed in args.seeds:
            d = args.out / f"{''.join(ch if ch.isalnum() else '_' for ch in name)}-{seed}"
            run(config_for(name, seed), d, overwrite=True)
            accs.append(json.loads((d / "summary.json").read_text())["final_accuracy"])
        rows.append((name, accs))
        print(f"{name}: {[round(a, 4) for a in accs]} mean {statistics.mean(accs):.4f}",
              flush=True)  # fmt: skip
    clean = statistics.mean(rows[0][1])
    print("\n| scenario | final accuracy, seeds " + ", ".join(map(str, args.seeds))
          + " | mean | vs clean |\n|---|---|---|---|")  # fmt: skip
    for name, accs in rows:
        m = statistics.mean(accs)
        print(f"| {name} | {', '.join(f'{a:.4f}' for a in accs)} | {m:.4f} | "
              f"{(m - clean) * 100:+.1f} points |")  # fmt: skip


if __name__ == "__main__":
    main()
