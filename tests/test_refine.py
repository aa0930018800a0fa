"""The refine policy alone: rules, sources of the new prompt, reasons, syntax keeping, token window."""
from __future__ import annotations

import dataclasses
import json

import pytest

from rationalrewards.engine import (DEFAULT_REWRITE_INSTRUCTION, Decision, RefineOptionError,
                                    build_rewrite_messages, clean_rewrite, refine_prompt)
from rationalrewards.models.format import AspectScore, Comparison, Critique, parse_critique


def crit(tf=3.5, pq=3.5, tr=None, refined: str | None = "a better prompt", problems=(), kind="t2i", **extra) -> Critique:
    """A Critique built directly; tr None = N/A; a score of "?" = applicable but unreadable."""
    def a(s):
        return AspectScore(None, not_applicable=False) if s == "?" else AspectScore(s)

    aspects = {"text_faithfulness": a(tf), "physical_quality": a(pq),
               "text_rendering": AspectScore(None, True) if tr is None else a(tr)}
    aspects.update(extra)
    return Critique(kind, aspects, None, refined_request=refined, problems=problems)


def test_paper_rule_refines_when_any_aspect_is_low():
    d = refine_prompt("a cat", crit(tf=2.5, pq=3.5, tr=2.0))
    assert d.changed and d.next_prompt == "a better prompt" and d.needs_refinement is True
    assert d.reason == "refined: Text Faithfulness 2.5 < 3.0, Text Rendering 2.0 < 3.0"


def test_paper_rule_keeps_when_all_applicable_aspects_pass():
    d = refine_prompt("a cat", crit(tf=3.0, pq=4.0))
    assert not d.changed and d.next_prompt == "a cat" and d.needs_refinement is False
    assert d.reason == "kept: all aspects >= 3.0"


def test_threshold_is_used():
    assert refine_prompt("a cat", crit(tf=3.0, pq=4.0), threshold=3.5).reason == \
        "refined: Text Faithfulness 3.0 < 3.5"


def test_upstream_rule_ignores_text_rendering():
    d = refine_prompt("a cat", crit(tf=3.0, pq=3.0, tr=1.0), rule="upstream")
    assert not d.changed and d.reason.startswith("kept: Text Faithfulness and Physical and Visual Quality >= 3.0")
    d = refine_prompt("a cat", crit(tf=3.0, pq=2.0, tr=4.0), rule="upstream")
    assert d.changed and d.reason.startswith("refined: Physical and Visual Quality 2.0 < 3.0")


def test_always_rule():
    d = refine_prompt("a cat", crit(tf=4.0, pq=4.0), rule="always")
    assert d.changed and d.reason == "refined: rule 'always'"


def test_unreadable_critique_keeps_the_prompt():
    c = parse_critique("Sorry, I cannot help with that.", "t2i")
    d = refine_prompt("a cat", c)
    assert not d.changed and d.next_prompt == "a cat" and d.needs_refinement is None
    assert d.reason.startswith("kept: the critique could not be read (no score for Text Faithfulness")
    d = refine_prompt("a cat", crit(tf=3.5, pq="?"))
    assert "no score for Physical and Visual Quality" in d.reason


def test_a_low_score_decides_even_when_another_is_unreadable():
    assert refine_prompt("a cat", crit(tf=2.0, pq="?")).changed


def test_missing_and_empty_refined_request_keep_the_original():
    d = refine_prompt("a cat", crit(tf=2.0, refined=None))
    assert not d.changed and d.next_prompt == "a cat" and d.needs_refinement is True
    assert "the critic wrote no refined request" in d.reason and "original prompt stands" in d.reason
    d = refine_prompt("a cat", crit(tf=2.0, refined=None,
                                    problems=("empty_refined_request: the Refined Request is empty",)))
    assert "the critic's refined request is empty" in d.reason
    assert not refine_prompt("a cat", crit(tf=2.0, refined="   ")).changed


def test_multiline_refined_request_from_the_parser():
    text = ("1. Text Faithfulness:\n## Justification: x\n## Score: 2.0\n"
            "2. Physical and Visual Quality:\n## Justification: x\n## Score: 3.0\n"
            "3. Text Rendering:\n## Justification: x\n## Score: N/A\n# Summary: s\n"
            "# User Request Refinement:\n## Refinement Comments: c\n## Refined Request: A tabby cat\n"
            "sitting on a red sofa.\n")
    d = refine_prompt("a cat", parse_critique(text, "t2i"))
    assert d.changed and d.next_prompt == "A tabby cat\nsitting on a red sofa."


def test_refined_request_equal_to_prompt_is_not_a_change():
    d = refine_prompt("A cat  on a sofa", crit(tf=2.0, refined="a cat on a sofa"))
    assert not d.changed and d.next_prompt == "A cat  on a sofa"
    assert "equals the current prompt" in d.reason


