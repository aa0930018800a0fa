"""Critique JSON in PNG metadata: round trip (incl. non-ASCII), lists, extra chunks, clear errors."""
import json

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from rationalrewards.models.format.critique import AspectScore, Comparison, Critique, PairAspectScore
from rationalrewards.report import (PNG_KEY, CritiqueMetadataError, add_critique_to_pnginfo,
                                    read_critique_from_png, save_png_with_critique)


def critique(text="Le chat est sur le canapé — 猫はソファの上。 ✓"):
    return Critique("t2i", {
        "text_faithfulness": AspectScore(3.5, False, text),
        "physical_quality": AspectScore(None, False, None),
        "text_rendering": AspectScore(None, True, "N/A"),
    }, None, summary="résumé", refined_request="un chat « roux »", problems=("missing_score: x",),
        raw="# Detailed Judgement\n1. Text Faithfulness: ...")


def comparison():
    return Comparison("pairwise-edit", {
        "text_faithfulness": PairAspectScore(3.0, 2.0, False, "A follows it.", "A"),
    }, 0.66, 0.33, "A")


def img():
    return Image.new("RGB", (8, 6), (10, 200, 30))


def test_round_trip_single_with_non_ascii(tmp_path):
    c = critique()
    path = save_png_with_critique(img(), tmp_path / "a.png", c)
    got = read_critique_from_png(path)
    assert got == [c]
    assert got[0].aspects["text_faithfulness"].justification.endswith("猫はソファの上。 ✓")
    with Image.open(path) as im:
        assert im.size == (8, 6) and im.getpixel((0, 0)) == (10, 200, 30)
        assert json.loads(im.text[PNG_KEY])["kind"] == "t2i"  # one dict, not a list


def test_round_trip_list_and_comparison(tmp_path):
    items = [critique(), comparison()]
    path = save_png_with_critique(img(), tmp_path / "b.png", items)
    assert read_critique_from_png(path) == items
    with Image.open(path) as im:
        assert isinstance(json.loads(im.text[PNG_KEY]), list)
        assert read_critique_from_png(im) == items  # an opened image works too


def test_extra_chunks_kept_for_comfyui(tmp_path):
    workflow = {"nodes": [{"id": 1, "type": "SaveImage"}]}
    path = save_png_with_critique(img(), tmp_path / "c.png", critique().to_dict(),
                                  extra={"prompt": '{"1": {}}', "workflow": workflow})
    with Image.open(path) as im:
        assert im.text["prompt"] == '{"1": {}}'
        assert json.loads(im.text["workflow"]) == workflow
    assert read_critique_from_png(path)[0].summary == "résumé"


def test_pnginfo_replaces_not_duplicates(tmp_path):
    info = PngInfo()
    info.add_text("prompt", "{}")
    add_critique_to_pnginfo(info, critique("first"))
    add_critique_to_pnginfo(info, critique("second"))
    assert sum(ch[1].startswith(PNG_KEY.encode() + b"\0") for ch in info.chunks) == 1
    img().save(tmp_path / "d.png", pnginfo=info)
    got = read_critique_from_png(tmp_path / "d.png")
    assert got[0].aspects["text_faithfulness"].justification == "second"
    assert isinstance(add_critique_to_pnginfo(None, critique()), PngInfo)


def test_clear_errors(tmp_path):
    plain = tmp_path / "plain.png"
    img().save(plain)
    with pytest.raises(CritiqueMetadataError, match=r"plain\.png has no 'rationalrewards' metadata"):
        read_critique_from_png(plain)
    jpg = tmp_path / "x.jpg"
    img().save(jpg)
    with pytest.raises(CritiqueMetadataError, match="JPEG file"):
        read_critique_from_png(jpg)
    bad = tmp_path / "bad.png"
    info = PngInfo()
    info.add_text(PNG_KEY, "{not json")
    img().save(bad, pnginfo=info)
    with pytest.raises(CritiqueMetadataError, match="not valid JSON"):
        read_critique_from_png(bad)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    with pytest.raises(CritiqueMetadataError, match="not a readable image"):
        read_critique_from_png(junk)
    with pytest.raises(FileNotFoundError):
        read_critique_from_png(tmp_path / "missing.png")
    with pytest.raises(CritiqueMetadataError, match="not a Critique"):
        add_critique_to_pnginfo(None, "3.5")
    with pytest.raises(CritiqueMetadataError, match="empty"):
        add_critique_to_pnginfo(None, [])
    with pytest.raises(CritiqueMetadataError, match="extra may not use"):
        save_png_with_critique(img(), tmp_path / "e.png", critique(), extra={PNG_KEY: "x"})
