"""``rationalrewards refine``: a tiny random diffusers pipeline (tests/tiny_diffusers.py, loaded back
through AutoPipelineForText2Image / AutoPipelineForImage2Image) with the tiny local critic and with a
real local chat-completions server; the files of every iteration; bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from chat_server import ChatServer
from rationalrewards.cli import main
from rationalrewards.report.pngmeta import read_critique_from_png

FAST = ["--steps", "2", "--width", "32", "--height", "32", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def tiny_pipe_dir(tmp_path_factory):
    from tiny_diffusers import build_tiny_diffusers

    return build_tiny_diffusers(tmp_path_factory.mktemp("gen") / "tiny-sd")


def test_url_critic_refines_regenerates_and_writes_every_iteration(tiny_pipe_dir, tmp_path, capsys):
    out = tmp_path / "run"
    with ChatServer() as srv:
        # threshold 3.8: the server's 3.5 / 3.0 scores always ask for refinement
        rc = main(["refine", "--prompt", "a red cube", "--generator", str(tiny_pipe_dir), "--critic", srv.url,
                   "--iterations", "2", "--threshold", "3.8", "--out", str(out), *FAST])
        texts = [r.text() for r in srv.chat_requests]
    stdout = capsys.readouterr().out
    assert rc == 0
    assert len(texts) == 2
    assert "a red cube, sharp focus, natural lighting" in texts[1]  # the refined prompt was regenerated
    lines = [x for x in stdout.splitlines() if x.startswith("iteration ")]
    assert lines[0].startswith("iteration 1/2: overall 0.75") and "-> refine: a red cube, sharp focus" in lines[0]
    assert lines[1].startswith("iteration 2/2") and "stop (max_iterations)" in lines[1]
    for name in ("iter_00.png", "iter_01.png", "best.png", "critiques.json", "report.html"):
        assert (out / name).is_file(), name
    (crit,) = read_critique_from_png(out / "iter_01.png")
    assert crit.score("text_faithfulness") == 3.5 and crit.overall == 0.75
    assert Image.open(out / "iter_00.png").size == (32, 32)
    data = json.loads((out / "critiques.json").read_text())
    assert data["stop_reason"] == "max_iterations" and data["error"] is None
    assert [h["prompt"] for h in data["history"]] == ["a red cube", "a red cube, sharp focus, natural lighting"]
    assert data["history"][1]["image_file"] == "iter_01.png"
    assert data["best"]["iteration"] == 0 and data["best"]["image_file"] == "best.png"
    html = (out / "report.html").read_text()
    assert 'src="iter_00.png"' in html and 'src="iter_01.png"' in html


def test_tiny_critic_unreadable_critique_keeps_the_prompt(tiny_pipe_dir, tiny_critic_dir, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["refine", "--prompt", "a red cube", "--generator", str(tiny_pipe_dir), "--critic",
               str(tiny_critic_dir), "--iterations", "3", "--max-new-tokens", "8", "--out", str(out), *FAST])
    stdout = capsys.readouterr().out
    assert rc == 0
    assert "iteration 1/3: overall ? (unreadable)" in stdout and "stop (no_change)" in stdout
    data = json.loads((out / "critiques.json").read_text())
    (entry,) = data["history"]
    assert entry["overall"] is None and entry["critique"]["problems"]
    assert all(v is None for v in entry["scores"].values())
    assert entry["decision"]["changed"] is False and entry["decision"]["next_prompt"] == "a red cube"
    assert read_critique_from_png(out / "iter_00.png")[0].overall is None


def test_source_uses_an_image_to_image_pipeline_and_the_edit_critique(tiny_pipe_dir, tmp_path, capsys):
    src = tmp_path / "src.png"
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(src)
    out = tmp_path / "run"
    with ChatServer() as srv:
        rc = main(["refine", "--prompt", "make it blue", "--generator", str(tiny_pipe_dir), "--critic", srv.url,
                   "--source", str(src), "--strength", "0.5", "--iterations", "1", "--out", str(out), *FAST])
        reqs = srv.chat_requests
        sent = reqs[0].images()
    err = capsys.readouterr().err
    assert rc == 0
    assert "Img2Img" in err  # the run's first line names the pipeline class
    assert [r.kind() for r in reqs] == ["edit"]
    assert np.array_equal(np.asarray(sent[0]), np.asarray(Image.open(src).convert("RGB")))
    (crit,) = read_critique_from_png(out / "iter_00.png")
    assert crit.kind == "edit" and crit.score("image_faithfulness") == 3.0


@pytest.mark.parametrize("case", ["critic_as_generator", "empty_folder", "out_is_file", "width", "missing_source"])
def test_bad_input_exit_2_one_line(tiny_critic_dir, tmp_path, case, capsys):
    out = tmp_path / "run"
    gen = tmp_path / "empty"
    gen.mkdir()
    extra = []
    if case == "critic_as_generator":
        gen, want = tiny_critic_dir, "critic"
    elif case == "empty_folder":
        want = "model_index.json"
    elif case == "out_is_file":
        out.write_text("keep me")
        want = "is a file"
    elif case == "width":
        extra, want = ["--width", "30"], "multiple of 8"
    else:
        extra, want = ["--source", str(tmp_path / "nope.png")], "no such file"
    rc = main(["refine", "--prompt", "x", "--generator", str(gen), "--critic", "http://127.0.0.1:9",
               "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and want in err, err
    if case == "out_is_file":
        assert out.read_text() == "keep me"
