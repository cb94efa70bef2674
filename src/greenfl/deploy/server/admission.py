"""Who may join a deployment, in the order that keeps a flood from locking others out
(docs/trust.md, "Before authentication"): the protocol and the token first (a MAC, no
shared state), then the joining client id's own rate budget and its source address's,
then its enrolment (enrolment.py)."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import Revocations, TokenClaims
from greenfl.deploy.server.enrolment import Admission, Enrolments
from greenfl.deploy.server.ratelimit import BoundedLog, KeyedBuckets, source_of
from greenfl.deploy.server.sessions import Refusal, admit, set_entry
from greenfl.deploy.server.settings import DeploySettings
from greenfl.deploy.server.trust import TrustSettings
from greenfl.fleet.population import Population

CLIENT_BURST = 5  # a client's reconnects in a row before its rate applies
SOURCE_BURST = 100  # joins in a row from one address (clients behind one NAT)


@dataclass(frozen=True)
class Admitted:
    """A join the server accepts: its token's claims (None without per-client tokens),
    its declared local samples (0: its partition) and how it is accounted."""

    claims: TokenClaims | None
    local_n: int
    admission: Admission


class Gatekeeper:
    """Admission of joins, for any gRPC thread."""

    def __init__(
        self,
        settings: DeploySettings,
        trust: TrustSettings,
        population: Population,
        token: str | None,
        notes: BoundedLog,
    ) -> None:
        self.settings = settings
        self.notes = notes  # warnings on joins that are admitted all the same
        self.trust = trust
        self.population = population
        self.token = token
        self.enrolments = Enrolments.of(population, trust.enrolment_file, trust.self_described)
        for cid, entry in self.enrolments.listed_entries().items():
            set_entry(population, cid, entry)  # before round 1: the enrolment file's
        self.revocations = Revocations(trust.revocation_file)
        self._sources = KeyedBuckets(settings.join_rate_per_s, burst=SOURCE_BURST)
        self._clients = KeyedBuckets(trust.join_rate_per_client_per_s, burst=CLIENT_BURST)

    def admit(self, request: pb.JoinRequest, peer: str) -> Admitted:
        """The join of ``request`` from ``peer``, or a Refusal saying why not."""
        s, cid = self.settings, int(request.client_id)
        claims, local_n = admit(
            request,
            self.population,
            self.token,
            s.max_client_samples,
            s.per_client_tokens,
            self.trust.run_id,
            self.revocations.current(),
        )
        self._rate_limit(cid, source_of(peer))
        admission = self.enrolments.admit(cid, claims, request.device, local_n)
        if claims is not None and not claims.run_id and self.trust.run_id:
            self.notes.warning(
                f"unbound {cid}", "client %d joined with a token bound to no run", cid
            )
        if admission.flag is not None:
            self.notes.warning(f"self {cid}", "client %d: %s", cid, admission.flag)
        return Admitted(claims, local_n, admission)

    def revoked_since(self, cid: int, token_issued_at: float | None) -> bool:
        """Whether the token client ``cid`` joined with (issued at ``token_issued_at``) has
        been revoked since."""
        if token_issued_at is None:
            return False
        at = self.revocations.current().get(cid)
        return at is not None and token_issued_at <= at

    def _rate_limit(self, cid: int, source: str) -> None:
        """Refusal (RESOURCE_EXHAUSTED, "rate-limited by the server") if client ``cid`` or
        the address ``source`` joined too often of late; each spends its own budget."""
        if not self._clients.take(cid):
            raise Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate-limited by the server: client {cid} joined too often "
                f"(deploy.join_rate_per_client_per_s); retry in "
                f"{self._clients.retry_after_s():.3g} s",
                f"rate-limited client {cid}",
            )
        if not self._sources.take(source):
            raise Refusal(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"rate-limited by the server: too many joins from {source} "
                f"(deploy.join_rate_per_s); retry in {self._sources.retry_after_s():.3g} s",
                f"rate-limited source {source}",
            )