def test_rewrite_callable_replaces_the_refined_request_and_sees_plain_text():
    seen = {}

    def rewrite(prompt, critique):
        seen["prompt"] = prompt
        return '<think>hmm</think>Refined prompt: "a tabby cat on a sofa"'

    d = refine_prompt("a cat, (sofa:1.2) <lora:x:1>", crit(tf=2.0), rewrite=rewrite)
    assert seen["prompt"] == "a cat, sofa"
    assert d.next_prompt == "a tabby cat on a (sofa:1.2), <lora:x:1>"


def test_rewrite_is_not_called_when_no_refinement_is_needed():
    d = refine_prompt("a cat", crit(), rewrite=lambda p, c: pytest.fail("called"))
    assert not d.changed


def test_empty_rewrite_keeps_the_prompt():
    d = refine_prompt("a cat", crit(tf=2.0), rewrite=lambda p, c: "  ")
    assert not d.changed and "the rewrite is empty" in d.reason


def test_clean_rewrite():
    assert clean_rewrite("**Improved prompt:** 'a cat'") == "a cat"
    assert clean_rewrite("a cat, sofa") == "a cat, sofa"
    assert clean_rewrite(None) == ""


def test_syntax_and_keep_phrases_are_put_back_with_notes():
    d = refine_prompt("masterpiece, a cat, (red hat:1.3), embedding:goodHands <lora:cat:0.6>",
                      crit(tf=2.0, refined="A fluffy cat wearing a red hat"), keep_phrases=("masterpiece", ""))
    assert d.next_prompt == ("A fluffy cat wearing a (red hat:1.3), embedding:goodHands, masterpiece, "
                             "<lora:cat:0.6>")
    assert "re-applied weight (red hat:1.3)" in d.warnings


def test_token_window_warning_and_trim():
    long_refined = ", ".join(f"detail number {w}" for w in ("one", "two", "three", "four", "five", "six", "seven",
                                                              "eight", "nine", "ten", "eleven", "twelve", "thirteen",
                                                              "fourteen", "fifteen", "sixteen", "seventeen",
                                                              "eighteen", "nineteen", "twenty", "more", "extra"))
    keep = refine_prompt("a cat", crit(tf=2.0, refined=long_refined), token_limit=77)
    assert keep.changed and keep.next_prompt == long_refined
    assert any("77-token window" in w and "estimated" in w for w in keep.warnings)
    trim = refine_prompt("a cat <lora:x:1>", crit(tf=2.0, refined=long_refined), token_limit=77, overflow="trim",
                         keep_phrases=("detail number twenty",))
    assert trim.changed and len(trim.next_prompt) < len(long_refined)
    assert trim.next_prompt.endswith("detail number twenty, <lora:x:1>")
    assert any(w.startswith("trimmed the prompt") for w in trim.warnings)


def test_kept_prompt_over_the_window_warns_but_is_not_trimmed():
    prompt = " ".join(["word"] * 90)
    d = refine_prompt(prompt, crit(), token_limit=77, overflow="trim")
    assert d.next_prompt == prompt and not d.changed and d.warnings


def test_token_counter_replaces_the_estimate():
    d = refine_prompt("a cat", crit(tf=2.0, refined="a b c"), token_limit=77, token_counter=lambda s: 100)
    assert any("counted" in w for w in d.warnings)


@pytest.mark.parametrize("kwargs,match", [({"rule": "median"}, "rule"), ({"threshold": 0.5}, "threshold"),
                                          ({"overflow": "cut"}, "overflow")])
def test_bad_options(kwargs, match):
    with pytest.raises(RefineOptionError, match=match):
        refine_prompt("a cat", crit(), **kwargs)


def test_a_comparison_is_refused():
    comp = Comparison("pairwise-t2i", {}, None, None, None)
    with pytest.raises(RefineOptionError, match="Comparison"):
        refine_prompt("a cat", comp)


def test_decision_is_frozen_and_serialisable():
    d = refine_prompt("a cat", crit(tf=2.0))
    assert isinstance(d, Decision)
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.changed = False
    assert json.loads(json.dumps(d.to_dict()))["reason"] == d.reason


def test_build_rewrite_messages():
    c = crit(tf=2.0, tr=None, refined="a tabby cat")
    msgs = build_rewrite_messages("Be brief.", "a cat, (sofa:1.2)", c)
    assert msgs[0]["role"] == "system" and msgs[0]["content"][0]["text"] == "Be brief."
    user = msgs[1]["content"][0]["text"]
    assert "Current prompt:\na cat, sofa" in user
    assert "Text Faithfulness (2.0/4)" in user and "Text Rendering (N/A)" in user and "a tabby cat" in user
    assert all(p["type"] == "text" for m in msgs for p in m["content"])
    assert build_rewrite_messages("  ", "a cat", c)[0]["content"][0]["text"] == DEFAULT_REWRITE_INSTRUCTION
