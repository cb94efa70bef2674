"""What ``greenfl audit`` prints: the attacks as a short table, then what they mean in plain
words, and the run's privacy setting as figures (epsilon and delta spent, or no
differential privacy) rather than its raw config section."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

# AUC bands on a balanced audit set, where 0.5 is a coin flip. An attack below 0.5 is no
# better than guessing either (it only ranks the wrong way round).
AUC_BANDS: tuple[tuple[float, str], ...] = (
    (0.55, "close to guessing (0.5): no leakage this attack could exploit"),
    (0.60, "a little better than guessing (0.5): slight leakage"),
    (0.70, "clearly better than guessing (0.5): the model leaks membership"),
    (math.inf, "far better than guessing (0.5): the model leaks membership strongly"),
)


def auc_reading(auc: float) -> str:
    return next(text for bound, text in AUC_BANDS if auc < bound)


def low_fpr_reading(tpr: float, fpr: float = 1e-2) -> str:
    """Carlini et al.'s figure: the members found at a false-positive rate where the attack
    is confident. Guessing finds as many members as it flags non-members."""
    found = f"at {fpr:.0%} false positives it finds {tpr:.1%} of members"
    if tpr <= 2 * fpr:
        return f"{found}, about what guessing finds ({fpr:.0%})"
    return f"{found}, {tpr / fpr:.3g}x what guessing finds ({fpr:.0%})"


def privacy_reading(setting: dict[str, Any] | None, spent: dict[str, Any] | None) -> str:
    """The run's differential privacy in figures. ``setting``: config.json's privacy
    section; ``spent``: summary.json's privacy key (epsilon and delta spent)."""
    if setting is None:
        return "privacy: not recorded in config.json (a run from before differential privacy)"
    mode = str(setting.get("mode", "none"))
    if mode == "none":
        return "privacy: no differential privacy (privacy.mode = none): no bound on leakage"
    eps = (spent or {}).get("epsilon")
    delta = (spent or {}).get("delta", setting.get("delta"))
    budget = f"epsilon {eps:.3g} spent" if isinstance(eps, int | float) else "epsilon not recorded"
    if isinstance(delta, int | float):
        budget += f" at delta {delta:g}"
    knobs = ", ".join(
        f"{name} {setting[key]:g}"
        for key, name in (("noise_multiplier", "noise multiplier"), ("clip_norm", "clip norm"))
        if isinstance(setting.get(key), int | float)
    )
    return f"privacy: {mode} differential privacy, {budget}" + (f" ({knobs})" if knobs else "")


def read_summary(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's summary.json, or None where it is missing or unreadable (the privacy line
    then says what it can from config.json alone)."""
    path = Path(run_dir) / "summary.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def table_lines(result: dict[str, Any], summary: dict[str, Any] | None = None) -> list[str]:
    """The attacks as a short table, one line each, then the plain reading and privacy."""
    lines = [
        f"{result['members']} members, {result['non_members']} non-members "
        f"(round {result['round']}, {result['member_clients']} clients)",
        f"{'attack':<14}{'AUC':>7}{'TPR@1%':>9}{'TPR@0.1%':>10}",
    ]
    for name, a in result["attacks"].items():
        lines.append(
            f"{name:<14}{a['auc']:>7.3f}{a['tpr_at_fpr_1e-2']:>9.3f}{a['tpr_at_fpr_1e-3']:>10.3f}"
        )
    lines.extend(reading_lines(result))
    lines.append(privacy_reading(result.get("privacy"), (summary or {}).get("privacy")))
    return lines


def reading_lines(result: dict[str, Any]) -> list[str]:
    """The strongest attack (highest AUC) in plain words: what a reader should conclude."""
    attacks = result["attacks"]
    if not attacks:
        return []
    name, a = max(attacks.items(), key=lambda kv: kv[1]["auc"])
    strongest = "the only attack" if len(attacks) == 1 else "the strongest attack"
    return [
        f"reading: membership inference AUC {a['auc']:.2f} ({name}, {strongest}): "
        f"{auc_reading(a['auc'])}",
        f"         {low_fpr_reading(a['tpr_at_fpr_1e-2'])}",
    ]
