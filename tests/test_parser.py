"""Parser tests: every reference variant, cut-off answers, garbage, edge cases (>= 30 answer cases)."""
import json

import pytest

from rationalrewards.models.format import (Comparison, Critique, parse, parse_comparison, parse_critique,
                                           result_from_dict, result_from_json)

from data_answers import EDIT_FULL, PAIR_EDIT, PAIR_T2I, T2I_FULL


def codes(result):
    return sorted({p.split(":", 1)[0] for p in result.problems})


# -- complete answers -----------------------------------------------------------------------------

def test_full_t2i_answer():
    c = parse_critique(T2I_FULL, "t2i")
    assert c.problems == ()
    assert c.score("text_faithfulness") == 2.5
    assert c.score("physical_quality") == 3.5
    tr = c.aspects["text_rendering"]
    assert tr.score is None and tr.not_applicable
    assert c.overall == pytest.approx(((2.5 + 3.5) / 2 - 1) / 3)
    assert c.analysis == "The user wants a red cube on a wooden table, photographed."
    assert c.summary == "A decent image that gets the material of the table wrong."
    assert c.refinement_comments == "State the wood grain explicitly."
    assert c.refined_request == "A photo of a red cube on a rustic wooden table with visible wood grain."
    assert c.needs_refinement is True
    assert list(c.aspects) == ["text_faithfulness", "physical_quality", "text_rendering"]
    assert c.aspects["text_faithfulness"].justification.startswith("The cube is red")


def test_full_edit_answer():
    c = parse_critique(EDIT_FULL, "edit")
    assert c.problems == ()
    assert [c.score(a) for a in c.aspects] == [4.0, 2.0, 3.0, None]
    assert c.overall == pytest.approx(((4 + 2 + 3) / 3 - 1) / 3)
    assert c.needs_refinement is True
    assert c.refined_request.startswith("Turn the sky purple")


def test_all_good_scores_need_no_refinement():
    text = T2I_FULL.replace("## Score: 2.5", "## Score: 3.0")
    c = parse_critique(text, "t2i")
    assert c.needs_refinement is False


# -- variant 1: score before justification ---------------------------------------------------------

def test_score_before_justification():
    text = """# Detailed Judgement
1. Text Faithfulness:
## Score: 3.0
## Justification: Mostly right.
2. Physical and Visual Quality:
## Score: 2.0
## Justification: Warped hands.
3. Text Rendering:
## Score: N/A
## Justification: None asked.
# Summary: ok
# User Request Refinement:
## Refinement Comments: fix hands
## Refined Request: same prompt, correct hands"""
    c = parse_critique(text)
    assert c.problems == ()
    assert c.score("text_faithfulness") == 3.0
    assert c.aspects["physical_quality"].justification == "Warped hands."
    assert c.analysis is None


# -- variant 2: system message / missing analysis heading ------------------------------------------

def test_untitled_analysis_text():
    text = "The request asks for a cube.\n" + T2I_FULL.split("\n", 2)[2]
    c = parse_critique(text)
    assert c.analysis == "The request asks for a cube."
    assert c.problems == ()


def test_no_analysis_at_all():
    text = T2I_FULL.split("# Detailed Judgement", 1)[1]
    c = parse_critique(text)
    assert c.analysis is None
    assert c.score("text_faithfulness") == 2.5


# -- variant 3: trailing spaces, Score without ## ---------------------------------------------------

def test_trailing_spaces_after_colons():
    text = T2I_FULL.replace(":\n", ":   \n").replace("## Score: ", "## Score:    ")
    c = parse_critique(text)
    assert c.problems == ()
    assert c.score("physical_quality") == 3.5


def test_score_without_hashes():
    text = T2I_FULL.replace("## Score:", "Score:").replace("## Justification:", "Justification:")
    c = parse_critique(text)
    assert c.problems == ()
    assert c.score("text_faithfulness") == 2.5


def test_markdown_bold_headings_and_values():
    text = T2I_FULL.replace("1. Text Faithfulness:", "**1. Text Faithfulness:**").replace(
        "## Score: 2.5", "**Score:** **2.5**")
    c = parse_critique(text)
    assert c.score("text_faithfulness") == 2.5
    assert c.problems == ()


