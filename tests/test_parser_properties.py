"""Property tests: the parser never raises and never invents a score, whatever the text."""
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rationalrewards.models.format import parse_comparison, parse_critique

from data_answers import PAIR_T2I, T2I_FULL

FRAGMENTS = [
    "# User Request Analysis", "# Detailed Judgement", "1. Text Faithfulness:", "2. Image Faithfulness:",
    "3. Physical and Visual Quality:", "4. Text Rendering:", "## Justification: ", "## Score: ", "Score:",
    "## Score A: ", "## Score B: ", "## Winner: ", "# Summary: ", "# User Request Refinement:",
    "## Refinement Comments: ", "## Refined Request: ", "N/A", "3.5", "**", "~", "/4", "\r\n", "\n", " ",
    "Image A", "It's a tie", "</think>", "<think>", "12", "-3", "nan", "inf", "1e9",
]
texts = st.one_of(
    st.text(max_size=400),
    st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=60).map("".join),
)
NUM = re.compile(r"\d")


def _scores_are_sane(values):
    for v in values:
        assert v is None or 1.0 <= v <= 4.0


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(["t2i", "edit"]), st.booleans())
def test_pointwise_never_raises_or_invents(text, kind, truncated):
    c = parse_critique(text, kind, truncated=truncated)
    _scores_are_sane(a.score for a in c.aspects.values())
    assert c.overall is None or 0.0 <= c.overall <= 1.0
    assert c.raw == text
    # a score can only come from a digit in the text
    if not NUM.search(text):
        assert all(a.score is None for a in c.aspects.values())
        assert c.overall is None
    # anything short of a complete answer carries problems
    if c.overall is None or c.refined_request is None:
        assert c.problems
    if truncated:
        assert any(p.startswith("cut_off") for p in c.problems)
    assert c.to_dict()["problems"] == list(c.problems)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(["pairwise-t2i", "pairwise-edit"]))
def test_pairwise_never_raises_or_invents(text, kind):
    r = parse_comparison(text, kind)
    for a in r.aspects.values():
        _scores_are_sane([a.score_a, a.score_b])
        assert a.winner in (None, "A", "B", "tie")
    assert r.winner in (None, "A", "B", "tie")
    if not NUM.search(text):
        assert r.overall_a is None and r.overall_b is None and r.winner is None


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=0, max_value=len(T2I_FULL)))
def test_any_prefix_of_a_valid_answer_is_safe(cut):
    """A cut-off at any character: scores read so far are the true ones, never different numbers."""
    c = parse_critique(T2I_FULL[:cut], truncated=cut < len(T2I_FULL))
    full = parse_critique(T2I_FULL)
    for name, a in c.aspects.items():
        if a.score is not None:
            assert a.score == full.aspects[name].score  # never "2" read from a cut "2.5"
    if cut < len(T2I_FULL):
        assert c.problems
        assert c.refined_request is None  # a partial refined request is never used


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=len(PAIR_T2I)))
def test_any_prefix_of_pairwise_is_safe(cut):
    r = parse_comparison(PAIR_T2I[:cut], truncated=cut < len(PAIR_T2I))
    full = parse_comparison(PAIR_T2I)
    for name, a in r.aspects.items():
        for got, want in ((a.score_a, full.aspects[name].score_a), (a.score_b, full.aspects[name].score_b)):
            assert got is None or got == want
