"""``rationalrewards critique``: the tiny local critic (random text: problems reported, no number
invented), a real local chat-completions server for --critic URL (real critique texts), bad input."""
import json

import numpy as np
import pytest
from PIL import Image

from chat_server import ChatServer
from rationalrewards.cli import main


def make_png(path, size=32, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8), "RGB").save(path)
    return str(path)


@pytest.fixture
def img(tmp_path):
    return make_png(tmp_path / "a.png")


def test_local_critic_text_reports_problems_and_invents_nothing(tiny_critic_dir, img, capsys):
    rc = main(["critique", img, "--prompt", "a red cube", "--critic", str(tiny_critic_dir),
               "--max-new-tokens", "8", "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Text Faithfulness" in out and "Physical and Visual Quality" in out
    assert "overall: ? (unreadable)" in out
    assert "problems (" in out and "cut_off" in out
    assert "refined prompt: (none)" in out


def test_local_critic_json_list_for_several_images_and_edit_kind(tiny_critic_dir, tmp_path, img, capsys):
    b = make_png(tmp_path / "b.png", seed=1)
    src = make_png(tmp_path / "src.png", seed=2)
    rc = main(["critique", img, b, "--prompt", "make it blue", "--source", src, "--critic", str(tiny_critic_dir),
               "--max-new-tokens", "8", "--json"])
    assert rc == 0
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list) and len(data) == 2
    for d in data:
        assert d["kind"] == "edit"
        assert d["overall"] is None
        assert all(a["score"] is None for a in d["aspects"].values())
        assert d["problems"]


def test_url_critic_prints_real_scores(img, capsys):
    with ChatServer() as srv:
        rc = main(["critique", img, "--prompt", "a red cube", "--critic", srv.url])
        sent = srv.chat_requests
    out = capsys.readouterr().out
    assert rc == 0
    assert "3.5" in out and "3.0" in out and "N/A" in out
    assert "overall: 0.75 (75%)" in out
    assert "refined prompt: a red cube, sharp focus, natural lighting" in out
    assert "problems" not in out
    assert len(sent) == 1 and sent[0].body["model"] == "rationalrewards"  # first model the server lists
    assert sent[0].images()[0].size == (32, 32)


def test_url_critic_json_single_object_and_edit(tmp_path, img, capsys):
    src = make_png(tmp_path / "src.png", seed=3)
    with ChatServer(models=["Qwen3-VL-8B-Instruct"]) as srv:
        rc = main(["critique", img, "--prompt", "make it blue", "--source", src, "--critic", srv.url,
                   "--model", "Qwen3-VL-8B-Instruct", "--json"])
        kinds = [r.kind() for r in srv.chat_requests]
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert isinstance(d, dict)
    assert d["kind"] == "edit" and d["aspects"]["image_faithfulness"]["score"] == 3.0
    assert d["refined_request"] == "make it blue, sharp focus, natural lighting"
    assert kinds == ["edit"]


def test_url_critic_wrong_model_is_one_line_exit_2(img, capsys):
    with ChatServer() as srv:
        rc = main(["critique", img, "--prompt", "x", "--critic", srv.url, "--model", "nope"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "nope" in err


@pytest.mark.parametrize("case", ["missing", "corrupt", "folder", "truncated"])
def test_bad_images_exit_2_before_loading_the_critic(tmp_path, img, case, capsys):
    bad = tmp_path / "bad.png"
    if case == "corrupt":
        bad.write_bytes(b"not a png at all")
    elif case == "folder":
        bad.mkdir()
    elif case == "truncated":
        bad.write_bytes(open(make_png(tmp_path / "full.png", size=64), "rb").read()[:200])
    # the critic folder does not exist: an image error must come first
    rc = main(["critique", img, str(bad), "--prompt", "x", "--critic", str(tmp_path / "no-critic")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "bad.png" in err


def test_bad_critic_folder_and_offline_default(tmp_path, img, monkeypatch, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["critique", img, "--prompt", "x", "--critic", str(empty)]) == 2
    assert "config.json" in capsys.readouterr().err
    # The default critic is a repo id looked up in $RATIONALREWARDS_MODELS; offline it is a clear error.
    monkeypatch.setenv("RATIONALREWARDS_MODELS", str(tmp_path / "models"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["critique", img, "--prompt", "x"]) == 2
    err = capsys.readouterr().err
    assert "TIGER-Lab/RationalRewards-8B-T2I" in err and "HF_HUB_OFFLINE" in err
    assert str(tmp_path / "models") in err
    assert main(["critique", img, "--prompt", "x", "--source", img]) == 2
    assert "TIGER-Lab/RationalRewards-8B-Edit" in capsys.readouterr().err


def test_empty_prompt_and_model_without_url(tiny_critic_dir, img, capsys):
    assert main(["critique", img, "--prompt", "  "]) == 2
    assert "--prompt" in capsys.readouterr().err
    assert main(["critique", img, "--prompt", "x", "--critic", str(tiny_critic_dir), "--model", "m"]) == 2
    assert "--model" in capsys.readouterr().err


def test_speed_and_fp8_options(tiny_critic_dir, img, monkeypatch, capsys):
    """--speed reaches the critic (a compiled critic that cannot compile says why on stderr and decodes at
    standard speed); --quantization fp8 on the CPU is one line naming the reason and the choice that works."""
    from rationalrewards.models.backends import local_options

    monkeypatch.setattr(local_options, "cpp_compiler", lambda: None)
    rc = main(["critique", img, "--prompt", "a cube", "--critic", str(tiny_critic_dir), "--max-new-tokens", "4",
               "--device", "cpu", "--speed", "compiled"])
    err = capsys.readouterr().err
    assert rc == 0 and "critic: speed='compiled' cannot run here" in err and "C++ compiler" in err
    rc = main(["critique", img, "--prompt", "a cube", "--critic", str(tiny_critic_dir), "--device", "cpu",
               "--quantization", "fp8"])
    err = capsys.readouterr().err
    assert rc == 2 and "quantization='fp8' needs an NVIDIA GPU" in err and "use quantization none" in err
    with pytest.raises(SystemExit):
        main(["critique", img, "--prompt", "a cube", "--speed", "turbo"])
