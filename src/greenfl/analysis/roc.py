"""ROC curves of a membership score, computed with numpy alone: the curve, its area and the
true-positive rate at a fixed low false-positive rate, the figure Carlini et al. (S&P 2022)
argue a membership attack should be judged by rather than by its AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The false-positive rates the audit reports a TPR at.
LOW_FPRS = (1e-2, 1e-3)


@dataclass(frozen=True)
class AttackResult:
    """One attack's figures over a balanced audit set."""

    auc: float
    tpr_at_fpr: dict[float, float]
    members: int
    non_members: int

    def to_json(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {"auc": self.auc}
        for fpr, tpr in self.tpr_at_fpr.items():
            out[f"tpr_at_fpr_{fpr:.0e}".replace("e-0", "e-")] = tpr
        out["members"] = self.members
        out["non_members"] = self.non_members
        # Below 1/non_members the curve has no point but FPR = 0: the TPR reported for a
        # smaller target FPR is the TPR at no false positive at all.
        out["fpr_resolution"] = 1.0 / self.non_members if self.non_members else float("nan")
        return out


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, tpr) at every distinct threshold, highest first, from (0, 0) to (1, 1).
    ``labels``: 1 for a member, 0 for a non-member; a higher score says "member"."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels).astype(bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be equal 1-d shapes")
    if np.isnan(s).any():
        raise ValueError("a membership score is NaN")
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        raise ValueError("an ROC curve needs at least one member and one non-member")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    # Tied scores are one threshold: only the last index of each run of equal scores is a
    # point of the curve, otherwise the order of ties would change the area.
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]
    tp = np.cumsum(y)[last]
    fp = (last + 1) - tp
    tpr = np.r_[0.0, tp / pos]
    fpr = np.r_[0.0, fp / neg]
    return fpr, tpr


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    """The trapezoidal area under the curve: ties count half, as in the Mann-Whitney U."""
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2.0))


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The best TPR of a threshold whose FPR is at most ``target`` (no interpolation: a
    rate between two thresholds is not one any threshold achieves)."""
    ok = fpr <= target + 1e-12
    return float(tpr[ok].max())


def evaluate_attack(scores: np.ndarray, labels: np.ndarray) -> AttackResult:
    """AUC and TPR at the LOW_FPRS of one attack's scores."""
    fpr, tpr = roc_curve(scores, labels)
    y = np.asarray(labels).astype(bool)
    return AttackResult(
        auc=auc(fpr, tpr),
        tpr_at_fpr={f: tpr_at_fpr(fpr, tpr, f) for f in LOW_FPRS},
        members=int(y.sum()),
        non_members=int((~y).sum()),
    )