# -- variant 4: score spellings --------------------------------------------------------------------

@pytest.mark.parametrize("value,score,na", [
    ("3.5", 3.5, False), ("**3.5**", 3.5, False), ("~3.5", 3.5, False), ("3.5/4", 3.5, False),
    ("3.5 (minor flaws)", 3.5, False), ("N/A", None, True), ("n/a", None, True),
    ("N/A (no text)", None, True), ("3", 3.0, False), ("[2.5]", 2.5, False), ("Not applicable", None, True),
])
def test_score_spellings(value, score, na):
    text = T2I_FULL.replace("## Score: N/A", f"## Score: {value}")
    c = parse_critique(text)
    tr = c.aspects["text_rendering"]
    assert tr.score == score and tr.not_applicable is na
    assert not [p for p in c.problems if "Text Rendering" in p]


@pytest.mark.parametrize("value,clamped", [("5", 4.0), ("0.5", 1.0), ("7/10", 4.0), ("-1", 1.0)])
def test_out_of_range_is_clamped_and_reported(value, clamped):
    c = parse_critique(T2I_FULL.replace("## Score: 3.5", f"## Score: {value}"))
    assert c.score("physical_quality") == clamped
    assert "clamped_score" in codes(c)


def test_unreadable_score_is_none_not_invented():
    c = parse_critique(T2I_FULL.replace("## Score: 2.5", "## Score: pretty good"))
    assert c.score("text_faithfulness") is None
    assert c.overall is None
    assert "unreadable_score" in codes(c)
    # the other aspect is still below threshold? 3.5 is not; TF unknown -> undecidable
    assert c.needs_refinement is None


def test_score_value_on_next_line():
    c = parse_critique(T2I_FULL.replace("## Score: 2.5", "## Score:\n2.5"))
    assert c.score("text_faithfulness") == 2.5
    assert c.problems == ()


def test_text_faithfulness_na_is_invalid():
    c = parse_critique(T2I_FULL.replace("## Score: 2.5", "## Score: N/A"))
    assert c.aspects["text_faithfulness"].not_applicable is False
    assert c.overall is None
    assert "invalid_not_applicable" in codes(c)


# -- variant 5: only score lines before # Summary count ----------------------------------------------

def test_scores_in_summary_do_not_count():
    text = T2I_FULL.replace(
        "3. Text Rendering:\n## Justification: No text is requested.\n## Score: N/A\n", "").replace(
        "# Summary: A decent", "# Summary: Text Rendering:\n## Score: 4\nA decent")
    c = parse_critique(text)
    assert c.aspects["text_rendering"].score is None
    assert not c.aspects["text_rendering"].not_applicable
    assert "missing_section" in codes(c)
    assert c.overall is None


# -- variant 6: refined request multi-line, empty, missing (cut off) ----------------------------------

def test_multiline_refined_request_keeps_all_lines():
    text = T2I_FULL.replace("with visible wood grain.", "with visible wood grain.\nSoft window light.\n\nNo text.")
    c = parse_critique(text)
    assert c.refined_request.endswith("Soft window light.\n\nNo text.")


def test_refined_request_on_next_line():
    text = T2I_FULL.replace("## Refined Request: A photo", "## Refined Request:\nA photo")
    assert parse_critique(text).refined_request.startswith("A photo of a red cube")


def test_empty_refined_request():
    text = T2I_FULL.split("## Refined Request:")[0] + "## Refined Request:   \n"
    c = parse_critique(text)
    assert c.refined_request is None
    assert "empty_refined_request" in codes(c)
    assert c.score("text_faithfulness") == 2.5


def test_cut_off_before_refinement():
    text = T2I_FULL.split("# User Request Refinement")[0]
    c = parse_critique(text, truncated=True)
    assert c.refined_request is None
    assert {"cut_off", "missing_refined_request"} <= set(codes(c))
    assert c.overall is not None  # the scores themselves were complete


