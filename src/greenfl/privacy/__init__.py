"""Differential privacy (docs/privacy.md): central user-level DP-FedAvg with fixed or
adaptive clipping (``central``), sample-level DP-SGD on each client (``local``, imported on
its own: it loads Opacus), their RDP accounting (``accountant``) and the budget check
(``budget``). A policy package: it imports core and strategy, never the config or the
engine."""

from __future__ import annotations

from greenfl.privacy.accountant import (
    SAMPLINGS,
    CentralAccountant,
    LocalAccountant,
    dp_sgd_sample_rate,
)
from greenfl.privacy.budget import PrivacyBudget
from greenfl.privacy.central import DPFedAvg, DpRoundFacts, update_noise_multiplier

__all__ = [
    "SAMPLINGS",
    "CentralAccountant",
    "DPFedAvg",
    "DpRoundFacts",
    "LocalAccountant",
    "PrivacyBudget",
    "dp_sgd_sample_rate",
    "update_noise_multiplier",
]
