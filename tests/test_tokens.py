"""Per-client tokens with a life (issue 29, item 7): bound to one client id and one run,
expiring, revocable per client without re-issuing anyone else's, and `greenfl serve
--issue-token ... --device ... --network ... --region ...` enrolling the client."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from greenfl.deploy.security import (
    Revocations,
    TokenClaims,
    TokenError,
    client_token,
    issue_token,
    read_revocations,
    revoke_token,
    run_id_of,
    verify_token,
)

SECRET = "s3cret"
T0 = 1_800_000_000.0  # a fixed "now", Unix seconds


def claims(**kw: object) -> TokenClaims:
    base: dict[str, object] = dict(client_id=3, run_id="runA", issued_at=T0, expires_at=T0 + 100)
    base.update(kw)
    return TokenClaims(**base)  # type: ignore[arg-type]


def test_a_token_admits_its_client_in_its_run_until_it_expires() -> None:
    tok = issue_token(SECRET, claims())
    got = verify_token(SECRET, tok, 3, "runA", {}, now=T0 + 99.9)
    assert got == claims()
    with pytest.raises(TokenError, match="expired"):
        verify_token(SECRET, tok, 3, "runA", {}, now=T0 + 100.0)


def test_a_token_admits_no_other_client_and_no_other_run() -> None:
    tok = issue_token(SECRET, claims())
    with pytest.raises(TokenError, match="client 3's, not client 4's"):
        verify_token(SECRET, tok, 4, "runA", {}, now=T0)
    with pytest.raises(TokenError, match="admits to run runA, not this server's run runB"):
        verify_token(SECRET, tok, 3, "runB", {}, now=T0)
    with pytest.raises(TokenError, match="invalid token"):  # another secret
        verify_token("other", tok, 3, "runA", {}, now=T0)


def test_a_token_bound_to_no_run_admits_to_any_run_of_its_secret() -> None:
    tok = issue_token(SECRET, claims(run_id=""))
    assert verify_token(SECRET, tok, 3, "runB", {}, now=T0).run_id == ""


def test_claims_cannot_be_edited_under_the_mac() -> None:
    tok = issue_token(SECRET, claims())
    body, mac = tok[len("gfl2.") :].rsplit(".", 1)
    raw = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw["expires_at"] = T0 + 10**9  # extend its life
    forged_body = base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")
    with pytest.raises(TokenError, match="invalid token"):
        verify_token(SECRET, f"gfl2.{forged_body}.{mac}", 3, "runA", {}, now=T0)
    for junk in ("", "gfl-3-abcdef", "gfl2.", "gfl2..", "gfl2.é.ü", "x" * 10_000):
        with pytest.raises(TokenError, match="invalid token"):
            verify_token(SECRET, junk, 3, "runA", {}, now=T0)


def test_revocation_refuses_tokens_issued_before_it_and_only_that_clients() -> None:
    old = issue_token(SECRET, claims(issued_at=T0))
    other = issue_token(SECRET, claims(client_id=4, issued_at=T0))
    revoked = {3: T0 + 5}
    with pytest.raises(TokenError, match="revoked"):
        verify_token(SECRET, old, 3, "runA", revoked, now=T0 + 6)
    assert verify_token(SECRET, other, 4, "runA", revoked, now=T0 + 6).client_id == 4
    # a token issued after the revocation readmits client 3
    new = issue_token(SECRET, claims(issued_at=T0 + 6))
    assert verify_token(SECRET, new, 3, "runA", revoked, now=T0 + 7).issued_at == T0 + 6


def test_the_revocation_list_is_read_again_when_it_changes(tmp_path: Path) -> None:
    revs = Revocations(tmp_path / "revoked_tokens.txt")
    assert dict(revs.current()) == {}
    revoke_token(tmp_path, 3, now=T0)
    assert dict(revs.current()) == {3: T0}
    with (tmp_path / "revoked_tokens.txt").open("a") as f:
        f.write("garbage line here\n7 notanumber\n")
    revoke_token(tmp_path, 3, now=T0 + 50)
    assert dict(revs.current()) == {3: T0 + 50}  # malformed lines skipped, latest kept
    assert read_revocations(tmp_path / "missing.txt") == {}


def test_the_run_id_is_made_once_per_run_folder(tmp_path: Path) -> None:
    rid = run_id_of(tmp_path / "run")
    assert len(rid) == 16 and run_id_of(tmp_path / "run") == rid
    assert run_id_of(tmp_path / "other") != rid
    assert run_id_of(tmp_path / "none", create=False) == ""


def test_client_token_keeps_its_api() -> None:
    tok = client_token(SECRET, 5, run_id="r", ttl_s=60)
    got = verify_token(SECRET, tok, 5, "r", {})
    assert got.expires_at - got.issued_at == pytest.approx(60.0, abs=1e-6)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    return subprocess.run(
        [sys.executable, "-m", "greenfl", "serve", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_issue_token_enrols_binds_and_revoke_token_writes_the_list(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text(SECRET)
    got = _cli(
        "--issue-token", "3", "--token-file", "secret", "--out", "run",
        "--device", "jetson-nano", "--network", "ethernet", "--region", "NO",
        "--token-ttl-days", "2", cwd=tmp_path,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    tok = got.stdout.strip()
    rid = (tmp_path / "run" / "run_id").read_text().strip()
    c = verify_token(SECRET, tok, 3, rid, {})
    assert (c.device, c.network, c.region) == ("jetson-nano", "ethernet", "NO")
    assert c.expires_at - c.issued_at == pytest.approx(2 * 86_400, abs=1e-3)

    rev = _cli("--revoke-token", "3", "--out", "run", cwd=tmp_path)
    assert rev.returncode == 0, rev.stderr
    revoked = read_revocations(tmp_path / "run" / "revoked_tokens.txt")
    with pytest.raises(TokenError, match="revoked"):
        verify_token(SECRET, tok, 3, rid, revoked)

    for bad, msg in (
        (("--revoke-token", "3"), "--revoke-token needs --out"),
        (("--issue-token", "3", "--token-file", "secret", "--device", "rpi4"), "all of --device"),
        (("--device", "rpi4"), "go with --issue-token"),
    ):
        r = _cli(*bad, cwd=tmp_path)
        assert r.returncode == 2 and r.stderr.strip().count("\n") == 0, r.stderr
        assert msg in r.stderr
