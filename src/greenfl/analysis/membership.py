"""The leakage audit of a finished run (``greenfl audit``): membership-inference attacks on
its final global model, written to ``audit.json`` in the run folder.

Members are training samples of clients whose updates were aggregated in some round;
non-members are held-out samples of the same clients (each one's ``client_test_data``),
with repeats and any sample whose features a member also has removed. Both sides are
subsampled, seeded, to the same count, so an AUC of 0.5 is chance.

Attacks: the loss threshold of Yeom et al. (CSF 2018), score = -loss; and LiRA (Carlini et
al., S&P 2022, see greenfl.analysis.lira) with shadow models trained centrally."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from greenfl.analysis.lira import (
    confidences,
    inclusion_masks,
    lira_scores,
    shadow_confidences,
    train_central,
)
from greenfl.analysis.roc import evaluate_attack
from greenfl.analysis.run_model import RunModel, load_run_model, privacy_setting
from greenfl.core.errors import ConfigError, DataError

AUDIT_FILE = "audit.json"
_AUDIT_STREAM = 23  # its own random stream: nothing the run drew is moved


@dataclass(frozen=True)
class AuditSet:
    """The balanced audit set: the first half are members (label 1), the rest not."""

    x: torch.Tensor
    y: torch.Tensor
    is_member: np.ndarray
    member_candidates: int
    non_member_candidates: int


def _feature_keys(x: torch.Tensor) -> list[bytes]:
    # A digest per sample rather than its bytes: a set of 12 KB CIFAR images would be large.
    flat = x.reshape(len(x), -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in flat]


def audit_set(run: RunModel, max_samples: int, rng: np.random.Generator) -> AuditSet:
    """Members and non-members of the run's participating clients, balanced: ``n`` of each,
    n = min(members, non-members, max_samples). Clients are visited in a seeded order and
    no more are read than needed for ``max_samples`` of each, so a million-client run does
    not materialise every client's data."""
    if max_samples < 1:
        raise ConfigError("--max-samples must be >= 1")
    clients = rng.permutation(run.member_clients)
    member_x, member_y, other_x, other_y = [], [], [], []
    member_keys: set[bytes] = set()
    other_keys: set[bytes] = set()
    n_members = 0
    for c in clients:
        x, y = run.dataset.client_data(int(c))
        member_x.append(x)
        member_y.append(y)
        member_keys.update(_feature_keys(x))
        n_members += len(y)
        tx, ty = run.dataset.client_test_data(int(c))
        # Label-matched test splits draw from one central set, with replacement: a sample
        # may repeat, within a client or across clients, and is kept once.
        keep = []
        for i, key in enumerate(_feature_keys(tx)):
            if key not in other_keys:
                other_keys.add(key)
                keep.append(i)
        other_x.append(tx[keep])
        other_y.append(ty[keep])
        if n_members >= max_samples and len(other_keys) >= 2 * max_samples:
            break  # a margin for the non-members a later member turns out to match
    if not member_x:
        raise DataError("the run aggregated no client update: it has no members to audit")
    mx, my = torch.cat(member_x), torch.cat(member_y)
    ox, oy = torch.cat(other_x), torch.cat(other_y)
    # A held-out sample identical to a training sample is a member in all but name.
    fresh = np.array([k not in member_keys for k in _feature_keys(ox)], dtype=bool)
    ox, oy = ox[torch.from_numpy(fresh)], oy[torch.from_numpy(fresh)]
    n = min(len(my), len(oy), max_samples)
    if n == 0:
        raise DataError(
            "the participating clients hold no held-out sample that is not also a training "
            "sample: there are no non-members to audit against"
        )
    mi = torch.from_numpy(np.sort(rng.choice(len(my), n, replace=False)))
    oi = torch.from_numpy(np.sort(rng.choice(len(oy), n, replace=False)))
    return AuditSet(
        x=torch.cat([mx[mi], ox[oi]]),
        y=torch.cat([my[mi], oy[oi]]),
        is_member=np.r_[np.ones(n, bool), np.zeros(n, bool)],
        member_candidates=len(my),
        non_member_candidates=len(oy),
    )


