"""The leakage audit (greenfl audit): ROC figures against scikit-learn, the LiRA statistic
on a case worked by hand, and the command on real runs: an over-fitted run leaks, an
under-trained one does not, and a bad folder is one line and exit 2."""

from __future__ import annotations

import json
import math
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

import greenfl
from greenfl.analysis.lira import inclusion_masks, lira_scores, logit_confidence
from greenfl.analysis.roc import LOW_FPRS, auc, evaluate_attack, roc_curve, tpr_at_fpr
from greenfl.cli import main
from greenfl.config import build_config

# Digits over-fitted on purpose: three clients of ~30 samples each, 30 local epochs a round
# with momentum, and a wide hidden layer (about a second to train).
OVERFIT = {
    "data": {"num_clients": 3, "test_fraction": 0.95},
    "train": {"rounds": 5, "clients_per_round": 3, "local_epochs": 30, "momentum": 0.9},
    "model": {"params": {"hidden": [256]}},
    "report": {"html": False},
}
# One local epoch at a small learning rate: the model has barely moved from its start.
UNDERTRAINED = {
    "data": {"num_clients": 3, "test_fraction": 0.9},
    "train": {"rounds": 1, "clients_per_round": 3, "local_epochs": 1, "lr": 0.01},
    "report": {"html": False},
}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_and_low_fpr_tpr_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.random(500) < 0.4
    # Rounded scores: many ties, which is where an ROC implementation goes wrong.
    scores = np.round(rng.normal(size=500) + 0.7 * labels, 1)
    fpr, tpr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert auc(fpr, tpr) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    for target in (*LOW_FPRS, 0.05, 0.3):
        assert tpr_at_fpr(fpr, tpr, target) == pytest.approx(sk_tpr[sk_fpr <= target].max())


def test_attack_figures_of_perfect_and_chance_scores() -> None:
    labels = np.r_[np.ones(1000, bool), np.zeros(1000, bool)]
    perfect = evaluate_attack(labels.astype(float), labels).to_json()
    assert perfect["auc"] == 1.0 and perfect["tpr_at_fpr_1e-3"] == 1.0
    assert perfect["members"] == perfect["non_members"] == 1000
    constant = evaluate_attack(np.zeros(2000), labels).to_json()
    assert constant["auc"] == 0.5 and constant["tpr_at_fpr_1e-2"] == 0.0


def test_logit_confidence_is_log_odds_of_the_true_label() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [40.0, -40.0, 0.0]])
    labels = torch.tensor([0, 2, 0])
    p = torch.softmax(logits.double(), 1)[torch.arange(3), labels].numpy()
    phi = logit_confidence(logits, labels)
    np.testing.assert_allclose(phi[:2], np.log(p[:2] / (1 - p[:2])))
    assert phi[2] == pytest.approx(40.0, abs=1e-9)  # p rounds to 1; phi does not overflow


def test_every_example_is_in_half_the_shadow_models() -> None:
    masks = inclusion_masks(4, 300, np.random.default_rng(0))
    assert (masks.sum(axis=0) == 2).all()
    odd = inclusion_masks(5, 300, np.random.default_rng(0)).sum(axis=0)
    assert set(odd) == {2, 3}


def _norm_logpdf(x: float, mu: float, sd: float) -> float:
    return -0.5 * ((x - mu) / sd) ** 2 - math.log(sd * math.sqrt(2 * math.pi))


def test_lira_statistic_on_a_case_worked_by_hand() -> None:
    # Two examples, four shadow models; example 0 is IN models 0 and 1, example 1 IN 1 and 3.
    shadow = np.array([[3.0, 0.0], [5.0, 2.0], [1.0, -1.0], [-1.0, 4.0]])
    masks = np.array([[True, False], [True, True], [False, False], [False, True]])
    target = np.array([4.0, 0.0])
    online, offline = lira_scores(target, shadow, masks, fixed_variance=False)
    # Example 0: IN {3, 5} -> mean 4, sample sd sqrt(2); OUT {1, -1} -> mean 0, sd sqrt(2).
    # Example 1: IN {2, 4} -> mean 3, sd sqrt(2);       OUT {0, -1} -> mean -0.5, sd sqrt(.5).
    r2, rh = math.sqrt(2), math.sqrt(0.5)
    want_online = [
        _norm_logpdf(4, 4, r2) - _norm_logpdf(4, 0, r2),
        _norm_logpdf(0, 3, r2) - _norm_logpdf(0, -0.5, rh),
    ]
    np.testing.assert_allclose(online, want_online)
    np.testing.assert_allclose(offline, [(4 - 0) / r2, (0 + 0.5) / rh])
    # Global variance: squared deviations pooled over examples, 2 degrees of freedom a side.
    on_g, off_g = lira_scores(target, shadow, masks, fixed_variance=True)
    sd_in = math.sqrt((1 + 1 + 1 + 1) / 2)
    sd_out = math.sqrt((1 + 1 + 0.25 + 0.25) / 2)
    want_g = [
        _norm_logpdf(4, 4, sd_in) - _norm_logpdf(4, 0, sd_out),
        _norm_logpdf(0, 3, sd_in) - _norm_logpdf(0, -0.5, sd_out),
    ]
    np.testing.assert_allclose(on_g, want_g)
    np.testing.assert_allclose(off_g, [4 / sd_out, 0.5 / sd_out])
    assert online[0] > 0 > online[1]  # the member-like example scores above the other


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("audit")
    out = {}
    for name, cfg in (("overfit", OVERFIT), ("under", UNDERTRAINED)):
        greenfl.run(build_config(cfg), root / name)
        out[name] = root / name
    return out


