"""Numbers and decisions derived from critiques: overall score, refinement trigger, pairwise winner.

Pure functions over Critique / Comparison. The upstream formula maps the mean of the applicable
1-4 scores to 0-1; when an aspect that should have a score has none, the overall is None (we do not
fill it with 2.5 as upstream evaluation does: that would be an invented number).
"""
from __future__ import annotations

from typing import Iterable, Mapping

from .aspects import SCORE_MAX, SCORE_MIN
from .critique import Critique

#: Refinement rules: "paper" = refine when ANY applicable aspect is below the threshold;
#: "upstream" = refine unless Text Faithfulness AND Physical Quality are both >= threshold
#: (upstream's test-time code; other aspects ignored); "always" = always refine.
REFINE_RULES = ("paper", "upstream", "always")
DEFAULT_THRESHOLD = 3.0


def normalize(mean_score: float) -> float:
    """Map a 1-4 score to 0-1 by (s - 1) / 3, clamped."""
    return min(1.0, max(0.0, (mean_score - SCORE_MIN) / (SCORE_MAX - SCORE_MIN)))


def overall_from_scores(scores: Iterable[tuple[float | None, bool]]) -> float | None:
    """Overall 0-1 score from (score, not_applicable) pairs of the expected aspects.

    N/A aspects are skipped; an applicable aspect without a score makes the result None, and so
    does having no applicable aspect at all.
    """
    values = []
    for score, not_applicable in scores:
        if not_applicable:
            continue
        if score is None:
            return None
        values.append(score)
    if not values:
        return None
    return normalize(sum(values) / len(values))


def weighted_overall(critique: Critique, weights: Mapping[str, float] | None = None) -> float | None:
    """Overall 0-1 score with per-aspect weights (missing weight = 1.0, weight 0 ignores an aspect).

    With no weights this equals ``critique.overall`` (the upstream formula). None when an applicable,
    weighted aspect has no score or all weights are zero.
    """
    weights = dict(weights or {})
    for k, w in weights.items():
        if w < 0:
            raise ValueError(f"aspect weight for {k!r} must be >= 0, got {w}")
    total = 0.0
    wsum = 0.0
    for name, a in critique.aspects.items():
        w = float(weights.get(name, 1.0))
        if a.not_applicable or w == 0.0:
            continue
        if a.score is None:
            return None
        total += w * a.score
        wsum += w
    if wsum == 0.0:
        return None
    return normalize(total / wsum)


def needs_refinement(
    critique: Critique, rule: str = "paper", threshold: float = DEFAULT_THRESHOLD
) -> bool | None:
    """Whether the prompt should be refined, by ``rule`` (see REFINE_RULES).

    Returns None when the answer is too incomplete to decide (no score below the threshold was read,
    but some score the rule needs is missing).
    """
    if rule not in REFINE_RULES:
        raise ValueError(f"unknown refine rule {rule!r}: use one of {', '.join(REFINE_RULES)}")
    if rule == "always":
        return True
    if rule == "paper":
        names = [n for n, a in critique.aspects.items() if not a.not_applicable]
    else:
        names = ["text_faithfulness", "physical_quality"]
    unknown = False
    for n in names:
        a = critique.aspects.get(n)
        if a is None or a.score is None:
            if a is not None and a.not_applicable:
                continue
            unknown = True
            continue
        if a.score < threshold:
            return True
    if unknown or not names:
        return None
    return False


def pairwise_winner(scores_a: Iterable[float | None], scores_b: Iterable[float | None]) -> str | None:
    """Winner by the sums of the aspect scores (upstream's accuracy rule): "A", "B", "tie" or None.

    Pairs where both are None (N/A) are skipped; a pair with only one score makes it None.
    """
    sa = sb = 0.0
    seen = False
    for a, b in zip(scores_a, scores_b):
        if a is None and b is None:
            continue
        if a is None or b is None:
            return None
        sa += a
        sb += b
        seen = True
    if not seen:
        return None
    if abs(sa - sb) < 1e-9:
        return "tie"
    return "A" if sa > sb else "B"