def per_sample_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Cross-entropy of every sample under ``model`` (eval mode), as the clients trained."""
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(y), 4096):
            logits = model(x[start : start + 4096])
            loss = nn.functional.cross_entropy(logits, y[start : start + 4096], reduction="none")
            out.append(loss.double().numpy())
    return np.concatenate(out)


def shadow_epochs_for(run: RunModel, cap: int) -> int:
    """Epochs a shadow model trains: the mean passes the run made over a member's data
    (aggregated rounds x local epochs), at least 1 and at most ``cap``."""
    passes = float(run.participations.mean()) * run.cfg.train.local_epochs
    return int(min(max(round(passes), 1), cap))


def audit_run(
    run_dir: str | Path,
    shadow: int = 4,
    shadow_epochs: int = 30,
    max_samples: int = 2000,
    seed: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The audit of the run in ``run_dir`` as the JSON document ``audit.json`` holds.
    ``shadow``: LiRA shadow models (0: no LiRA); ``shadow_epochs``: the most epochs one
    trains; ``max_samples``: members (and as many non-members) audited at most."""
    if shadow == 1 or shadow < 0:
        raise ConfigError("--shadow must be 0 (no LiRA) or at least 2")
    if shadow_epochs < 1:
        raise ConfigError("--shadow-epochs must be >= 1")
    t0 = time.perf_counter()
    run = load_run_model(run_dir)
    seed = run.cfg.seed if seed is None else seed
    rng = np.random.default_rng([seed, _AUDIT_STREAM])
    data = audit_set(run, max_samples, rng)
    loss = per_sample_loss(run.model, data.x, data.y)
    attacks: dict[str, Any] = {"loss": evaluate_attack(-loss, data.is_member).to_json()}
    if shadow:
        target_phi = confidences(run.model, data.x, data.y)
        info, online, offline = _lira(
            run, data, target_phi, shadow, shadow_epochs, seed, rng, progress
        )
        for name, scores in (("lira_online", online), ("lira_offline", offline)):
            attacks[name] = {**evaluate_attack(scores, data.is_member).to_json(), **info}
    return {
        "run": str(run.run_dir),
        "round": run.round,
        "seed": seed,
        "members": int(data.is_member.sum()),
        "non_members": int((~data.is_member).sum()),
        "member_clients": len(run.member_clients),
        "member_candidates": data.member_candidates,
        "non_member_candidates": data.non_member_candidates,
        "attacks": attacks,
        "privacy": privacy_setting(run.raw_config),
        "seconds": time.perf_counter() - t0,
    }


def _lira(
    run: RunModel,
    data: AuditSet,
    target_phi: np.ndarray,
    shadow: int,
    cap: int,
    seed: int,
    rng: np.random.Generator,
    progress: Callable[[str], None] | None,
) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Shadow models on random halves of the audit set; (their details, online, offline)."""
    t = run.cfg.train
    epochs = shadow_epochs_for(run, cap)
    masks = inclusion_masks(shadow, len(data.y), rng)

    def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: int) -> None:
        train_central(model, x, y, epochs, t.batch_size, t.lr, t.momentum, s)

    start = time.perf_counter()
    # A copy: the shadows re-initialise their module, and run.model is the audited one.
    shadow_model = copy.deepcopy(run.model)
    phi = shadow_confidences(shadow_model, data.x, data.y, masks, train, seed, progress)
    online, offline = lira_scores(target_phi, phi, masks)
    info = {
        "shadow_models": shadow,
        "shadow_epochs": epochs,
        "shadow_seconds": time.perf_counter() - start,
    }
    return info, online, offline


def write_audit(run_dir: str | Path, result: dict[str, Any]) -> Path:
    """``audit.json`` in the run folder."""
    path = Path(run_dir) / AUDIT_FILE
    path.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
