"""HTML report of a refine run: one row per iteration, score bars, best marked, all text escaped."""
import re

import pytest
from PIL import Image

from rationalrewards.models.format.critique import AspectScore, Comparison, Critique, PairAspectScore
from rationalrewards.report import write_html_report


def crit(tf, pq, problems=()):
    aspects = {"text_faithfulness": AspectScore(tf, False, "Follows the <prompt>. More."),
               "physical_quality": AspectScore(pq, False, None),
               "text_rendering": AspectScore(None, True, None)}
    overall = None if pq is None else ((tf + pq) / 2 - 1) / 3
    return Critique("t2i", aspects, overall, needs_refinement=True, problems=problems)


def iterations(tmp_path):
    for i in range(3):
        Image.new("RGB", (4, 4)).save(tmp_path / f"iter_{i}.png")
    return [
        {"iteration": 0, "image_file": "iter_0.png", "prompt": 'a cat <script>alert("x")</script> & dog',
         "seed": 42, "critique": crit(2.0, 3.0).to_dict(),
         "decision": {"next_prompt": "a cat & a dog, <b>sharp</b>", "changed": True,
                      "reason": "physical quality 3.0 < threshold"}, "seconds": 1.234},
        {"iteration": 1, "image_file": str(tmp_path / "iter_1.png"), "prompt": "a cat & a dog, <b>sharp</b>",
         "seed": 42, "critique": crit(3.5, 4.0), "decision": {"next_prompt": "same", "changed": False,
                                                              "reason": "all aspects >= 3"}},
        {"iteration": 2, "image_file": "iter 2 ü.png", "prompt": "p", "critique": crit(3.0, None,
                                                                                     ("missing_score: pq",))},
    ]


def test_report_escapes_text_and_has_rows(tmp_path):
    path = write_html_report(tmp_path / "out", iterations(tmp_path), title="Run <1>")
    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    assert "<script>" not in page and "<b>sharp" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; dog" in page
    assert "<title>Run &lt;1&gt;</title>" in page
    assert "Follows the &lt;prompt&gt;." in page and "More." not in page  # first sentence only
    assert len(re.findall(r'<section class="it', page)) == 3
    assert "physical quality 3.0 &lt; threshold" in page


def test_report_images_relative_and_bars(tmp_path):
    out = tmp_path
    page = write_html_report(out, iterations(tmp_path), title="t").read_text(encoding="utf-8")
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs == ["iter_0.png", "iter_1.png", "iter%202%20%C3%BC.png"]  # absolute made relative
    assert "width:87.5%" in page  # 3.5 of 4
    assert 'class="bar na"' in page and 'class="bar missing"' in page
    assert "1 parsing problem: missing_score" in page
    assert "seed 42" in page and "1.2 s" in page


def test_best_iteration_marked(tmp_path):
    page = write_html_report(tmp_path, iterations(tmp_path), title="t").read_text(encoding="utf-8")
    best = re.findall(r'<section class="it best" id="it(\d+)"', page)
    assert best == ["1"]
    assert "best: iteration 1" in page


def test_report_minimal_entries_and_comparison(tmp_path):
    comp = Comparison("pairwise-t2i", {"text_faithfulness": PairAspectScore(3.0, 2.0, False, "x", "A")},
                      0.66, 0.33, "A")
    page = write_html_report(tmp_path, [{"iteration": 0, "prompt": "p"},
                                        {"iteration": 1, "critique": comp.to_dict(), "prompt": "q"}],
                             title="t").read_text(encoding="utf-8")
    assert "No critique." in page and "Winner: A" in page and "A better" in page


def test_out_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        write_html_report(f, [], title="t")
