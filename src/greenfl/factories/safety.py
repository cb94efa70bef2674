"""The safety sections of a run, composed: the simulated attack (who is malicious, their
poisoned data and attacked updates, the backdoor's probe), differential privacy's
accountant, and secure aggregation's price. The engine stays unaware of all of them: they
are a dataset, transports, a strategy wrapper and observers like any other."""

from __future__ import annotations

import numpy as np
from torch import nn

from greenfl.attacks import DATA_ATTACKS, PoisonedDataset, UpdateAttack, malicious_clients
from greenfl.clients.attacking import AttackingTransport
from greenfl.clients.secagg_cost import SecAggCostStrategy, SecAggCostTransport
from greenfl.clients.transport import ClientTransport
from greenfl.config import AttackConfig, RunConfig
from greenfl.core.errors import ConfigError
from greenfl.data.base import FederatedDataset
from greenfl.engine.backdoor import BackdoorProbe
from greenfl.engine.observers import RoundObserver
from greenfl.engine.privacy_account import PrivacyAccount, PrivacySettings
from greenfl.factories.world import largest_cohort
from greenfl.strategy.base import Strategy


def attackers_of(cfg: RunConfig, num_clients: int) -> np.ndarray:
    """The malicious clients' ids (none without an attack)."""
    return malicious_clients(num_clients, cfg.attack.fraction, cfg.seed)


def attacked_dataset(
    cfg: RunConfig, dataset: FederatedDataset, malicious: np.ndarray
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
    cfg: RunConfig, transport: ClientTransport, malicious: np.ndarray
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


def secagg_priced(
    cfg: RunConfig, transport: ClientTransport, strategy: Strategy, numel: int
) -> tuple[ClientTransport, Strategy]:
    """With secagg.enabled in simulation, every report and the server's work carry the
    protocol's cost (the sum itself is the plain one)."""
    if not cfg.secagg.enabled:
        return transport, strategy
    sa = cfg.secagg
    return (
        SecAggCostTransport(transport, numel, sa.neighbours, sa.threshold),
        SecAggCostStrategy(strategy, sa.neighbours, sa.threshold),
    )


def safety_observers(
    cfg: RunConfig, model: nn.Module, dataset: FederatedDataset, strategy: Strategy
) -> list[RoundObserver]:
    """The observers the safety sections ask for: the privacy accountant (which stops the
    run at its budget) and the backdoor's probe."""
    observers: list[RoundObserver] = []
    if cfg.privacy.mode != "none":
        observers.append(privacy_account(cfg, strategy, dataset.client_sizes()))
    if isinstance(dataset, PoisonedDataset) and dataset.attack == "backdoor":
        a = cfg.attack
        observers.append(
            BackdoorProbe(
                model,
                dataset.test_data(),
                tuple(dataset.input_shape),
                a.backdoor_target,
                a.trigger_size,
                dataset.trigger_value,
            )
        )
    return observers


def privacy_account(cfg: RunConfig, strategy: Strategy, client_sizes: np.ndarray) -> PrivacyAccount:
    """The run's privacy accountant, with the worst round the config allows: the largest
    cohort asked (over-selection and adapt arms included), the most epochs, the smallest
    batch."""
    t, a, dp = cfg.train, cfg.adapt, cfg.privacy
    settings = PrivacySettings(
        dp.mode, dp.noise_multiplier, dp.clip_norm, dp.delta, dp.epsilon_budget, dp.sampling
    )
    return PrivacyAccount(
        settings,
        strategy,
        client_sizes,
        largest_cohort(cfg),
        max([t.local_epochs, *a.local_epochs]),
        min([t.batch_size, *a.batch_size]),
        t.max_local_steps,
    )
