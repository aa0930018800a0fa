"""Scores and decisions: upstream overall formula, refinement rules, weights, pairwise winner."""
import pytest

from rationalrewards.models.format import (AspectScore, Critique, needs_refinement, overall_from_scores,
                                           pairwise_winner, weighted_overall)


def crit(**scores):
    aspects = {k: (AspectScore(None, True) if v == "na" else AspectScore(v)) for k, v in scores.items()}
    return Critique("edit", aspects, None)


def test_overall_formula():
    assert overall_from_scores([(4.0, False), (1.0, False)]) == 0.5
    assert overall_from_scores([(4.0, False), (None, True)]) == 1.0
    assert overall_from_scores([(None, True)]) is None
    assert overall_from_scores([(3.0, False), (None, False)]) is None


@pytest.mark.parametrize("scores,paper,upstream", [
    (dict(text_faithfulness=3.0, physical_quality=3.0, text_rendering="na"), False, False),
    (dict(text_faithfulness=3.0, physical_quality=3.0, image_faithfulness=2.0), True, False),
    (dict(text_faithfulness=2.9, physical_quality=4.0), True, True),
    (dict(text_faithfulness=None, physical_quality=4.0), None, None),
    (dict(text_faithfulness=None, physical_quality=2.0), True, True),
])
def test_refinement_rules(scores, paper, upstream):
    c = crit(**scores)
    assert needs_refinement(c, "paper") is paper
    assert needs_refinement(c, "upstream") is upstream
    assert needs_refinement(c, "always") is True


def test_threshold_and_bad_rule():
    c = crit(text_faithfulness=3.5, physical_quality=3.5)
    assert needs_refinement(c, threshold=3.5) is False
    assert needs_refinement(c, threshold=3.6) is True
    with pytest.raises(ValueError, match="unknown refine rule"):
        needs_refinement(c, "sometimes")


def test_weighted_overall():
    c = crit(text_faithfulness=4.0, physical_quality=1.0, text_rendering="na")
    assert weighted_overall(c) == 0.5
    assert weighted_overall(c, {"text_faithfulness": 2.0}) == pytest.approx(((8 + 1) / 3 - 1) / 3)
    assert weighted_overall(c, {"physical_quality": 0}) == 1.0
    assert weighted_overall(c, {"text_faithfulness": 0, "physical_quality": 0}) is None
    with pytest.raises(ValueError):
        weighted_overall(c, {"text_faithfulness": -1})


def test_pairwise_winner():
    assert pairwise_winner([3, 2], [2, 2]) == "A"
    assert pairwise_winner([3, None], [3, None]) == "tie"
    assert pairwise_winner([1], [2]) == "B"
    assert pairwise_winner([3, 2], [3, None]) is None
    assert pairwise_winner([None], [None]) is None
