"""Enrolled identity (issue 29, item 1) and joins before authentication (item 5): a client
is accounted as the operator enrolled it (fleet, enrolment file, token); one that claims
another device is refused unless deploy.self_described, and then flagged. The token is
checked before any budget is spent, and each client id and source address has its own."""

from __future__ import annotations

import re
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch

from greenfl.clients.validate import PROTOCOL_VERSION
from greenfl.compression import CODECS  # noqa: F401  (registers the codecs)
from greenfl.config import CompressionConfig, load_config
from greenfl.core.errors import ConfigError
from greenfl.core.params import ParamSpec
from greenfl.deploy import greenfl_pb2 as pb
from greenfl.deploy.security import TokenClaims, issue_token
from greenfl.deploy.server.checks import UpdateRules
from greenfl.deploy.server.enrolment import Enrolments, read_enrolment_file
from greenfl.deploy.server.serve import settings_of
from greenfl.deploy.server.servicer import FederationServicer
from greenfl.deploy.server.sessions import Refusal
from greenfl.factories import codec_for
from greenfl.fleet.catalog import load_fleet
from greenfl.fleet.population import Population

SECRET = "s3cret"
FLEET = load_fleet()


def population(n: int = 8) -> Population:
    return Population.assign(FLEET, np.full(n, 100), seed=0)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---- enrolment ----------------------------------------------------------------------
def test_the_enrolment_file_names_fleet_entries(tmp_path: Path) -> None:
    ok = write(
        tmp_path / "e.toml",
        '[[client]]\nid = 3\ndevice = "phone-mid"\nnetwork = "lte"\nregion = "IN"\nsamples = 500\n',
    )
    got = read_enrolment_file(ok, FLEET)
    assert got[3].device == "phone-mid" and got[3].max_samples == 500
    assert got[3].source == "enrolment file"
    for text, msg in (
        ('[[client]]\nid = 3\ndevice = "phone-mid"\nnetwork = "lte"\nregion = "NO"\n',
         "no population entry phone-mid/lte/NO"),
        ('[[client]]\nid = 3\ndevice = "x"\nnetwork = "lte"\n', "needs id, device"),
        ('[[client]]\nid = 3\ndevice = "rpi4"\nnetwork = "wifi"\nregion = "ZA"\ncpu = 1\n',
         "unknown key"),
        ('[[client]]\nid = 1\ndevice = "rpi4"\nnetwork = "wifi"\nregion = "ZA"\n' * 2,
         "enrolled twice"),
        ('[[client]]\nid = -1\ndevice = "rpi4"\nnetwork = "wifi"\nregion = "ZA"\n',
         "not a client id"),
        ("x = 1\n", "only [[client]]"),
    ):  # fmt: skip
        with pytest.raises(ConfigError, match=re.escape(msg)):
            read_enrolment_file(write(tmp_path / "bad.toml", text), FLEET)


def test_a_client_claiming_another_device_is_refused_unless_self_described() -> None:
    pop = population()
    strict = Enrolments(pop, {}, self_described=False)
    enrolled = strict.enrolment(3, None)
    assert enrolled.source == "fleet"
    assert enrolled.device == FLEET.population[int(pop.entry[3])].device
    assert strict.admit(3, None, "", 0).entry == int(pop.entry[3])
    assert strict.admit(3, None, enrolled.device, 0).flag is None
    other = next(d.name for d in FLEET.devices if d.name != enrolled.device)
    with pytest.raises(Refusal) as r:
        strict.admit(3, None, other, 0)
    assert r.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert f"enrolled as {enrolled.device}" in r.value.message
    assert f"claims device {other!r}" in r.value.message
    assert "deploy.self_described = false" in r.value.message

    lax = Enrolments(pop, {}, self_described=True)
    adm = lax.admit(3, None, other, 0)
    assert FLEET.population[adm.entry].device == other
    assert adm.flag == f"self-described: claims device {other}, enrolled as {enrolled.device}"


def test_the_token_enrols_over_the_file_and_the_file_over_the_fleet(tmp_path: Path) -> None:
    pop = population()
    listed = read_enrolment_file(
        write(
            tmp_path / "e.toml",
            '[[client]]\nid = 3\ndevice = "rpi4"\nnetwork = "wifi"\nregion = "ZA"\nsamples = 50\n',
        ),
        FLEET,
    )
    book = Enrolments(pop, listed, self_described=False)
    assert book.enrolment(3, None).device == "rpi4"
    by_token = TokenClaims(3, device="jetson-nano", network="ethernet", region="NO")
    adm = book.admit(3, by_token, "", 0)
    e = FLEET.population[adm.entry]
    assert (e.device, e.network, e.region) == ("jetson-nano", "ethernet", "NO")
    assert adm.enrolment.source == "token" and adm.enrolment.max_samples == 50
    with pytest.raises(Refusal, match="declares 1000000 local samples; it is enrolled with at"):
        book.admit(3, by_token, "", 1_000_000)
    with pytest.raises(Refusal, match="which this server's fleet does not have"):
        book.admit(3, TokenClaims(3, device="rpi4", network="lte", region="NO"), "", 0)


