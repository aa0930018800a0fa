"""ComfyUI prompt syntax keeping and the CLIP token estimate / 77-token window."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rationalrewards.engine import (estimate_clip_tokens, extract_syntax, fit_token_window, plain_text,
                                    prompt_tokens, restore_syntax)

PROMPT = r"masterpiece, (red hat:1.2), ((blue scarf)), [fog], embedding:EasyNegative, a cat \(cute\) <lora:catStyle:0.8>"


def test_extract_syntax():
    syn = extract_syntax(PROMPT)
    assert [(g.literal, g.text, g.weight) for g in syn.groups] == [
        ("(red hat:1.2)", "red hat", 1.2), ("((blue scarf))", "blue scarf", None), ("[fog]", "fog", None)]
    assert syn.embeddings == ("embedding:EasyNegative",)
    assert syn.tags == ("<lora:catStyle:0.8>",)
    assert extract_syntax("a cat").empty


def test_embedding_inside_a_group_travels_with_the_group():
    syn = extract_syntax("a cat, (embedding:style:1.1)")
    assert syn.embeddings == () and syn.groups[0].literal == "(embedding:style:1.1)"


def test_unbalanced_brackets_are_text():
    assert extract_syntax("a cat :) and (a dog").groups == ()


def test_plain_text():
    assert plain_text(PROMPT) == "masterpiece, red hat, blue scarf, fog, a cat (cute)"
    assert plain_text("(a (red:1.3) hat:1.1), <lyco:x:1>") == "a red hat"


def test_reapplies_weight_where_the_words_still_are():
    text, notes = restore_syntax("a cat, (red hat:1.2)", "A cat wearing a Red Hat on a sofa")
    assert text == "A cat wearing a (red hat:1.2) on a sofa"
    assert notes == ["re-applied weight (red hat:1.2)"]


def test_appends_groups_whose_words_are_gone():
    text, _ = restore_syntax("a cat, ((blue scarf)), [fog]", "a cat on a sofa")
    assert text == "a cat on a sofa, ((blue scarf)), [fog]"


def test_present_groups_are_not_duplicated():
    assert restore_syntax("a cat, (red:1.2)", "a (red:1.2) cat")[0] == "a (red:1.2) cat"
    # the refined text weights the same words itself: respected
    assert restore_syntax("a cat, (red:1.2)", "a (red:1.4) cat")[0] == "a (red:1.4) cat"


def test_words_inside_other_words_are_not_wrapped():
    assert restore_syntax("(cat:1.2)", "a catalogue")[0] == "a catalogue, (cat:1.2)"


def test_embeddings_and_tags_are_appended_tags_last():
    text, notes = restore_syntax("embedding:goodHands, a cat <lora:cat:0.6> <hypernet:h:1>",
                                 "a cat <lora:cat:0.9>, on a sofa")
    assert text == "a cat, on a sofa, embedding:goodHands, <lora:cat:0.9>, <hypernet:h:1>"
    assert "put back <lora:cat:0.6>" not in notes  # same LoRA at another strength is kept as written


def test_keep_phrases_are_case_insensitive():
    text, notes = restore_syntax("x", "A Golden Light over the sea", keep_phrases=("golden light", "film grain"))
    assert text == "A Golden Light over the sea, film grain"
    assert notes == ["put back must-keep phrase 'film grain'"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["a cat", "(red:1.2)", "[fog]", "embedding:neg", "<lora:s:0.5>", "sofa",
                                 "((bold))", "green", "a, b"]), min_size=1, max_size=6),
       st.text(alphabet="abc ,.()", max_size=30))
def test_restore_always_keeps_every_item(parts, refined):
    original = ", ".join(parts)
    text, _ = restore_syntax(original, refined, keep_phrases=("green",))
    syn = extract_syntax(original)
    for item in syn.tags + syn.embeddings:
        assert item.lower() in text.lower()
    for g in syn.groups:
        assert g.literal in text or g.text.lower() in plain_text(text).lower()
    assert "green" in text.lower()


# -- token estimate ---------------------------------------------------------------------------------

# Counts of the real SD1.5 CLIP tokenizer (ComfyUI's comfy/sd1_tokenizer), start/end excluded.
REAL_COUNTS = {
    "a photo of an astronaut riding a horse on mars": 10,
    "masterpiece, best quality, photorealistic portrait of a woman": 11,
    "greg rutkowski, artstation, cyberpunk city, hyperdetailed": 12,
    'A neon sign that says "OPEN 24/7" above the door of a rainy diner at night': 21,
    "ultra-detailed 8k render of a steampunk airship above Victorian London, volumetric fog, cinematic lighting": 21,
    "東京の夜": 6,
}


@pytest.mark.parametrize("text,real", REAL_COUNTS.items())
def test_estimate_is_close_to_the_real_tokenizer(text, real):
    assert abs(estimate_clip_tokens(text) - real) <= 2


def test_estimate_basics():
    assert estimate_clip_tokens("") == 0
    assert estimate_clip_tokens("cat") == 1
    assert estimate_clip_tokens("1024") == 4  # CLIP splits digits one by one
    assert estimate_clip_tokens("cat, dog") == 3


def test_prompt_tokens_counts_what_the_encoder_sees():
    assert prompt_tokens("a cat <lora:catStyle:0.8>") == 2
    assert prompt_tokens("(a cat:1.2)") == 2
    assert prompt_tokens("a cat, embedding:neg") == estimate_clip_tokens("a cat") + 1


@pytest.mark.skipif(not os.environ.get("RATIONALREWARDS_COMFYUI"), reason="set RATIONALREWARDS_COMFYUI to a ComfyUI checkout")
def test_estimate_against_comfyuis_tokenizer_files():
    from transformers import CLIPTokenizer

    folder = Path(os.environ["RATIONALREWARDS_COMFYUI"]) / "comfy" / "sd1_tokenizer"
    tok = CLIPTokenizer.from_pretrained(str(folder))
    for text, real in REAL_COUNTS.items():
        assert len(tok(text)["input_ids"]) - 2 == real


# -- 77-token window --------------------------------------------------------------------------------

LONG = ", ".join(f"part {w} with words" for w in "abcdefghijklmnopqrstuvwxyz")


def test_window_ok_returns_prompt_unchanged():
    assert fit_token_window("a cat", 77) == ("a cat", [])


def test_window_keep_warns():
    text, warnings = fit_token_window(LONG, 77, "keep")
    assert text == LONG and len(warnings) == 1
    assert "over the 75" in warnings[0] and "estimated without the tokenizer" in warnings[0]


def test_window_trim_drops_trailing_parts_and_keeps_protected_ones():
    prompt = LONG + ", embedding:neg, golden light <lora:s:1>"
    text, warnings = fit_token_window(prompt, 77, "trim", keep_phrases=("golden light",))
    assert prompt_tokens(text) <= 75 and warnings[0].startswith("trimmed")
    assert text.startswith("part a with words, part b with words")
    assert text.endswith("embedding:neg, golden light <lora:s:1>")
    assert "part z" not in text


def test_window_trim_cuts_a_long_sentence_at_a_word():
    sentence = "a very big and beautiful red fox with a long tail and " * 9
    text, _ = fit_token_window(sentence.strip(), 77, "trim")
    assert prompt_tokens(text) <= 75 and sentence.startswith(text)
    assert text.split()[-1] not in {"and", "with", "a"}


def test_window_trim_reports_what_it_cannot_remove():
    phrase = " ".join(["word"] * 80)
    text, warnings = fit_token_window(phrase, 77, "trim", keep_phrases=(phrase,))
    assert text == phrase and "still" in warnings[-1]


def test_window_options():
    with pytest.raises(ValueError, match="overflow"):
        fit_token_window("a", 77, "drop")
    with pytest.raises(ValueError, match="token_limit"):
        fit_token_window("a", 2)
