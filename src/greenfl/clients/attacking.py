"""Malicious clients in simulation: a transport between the clients and the server's
checks that replaces the malicious clients' updates with attacked ones. What the server
then sees is what a real attacker would send; nothing downstream knows who lied."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from greenfl.attacks import UpdateAttack
from greenfl.clients.transport import ClientTransport, TransportWrapper
from greenfl.core.messages import ClientReport, FitInstructions


class AttackingTransport(TransportWrapper):
    """``inner``'s clients, the ``malicious`` ones sending ``attack``'s updates."""

    def __init__(
        self, inner: ClientTransport, attack: UpdateAttack, malicious: Sequence[int]
    ) -> None:
        super().__init__(inner)
        self.attack = attack
        self.malicious = frozenset(int(c) for c in malicious)

    def fit(
        self,
        round_idx: int,
        cohort: Sequence[int],
        global_params: torch.Tensor,
        instructions: FitInstructions,
    ) -> list[ClientReport]:
        reports = self.inner.fit(round_idx, cohort, global_params, instructions)
        trained = {r.client_id: r.delta for r in reports if r.delta is not None}
        bad = {c: d for c, d in trained.items() if c in self.malicious}
        if not bad:
            return reports
        good = {c: d for c, d in trained.items() if c not in self.malicious}
        sent = self.attack.apply(round_idx, bad, good)
        return [r._replace(delta=sent[r.client_id]) if r.client_id in sent else r for r in reports]