def test_cut_off_mid_judgement():
    text = T2I_FULL.split("2. Physical and Visual Quality:")[0]
    c = parse_critique(text, truncated=True)
    assert c.score("text_faithfulness") == 2.5
    assert c.score("physical_quality") is None
    assert c.overall is None
    assert c.needs_refinement is True  # 2.5 < 3 is already known
    assert "missing_section" in codes(c)


def test_cut_off_mid_score_line():
    text = T2I_FULL.split("## Score: 3.5")[0] + "## Score: "
    c = parse_critique(text, truncated=True)
    assert c.score("physical_quality") is None
    assert "missing_score" in codes(c)


# -- variant 7: T2I answer carrying an N/A Image Faithfulness section -------------------------------

def test_t2i_with_na_image_faithfulness():
    text = T2I_FULL.replace("2. Physical and Visual Quality:",
                            "2. Image Faithfulness:\n## Justification: No source image.\n## Score: N/A\n"
                            "3. Physical and Visual Quality:")
    c = parse_critique(text)
    assert c.problems == ()
    assert "image_faithfulness" not in c.aspects
    assert c.score("physical_quality") == 3.5


def test_t2i_with_scored_image_faithfulness_is_reported():
    text = T2I_FULL.replace("2. Physical and Visual Quality:",
                            "2. Image Faithfulness:\n## Justification: x\n## Score: 2\n"
                            "3. Physical and Visual Quality:")
    c = parse_critique(text)
    assert "unexpected_aspect" in codes(c)
    assert c.overall == pytest.approx(((2.5 + 3.5) / 2 - 1) / 3)


def test_physical_quality_alias():
    # one upstream parser looked for "Physical Quality": accept both spellings
    c = parse_critique(T2I_FULL.replace("Physical and Visual Quality", "Physical Quality"))
    assert c.score("physical_quality") == 3.5


# -- variant 8: pairwise winners in every spelling ---------------------------------------------------

def test_pairwise_t2i():
    r = parse_comparison(PAIR_T2I, "pairwise-t2i")
    assert r.problems == ()
    tf = r.aspects["text_faithfulness"]
    assert (tf.score_a, tf.score_b, tf.winner) == (3.5, 1.5, "A")
    assert r.aspects["physical_quality"].winner == "B"
    assert r.aspects["text_rendering"].not_applicable and r.aspects["text_rendering"].winner is None
    assert r.winner == "A"  # 6.5 vs 5.0
    assert r.overall_a == pytest.approx(((3.5 + 3.0) / 2 - 1) / 3)


def test_pairwise_edit():
    r = parse_comparison(PAIR_EDIT, "pairwise-edit")
    assert r.problems == ()
    assert [a.winner for a in r.aspects.values()] == ["tie", "B", "tie", None]
    assert r.winner == "B"


@pytest.mark.parametrize("spelling,winner", [
    ("Image A", "A"), ("A", "A"), ("Image B", "B"), ("B", "B"), ("It's a tie", "tie"), ("Tie", "tie"),
    ("N/A", None), ("**Image A**", "A"), ("image b.", "B"), ("Edited Image A", "A"), ("[Image B]", "B"),
])
def test_winner_spellings(spelling, winner):
    r = parse_comparison(PAIR_T2I.replace("## Winner: Image A", f"## Winner: {spelling}"))
    assert r.aspects["text_faithfulness"].winner == winner
    assert "unreadable_winner" not in codes(r)


def test_unreadable_and_missing_winner():
    r = parse_comparison(PAIR_T2I.replace("## Winner: Image A", "## Winner: the left one"))
    assert r.aspects["text_faithfulness"].winner is None
    assert "unreadable_winner" in codes(r)
    r = parse_comparison(PAIR_T2I.replace("## Winner: Image B\n", ""))
    assert "missing_winner" in codes(r)


def test_pairwise_tie_overall_and_missing_score():
    text = PAIR_T2I.replace("## Score B: 1.5", "## Score B: 3.5").replace("## Score A: 3.0", "## Score A: 3.5")
    assert parse_comparison(text).winner == "tie"
    r = parse_comparison(PAIR_T2I.replace("## Score B: 1.5\n", ""))
    assert r.aspects["text_faithfulness"].score_b is None
    assert r.winner is None and r.overall_b is None
    assert "missing_score" in codes(r)