# ---- Join through the servicer ------------------------------------------------------
class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class Context:
    def __init__(self, peer: str) -> None:
        self._peer = peer

    def peer(self) -> str:
        return self._peer

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)

    def invocation_metadata(self) -> tuple[()]:
        return ()


def servicer(*overrides: str) -> FederationServicer:
    cfg = load_config(
        None,
        ["data.num_clients=8", "train.clients_per_round=2", "deploy.run_id=runA", *overrides],
    )
    model = torch.nn.Linear(2, 2)
    rules = UpdateRules(codec_for(CompressionConfig()), ParamSpec.of(model), 1_000_000, None)
    return FederationServicer(settings_of(cfg), population(), rules, token=SECRET)


def join(svc: FederationServicer, cid: int, token: str, peer: str, device: str = "") -> str:
    req = pb.JoinRequest(
        protocol_version=PROTOCOL_VERSION, token=token, client_id=cid, device=device
    )
    try:
        return svc.Join(req, Context(peer)).device  # type: ignore[arg-type]
    except Aborted as a:
        return f"{a.code.name}: {a.details}"


def token(cid: int, run: str = "runA", **kw: str) -> str:
    return issue_token(SECRET, TokenClaims(cid, run_id=run, issued_at=1.0, **kw))


def test_a_flood_without_tokens_spends_no_ones_budget() -> None:
    svc = servicer()
    flood = [join(svc, 0, "forged", "ipv4:127.0.0.1:4000") for _ in range(500)]
    assert set(flood) == {"UNAUTHENTICATED: invalid token"}
    # the same source address, right after: the legitimate clients get in
    for cid in (0, 1):
        got = join(svc, cid, token(cid), "ipv4:127.0.0.1:4001")
        assert got in {d.name for d in FLEET.devices}, got


def test_rate_limits_are_per_client_id_and_per_source() -> None:
    svc = servicer()
    tok = token(2)
    got = [join(svc, 2, tok, f"ipv4:10.0.0.{i}:1") for i in range(7)]
    assert all(not g.startswith("RESOURCE_EXHAUSTED") for g in got[:5])  # a burst of 5
    assert got[5].startswith("RESOURCE_EXHAUSTED: rate-limited by the server: client 2")
    # client 3 on the same source as client 2's refused joins still gets in
    assert not join(svc, 3, token(3), "ipv4:10.0.0.5:2").startswith("RESOURCE_EXHAUSTED")
    # one source joining as many clients runs out of its own budget (burst 100)
    svc = servicer("deploy.join_rate_per_client_per_s=1000", "deploy.join_rate_per_s=0.001")
    # On a fast host the 8 client ids may spend their own buckets (burst 5) in between;
    # those refusals spend nothing of the source's, so count admitted joins, not attempts.
    admitted, spray = 0, ""
    for i in range(1000):
        spray = join(svc, i % 8, token(i % 8), "ipv4:10.9.9.9:7")
        if "too many joins" in spray:
            break
        admitted += not spray.startswith("RESOURCE_EXHAUSTED")
    assert spray.startswith("RESOURCE_EXHAUSTED: rate-limited by the server: too many joins")
    assert admitted == 100
    time.sleep(0.05)  # client 1's own bucket (1000/s) refills after the spray spent it
    assert not join(svc, 1, token(1), "ipv4:10.9.9.8:7").startswith("RESOURCE_EXHAUSTED")


def test_join_refuses_lies_expired_and_other_run_tokens() -> None:
    svc = servicer()
    peer = "ipv4:127.0.0.1:9"
    enrolled = svc.gate.enrolments.enrolment(3, None).device
    liar = next(d.name for d in FLEET.devices if d.name != enrolled)
    assert join(svc, 3, token(3), peer, device=liar).startswith(
        f"PERMISSION_DENIED: client 3 is enrolled as {enrolled}"
    )
    assert join(svc, 4, token(4, run="runB"), peer).startswith(
        "UNAUTHENTICATED: this token admits to run runB"
    )
    expired = issue_token(SECRET, TokenClaims(5, run_id="runA", issued_at=1.0, expires_at=2.0))
    assert join(svc, 5, expired, peer).startswith("UNAUTHENTICATED: this token expired")
    # enrolled by its token: accounted as the token says, whatever the fleet assigned
    tok = token(6, device="jetson-nano", network="ethernet", region="NO")
    assert join(svc, 6, tok, peer) == "jetson-nano"


def test_self_described_joins_are_flagged() -> None:
    svc = servicer("deploy.self_described=true")
    enrolled = svc.gate.enrolments.enrolment(3, None).device
    liar = next(d.name for d in FLEET.devices if d.name != enrolled)
    assert join(svc, 3, token(3), "ipv4:127.0.0.1:9", device=liar) == liar
    assert svc.by_client[3].flag == f"self-described: claims device {liar}, enrolled as {enrolled}"


def test_the_servicer_implements_every_rpc_of_the_protocol() -> None:
    # gRPC answers a method the servicer does not override with UNIMPLEMENTED, which a
    # client reads as a lost connection: every method of greenfl.proto is served.
    methods = pb.DESCRIPTOR.services_by_name["Federation"].methods_by_name
    assert set(methods) <= set(vars(FederationServicer)), set(methods) - set(
        vars(FederationServicer)
    )