def test_audit_finds_leakage_of_an_overfitted_run_only(
    runs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", str(runs["overfit"]), "--shadow", "4"]) == 0
    printed = capsys.readouterr()
    assert "loss" in printed.out and "lira_online" in printed.out
    # read out plainly: the strongest attack's verdict and the privacy as figures, no raw dict
    assert "reading: membership inference AUC" in printed.out and "{" not in printed.out
    assert "privacy: no differential privacy (privacy.mode = none)" in printed.out
    assert "shadow model 4/4" in printed.err
    audit = json.loads((runs["overfit"] / "audit.json").read_text())
    attacks = audit["attacks"]
    assert set(attacks) == {"loss", "lira_online", "lira_offline"}
    for a in attacks.values():
        assert {"auc", "tpr_at_fpr_1e-2", "tpr_at_fpr_1e-3", "members", "non_members"} <= set(a)
        assert a["members"] == a["non_members"] == audit["members"] > 50
    assert attacks["loss"]["auc"] > 0.6
    assert attacks["lira_offline"]["auc"] > 0.6
    assert attacks["lira_online"]["shadow_models"] == 4
    assert audit["round"] == 5 and audit["member_clients"] == 3

    assert main(["audit", str(runs["under"]), "--shadow", "0", "--quiet"]) == 0
    under = json.loads((runs["under"] / "audit.json").read_text())
    assert set(under["attacks"]) == {"loss"}
    assert abs(under["attacks"]["loss"]["auc"] - 0.5) < 0.1


def test_audit_is_repeatable_and_bounded_by_max_samples(runs: dict[str, Path]) -> None:
    from greenfl.analysis.membership import audit_run

    a = audit_run(runs["under"], shadow=2, shadow_epochs=1, max_samples=40, seed=3)
    b = audit_run(runs["under"], shadow=2, shadow_epochs=1, max_samples=40, seed=3)
    assert a["members"] == a["non_members"] == 40
    for name in ("loss", "lira_online", "lira_offline"):
        same = {k: v for k, v in a["attacks"][name].items() if k != "shadow_seconds"}
        assert same == {k: v for k, v in b["attacks"][name].items() if k != "shadow_seconds"}


def _error_line(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    return err[0]


def test_a_bad_run_folder_exits_2_naming_the_file(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert str(missing) in _error_line(capsys, ["audit", str(missing)])

    no_config = tmp_path / "no_config"
    shutil.copytree(runs["under"], no_config)
    (no_config / "config.json").unlink()
    assert "config.json" in _error_line(capsys, ["audit", str(no_config)])

    unfinished = tmp_path / "unfinished"
    shutil.copytree(runs["under"], unfinished)
    conn = sqlite3.connect(unfinished / "ledger.sqlite")
    with conn:
        conn.execute("UPDATE runs SET status = 'interrupted'")
    conn.close()
    line = _error_line(capsys, ["audit", str(unfinished)])
    assert "ledger.sqlite" in line and "interrupted" in line

    no_snapshot = tmp_path / "no_snapshot"
    cfg = build_config({**UNDERTRAINED, "engine": {"checkpoint": False}})
    greenfl.run(cfg, no_snapshot)
    line = _error_line(capsys, ["audit", str(no_snapshot)])
    assert "ledger.sqlite" in line and "snapshot" in line

    assert "--shadow" in _error_line(capsys, ["audit", str(runs["under"]), "--shadow", "1"])


def test_privacy_setting_is_read_only_where_config_json_has_one() -> None:
    from greenfl.analysis.run_model import privacy_setting

    assert privacy_setting({"train": {}}) is None
    assert privacy_setting({"privacy": {"mode": "central"}}) == {"mode": "central"}
    assert privacy_setting({"privacy": "garbled"}) is None