# -- garbage, empty, huge, CRLF, think blocks --------------------------------------------------------

@pytest.mark.parametrize("text", ["", "   \n\n ", None, "lorem ipsum dolor", "#\n##\n###", "Score: 4\nScore: 4",
                                  "1. Text Faithfulness:", "\x00\x01\x02", "## Refined Request:"])
def test_garbage_never_invents_scores(text):
    c = parse_critique(text)
    assert isinstance(c, Critique)
    assert c.overall is None
    assert c.problems
    assert all(a.score is None for a in c.aspects.values())


def test_empty_answer_problem():
    assert codes(parse_critique("")) == ["empty_answer"]
    assert "empty_answer" in codes(parse_comparison(""))


def test_crlf_line_ends():
    c = parse_critique(T2I_FULL.replace("\n", "\r\n"))
    assert c.problems == ()
    assert c.refined_request == "A photo of a red cube on a rustic wooden table with visible wood grain."
    assert c.raw == T2I_FULL.replace("\n", "\r\n")  # raw keeps the text as received


def test_think_block_is_skipped():
    c = parse_critique("<think>Score: 1\n1. Text Faithfulness:\n## Score: 1</think>\n" + T2I_FULL)
    assert c.score("text_faithfulness") == 2.5
    assert c.problems == ()


def test_one_megabyte_answer():
    text = T2I_FULL.replace("No text is requested.", "No text is requested. " + "blah " * 200_000)
    assert len(text) > 1_000_000
    c = parse_critique(text)
    assert c.score("text_faithfulness") == 2.5
    assert c.aspects["text_rendering"].not_applicable


def test_duplicate_section_first_counts():
    text = T2I_FULL.replace("# Summary:", "1. Text Faithfulness:\n## Justification: again\n## Score: 4\n# Summary:")
    c = parse_critique(text)
    assert c.score("text_faithfulness") == 2.5
    assert "duplicate_section" in codes(c)


def test_prose_mentioning_an_aspect_is_not_a_heading():
    text = T2I_FULL.replace("## Justification: Lighting is coherent;",
                            "## Justification:\nText Faithfulness was covered above.\nLighting is coherent;")
    c = parse_critique(text)
    assert c.problems == ()
    assert c.score("physical_quality") == 3.5


# -- JSON round trip and schema ----------------------------------------------------------------------

def test_round_trip_and_schema_keys():
    c = parse_critique(T2I_FULL)
    d = c.to_dict()
    assert set(d) == {"kind", "aspects", "overall", "analysis", "summary", "refinement_comments",
                      "refined_request", "needs_refinement", "problems", "raw"}
    assert set(d["aspects"]["text_faithfulness"]) == {"score", "not_applicable", "justification"}
    assert Critique.from_dict(json.loads(json.dumps(d))) == c
    assert result_from_json(c.to_json()) == c
    r = parse_comparison(PAIR_EDIT, "pairwise-edit")
    d = r.to_dict()
    assert {"overall_a", "overall_b", "winner"} <= set(d)
    assert set(d["aspects"]["image_faithfulness"]) >= {"score_a", "score_b", "winner"}
    assert result_from_dict(json.loads(r.to_json())) == r


@pytest.mark.parametrize("bad", [None, [], "text", {"kind": "nope"}, {"kind": "t2i"},
                                 {"kind": "t2i", "aspects": {"colour": {}}},
                                 {"kind": "t2i", "aspects": {"text_faithfulness": {"score": 9}}},
                                 {"kind": "t2i", "aspects": {}, "overall": "high"}])
def test_from_dict_rejects_wrong_objects(bad):
    from rationalrewards.models.format import CritiqueFormatError
    with pytest.raises(CritiqueFormatError):
        result_from_dict(bad)


def test_parse_dispatch_and_kind_errors():
    assert isinstance(parse(PAIR_T2I, "pairwise-t2i"), Comparison)
    assert isinstance(parse(T2I_FULL, "t2i"), Critique)
    from rationalrewards.models.format import UnknownKindError
    with pytest.raises(UnknownKindError):
        parse(T2I_FULL, "video")
