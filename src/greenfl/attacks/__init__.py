"""Attacks simulated against a run: malicious clients chosen by seed that poison their data
(label flipping, a pixel-pattern backdoor) or their updates (sign flip, scaling / model
replacement, Gaussian noise, "a little is enough"). The engine applies them between the
clients and the server's checks; strategies never learn who is malicious."""

from greenfl.attacks.choose import malicious_clients
from greenfl.attacks.data import DATA_ATTACKS, PoisonedDataset, backdoor_success, stamp_trigger
from greenfl.attacks.updates import UpdateAttack, alie_z

ATTACKS: tuple[str, ...] = (
    "none",
    "sign_flip",
    "scaling",
    "noise",
    "label_flip",
    "alie",
    "backdoor",
)

__all__ = [
    "ATTACKS",
    "DATA_ATTACKS",
    "PoisonedDataset",
    "UpdateAttack",
    "alie_z",
    "backdoor_success",
    "malicious_clients",
    "stamp_trigger",
]
