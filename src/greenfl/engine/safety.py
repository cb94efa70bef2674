"""The safety sections of a run, wired: the simulated attack (who is malicious, their
poisoned data and attacked updates, the backdoor's probe). Privacy and secure aggregation
join here too, so that the loop itself stays unaware of them."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch import nn

from greenfl.attacks import (
    DATA_ATTACKS,
    PoisonedDataset,
    UpdateAttack,
    malicious_clients,
)
from greenfl.clients.attacking import AttackingTransport
from greenfl.clients.transport import ClientTransport
from greenfl.config import AttackConfig, RunConfig
from greenfl.core.errors import ConfigError
from greenfl.data.base import FederatedDataset
from greenfl.engine.privacy_account import PrivacyAccount
from greenfl.engine.probes import BackdoorProbe, RoundProbe
from greenfl.engine.records import Callback
from greenfl.strategy import Strategy


def attackers_of(cfg: RunConfig, dataset: FederatedDataset) -> np.ndarray:
    """The malicious clients' ids (none without an attack)."""
    return malicious_clients(dataset.num_clients, cfg.attack.fraction, cfg.seed)


def attacked_dataset(
    cfg: RunConfig, dataset: FederatedDataset, malicious: Sequence[int]
) -> FederatedDataset:
    """``dataset`` with the malicious clients' training data poisoned, for data attacks."""
    a = cfg.attack
    if a.name not in DATA_ATTACKS:
        return dataset
    return PoisonedDataset(
        dataset, malicious, a.name, cfg.seed, a.backdoor_target, a.backdoor_share, a.trigger_size
    )


def update_attack(attack: AttackConfig, clients_per_round: int, seed: int) -> UpdateAttack:
    """The attack on updates, its scale defaulted per attack (see AttackConfig.scale)."""
    defaults = {"scaling": float(clients_per_round)}
    scale = attack.scale if attack.scale is not None else defaults.get(attack.name, 1.0)
    z = attack.scale if attack.name == "alie" else None
    return UpdateAttack(attack.name, scale, seed, z)


def attacked_transport(
    cfg: RunConfig, transport: ClientTransport, malicious: Sequence[int]
) -> ClientTransport:
    """In-process clients of which the malicious ones send attacked updates."""
    if cfg.attack.name == "none":
        return transport
    attack = update_attack(cfg.attack, cfg.train.clients_per_round, cfg.seed)
    return AttackingTransport(transport, attack, malicious)


def refuse_attack_in_deployment(cfg: RunConfig) -> None:
    if cfg.attack.name != "none":
        raise ConfigError(
            "attack.name: a deployment's server simulates no attack; a test client mounts "
            "one with `greenfl join --attack NAME`"
        )


def safety_probes(
    cfg: RunConfig, model: nn.Module, dataset: FederatedDataset, strategy: Strategy
) -> tuple[list[RoundProbe], list[Callback]]:
    """The round probes the run's safety sections ask for, and the callbacks that stop
    it (the privacy budget)."""
    probes: list[RoundProbe] = []
    guards: list[Callback] = []
    if cfg.privacy.mode != "none":
        account = privacy_account(cfg, strategy, dataset.client_sizes())
        probes.append(account)
        guards.append(account.privacy_budget_spent)
    if isinstance(dataset, PoisonedDataset) and dataset.attack == "backdoor":
        a = cfg.attack
        probes.append(
            BackdoorProbe(
                model, dataset.test_data(), tuple(dataset.input_shape), a.backdoor_target,
                a.trigger_size, dataset.trigger_value,
            )  # fmt: skip
        )
    return probes, guards


def privacy_account(cfg: RunConfig, strategy: Strategy, client_sizes: np.ndarray) -> PrivacyAccount:
    """The run's privacy accountant, with the worst round the config allows: the largest
    cohort asked (over-selection and adapt arms included), the most epochs, the smallest
    batch."""
    t, a = cfg.train, cfg.adapt
    cohort = max([t.clients_per_round, *a.clients_per_round])
    cohort = math.ceil(cohort * (1 + cfg.fleet.over_selection))
    return PrivacyAccount(
        cfg.privacy, strategy, client_sizes, cohort,
        max([t.local_epochs, *a.local_epochs]), min([t.batch_size, *a.batch_size]),
        t.max_local_steps,
    )  # fmt: skip
