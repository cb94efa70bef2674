"""Malicious clients in simulation: a transport between the clients and the server's
checks that replaces the malicious clients' updates with attacked ones. What the server
then sees is what a real attacker would send; nothing downstream knows who lied."""

from __future__ import annotations

from collections.abc import Sequence

from greenfl.attacks import UpdateAttack
from greenfl.clients.transport import ClientTransport, Completion, TransportWrapper, with_reports


class AttackingTransport(TransportWrapper):
    """``inner``'s clients, the ``malicious`` ones sending ``attack``'s updates."""

    def __init__(
        self, inner: ClientTransport, attack: UpdateAttack, malicious: Sequence[int]
    ) -> None:
        super().__init__(inner)
        self.attack = attack
        self.malicious = frozenset(int(c) for c in malicious)

    def _collected(self, batch: list[Completion]) -> list[Completion]:
        # The attackers see what they could in a real round: the honest updates that
        # arrive with theirs (all of a synchronous round's), per model version.
        out = list(batch)
        for version in sorted({c.task.round_idx for c in batch}):
            idx = [i for i, c in enumerate(batch) if c.task.round_idx == version]
            reports = [batch[i].report for i in idx]
            trained = {r.client_id: r.delta for r in reports if r.delta is not None}
            bad = {c: d for c, d in trained.items() if c in self.malicious}
            if not bad:
                continue
            good = {c: d for c, d in trained.items() if c not in self.malicious}
            sent = self.attack.apply(version, bad, good)
            for i in idx:
                r = batch[i].report
                if r.client_id in sent:
                    out[i] = with_reports([batch[i]], [r._replace(delta=sent[r.client_id])])[0]
        return out
