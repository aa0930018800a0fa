"""Score cards: size rules, legible fonts, colour-coded bars, every critique shape, batch padding."""
import numpy as np
import pytest
from PIL import Image, ImageColor

from rationalrewards.models.format.critique import AspectScore, Comparison, Critique, PairAspectScore
from rationalrewards.report import aspect_rows, render_scorecard, scorecards_batch
from rationalrewards.report.scorecard import (GREEN, NA_GREY, ORANGE, PANEL_BG, RED, fold_text, font_sizes,
                                              get_font, score_colour, short_reason, wrap)


def picture(w=512, h=512):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


def t2i(tf=3.5, pq=2.5, problems=(), overall=0.5):
    return Critique("t2i", {
        "text_faithfulness": AspectScore(tf, False, "The cat is on the sofa. The vase is missing."),
        "physical_quality": AspectScore(pq, False, "Six toes on the left paw."),
        "text_rendering": AspectScore(None, True, "No text was asked for."),
    }, overall, needs_refinement=True, problems=problems)


def edit():
    return Critique("edit", {
        "text_faithfulness": AspectScore(1.5, False, "The hat is still red."),
        "image_faithfulness": AspectScore(None, False, None),  # unreadable
        "physical_quality": AspectScore(3.8, False, "Clean."),
    }, None, problems=("missing_score: Image Faithfulness", "missing_section: Text Rendering"))


def pair():
    return Comparison("pairwise-t2i", {
        "text_faithfulness": PairAspectScore(3.5, 2.0, False, "A shows both dogs.", "A"),
        "physical_quality": PairAspectScore(3.0, 3.0, False, "Both clean.", "tie"),
        "text_rendering": PairAspectScore(None, None, True, None, None),
    }, 0.75, 0.5, "A")


def panel(card, pic_w):
    return np.asarray(card)[:, pic_w:, :]


def has_colour(arr, hex_colour, tol=6):
    rgb = np.array(ImageColor.getrgb(hex_colour))
    return bool((np.abs(arr.astype(int) - rgb).max(axis=-1) <= tol).any())


@pytest.mark.parametrize("make,n_pics", [(t2i, 1), (edit, 2), (pair, 2), (lambda: None, 1),
                                         (lambda: t2i(problems=("cut_off: stopped", "x: y")), 1)])
def test_card_size_and_non_blank_panel(make, n_pics):
    result = make()
    pics = [picture()] * n_pics
    card = render_scorecard(pics if n_pics > 1 else pics[0], result)
    assert card.mode == "RGB"
    assert card.height == 512
    pics_w = 512 * n_pics + (n_pics - 1) * 4
    assert card.width > pics_w + 16 * 16  # a panel of at least 16 body widths
    p = panel(card, pics_w + 2)
    # the panel holds dark text pixels, not only its background
    assert (p.sum(axis=-1) < 200).sum() > 500
    # the picture is pasted unchanged (below the corner where an A/B/Source label may sit)
    assert np.array_equal(np.asarray(card)[64:512, :512], np.asarray(pics[0])[64:])


def test_picture_scaled_to_standard_height_keeping_aspect():
    small = render_scorecard(picture(200, 100), t2i())
    assert small.height == 512  # upscaled so the text is legible
    assert small.width > 1024  # the 2:1 picture became 1024 x 512, the panel follows
    big = render_scorecard(picture(1000, 2000), t2i())
    assert big.height == 1024
    mid = render_scorecard(picture(700, 700), t2i(), width=500)
    assert mid.size == (700 + 500, 700)
    wide = render_scorecard(picture(3000, 20), t2i(), width=500)  # 150:1 stays a sane size
    assert wide.height == 512 and 0.9 * 4 * 512 <= wide.width - 500 <= 1.1 * 4 * 512
    tiny = render_scorecard(Image.new("RGB", (1, 1), (255, 0, 0)), t2i())
    assert tiny.size[1] == 512 and tiny.getpixel((10, 10)) == (255, 0, 0)


def test_fonts_are_legible_at_512():
    body, small, title = font_sizes(512)
    assert min(body, small, title) >= 14
    assert get_font(small).size >= 14
    # a capital letter of the smallest font is at least 10 px tall on the card
    left, top, right, bottom = get_font(small).getbbox("H")
    assert bottom - top >= 10
    assert font_sizes(1024)[0] >= 2 * font_sizes(512)[0] - 1  # fonts grow with the card


def test_bars_are_colour_coded():
    card = render_scorecard(picture(), t2i(tf=3.5, pq=1.5, overall=0.9))
    p = panel(card, 514)
    assert has_colour(p, GREEN) and has_colour(p, RED)
    assert has_colour(p, NA_GREY)  # text rendering is N/A: grey bar
    assert not has_colour(p, ORANGE)  # no score (nor the overall) is in the 2-3 band
    card2 = render_scorecard(picture(), t2i(tf=2.5, pq=2.5))
    assert has_colour(panel(card2, 514), ORANGE)
    assert score_colour(1.99) == RED and score_colour(2.0) == ORANGE and score_colour(3.0) == GREEN


def test_aspect_rows_states():
    rows = aspect_rows(edit())
    assert [r.key for r in rows] == ["text_faithfulness", "image_faithfulness", "physical_quality",
                                     "text_rendering"]
    assert [r.states[0] for r in rows] == ["ok", "missing", "ok", "missing"]
    assert rows[0].reason == "The hat is still red."
    prow = aspect_rows(pair())
    assert prow[0].scores == (3.5, 2.0) and prow[0].winner == "A"
    assert prow[2].states == ("na", "na")
    # an N/A image-faithfulness section in a t2i answer is not shown
    c = Critique("t2i", {**t2i().aspects, "image_faithfulness": AspectScore(None, True, None)}, 0.5)
    assert "image_faithfulness" not in [r.key for r in aspect_rows(c)]


def test_short_reason_and_wrap():
    assert short_reason("First part. Second part.") == "First part."
    assert short_reason("e.g. this stays together because no capital follows. Next.") == \
        "e.g. this stays together because no capital follows."
    assert short_reason(None) is None and short_reason("  ") is None
    assert len(short_reason("word " * 100, max_chars=50)) <= 50
    f = get_font(16)
    lines = wrap("lorem ipsum " * 40, f, 200, max_lines=2)
    assert len(lines) == 2 and lines[-1].endswith("…")
    assert all(f.getlength(x) <= 200 for x in lines)
    assert all(f.getlength(x) <= 100 for x in wrap("x" * 300, f, 100))  # an unbreakable word is cut
    assert fold_text("café — naïve 日") == "cafe - naive ?"


def test_long_text_still_fits_or_grows():
    long = "A very long justification that keeps going with details about everything " * 6
    c = Critique("edit", {k: AspectScore(2.0, False, long) for k in
                          ("text_faithfulness", "image_faithfulness", "physical_quality", "text_rendering")},
                 0.33, problems=tuple(f"cut_off: {i}" for i in range(9)))
    card = render_scorecard(picture(), c, width=260)
    assert card.height >= 512
    bottom = panel(card, 514)[-8:]
    assert (bottom == np.array(ImageColor.getrgb(PANEL_BG))).all()  # nothing drawn over the edge


def test_batch_pads_to_common_size():
    cards = scorecards_batch([picture(512, 512), picture(300, 600), [picture(), picture()]],
                             [t2i(), None, pair()])
    assert len({c.size for c in cards}) == 1
    assert all(c.mode == "RGB" for c in cards)
    with pytest.raises(ValueError, match="2 images but 1 critiques"):
        scorecards_batch([picture(), picture()], [t2i()])


def test_bad_inputs():
    with pytest.raises(TypeError, match="critique must be a Critique"):
        render_scorecard(picture(), {"kind": "t2i"})
    with pytest.raises(TypeError, match="PIL image"):
        render_scorecard(np.zeros((4, 4, 3)), t2i())
    with pytest.raises(ValueError, match="too narrow"):
        render_scorecard(picture(), t2i(), width=50)
