"""``rationalrewards score``: JSON lines appended as it goes, resumable, concurrent against a URL
critic (a real local chat server), edits via "source", bad input leaves written lines intact."""
import json

import numpy as np
import pytest
from PIL import Image

from chat_server import ChatServer
from rationalrewards.cli import main


def make_folder(tmp_path, n=4, edit_source=False):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8), "RGB").save(folder / f"im{i}.png")
        lines.append({"image": f"im{i}.png", "prompt": f"prompt {i}"})
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return folder, prompts


def read_lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def test_url_critic_scores_concurrently_and_resumes(tmp_path, capsys):
    folder, prompts = make_folder(tmp_path, n=5)
    out = tmp_path / "res" / "scores.jsonl"
    with ChatServer(latency=0.2) as srv:
        rc = main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", srv.url,
                   "--concurrency", "2"])
        assert rc == 0
        assert srv.max_in_flight == 2  # batches of 2 in flight at once, never more
        rows = read_lines(out)
        assert [r["image"] for r in rows] == [f"im{i}.png" for i in range(5)]
        assert all(r["overall"] == 0.75 and r["critique"]["aspects"]["text_faithfulness"]["score"] == 3.5
                   for r in rows)
        assert all(any(f"prompt {i}" in r.text() for r in srv.chat_requests) for i in range(5))
        n_requests = len(srv.chat_requests)
        before = out.read_bytes()
        # a second run scores nothing and leaves the file as it was
        assert main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", srv.url]) == 0
        assert len(srv.chat_requests) == n_requests and out.read_bytes() == before
        # a new line and an unfinished last line (a killed run): only those two are scored
        Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(folder / "new.png")
        with open(prompts, "a") as f:
            f.write(json.dumps({"image": "new.png", "prompt": "a new one"}) + "\n")
        out.write_bytes(before + b'{"image": "im9.png", "pro')
        assert main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", srv.url]) == 0
        assert len(srv.chat_requests) == n_requests + 1
    rows = read_lines(out)
    assert [r["image"] for r in rows] == [f"im{i}.png" for i in range(5)] + ["new.png"]
    assert "unfinished line" in capsys.readouterr().err


def test_edit_lines_send_the_source(tmp_path):
    folder, prompts = make_folder(tmp_path, n=2)
    prompts.write_text(json.dumps({"image": "im1.png", "prompt": "make it blue", "source": "im0.png"}) + "\n")
    out = tmp_path / "s.jsonl"
    with ChatServer() as srv:
        assert main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", srv.url]) == 0
        assert [r.kind() for r in srv.chat_requests] == ["edit"]
        sent = srv.chat_requests[0].images()
    src = np.asarray(Image.open(folder / "im0.png"))
    assert np.array_equal(np.asarray(sent[0]), src)  # source first, as the model was trained
    (row,) = read_lines(out)
    assert row["source"] == "im0.png" and row["critique"]["kind"] == "edit"


def test_local_tiny_critic_records_problems_not_numbers(tiny_critic_dir, tmp_path, capsys):
    folder, prompts = make_folder(tmp_path, n=3)
    out = tmp_path / "s.jsonl"
    rc = main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", str(tiny_critic_dir),
               "--max-new-tokens", "8", "--concurrency", "2"])
    assert rc == 0
    rows = read_lines(out)
    assert len(rows) == 3
    for r in rows:
        assert r["overall"] is None and r["critique"]["problems"]
    assert "3 critique(s) without an overall score" in capsys.readouterr().out


def test_bad_json_line_names_the_line_and_keeps_the_output(tmp_path, capsys):
    folder, prompts = make_folder(tmp_path, n=3)
    out = tmp_path / "s.jsonl"
    out.write_text('{"image": "old.png", "prompt": "kept", "overall": 0.5, "critique": {}}\n')
    before = out.read_bytes()
    text = prompts.read_text().splitlines()
    text.insert(2, "{not json")
    prompts.write_text("\n".join(text) + "\n")
    rc = main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and "line 3" in err and "not JSON" in err
    assert out.read_bytes() == before


def test_unreadable_image_later_keeps_earlier_lines(tmp_path, capsys):
    folder, prompts = make_folder(tmp_path, n=3)
    # a readable header (size 32x32) but cut-off pixel data: only decoding finds it, mid-run
    full = (folder / "im2.png").read_bytes()
    (folder / "im2.png").write_bytes(full[: len(full) // 2])
    out = tmp_path / "s.jsonl"
    with ChatServer() as srv:
        rc = main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", srv.url,
                   "--concurrency", "1"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "line 3" in err and "im2.png" in err and "not a readable image" in err
    assert [r["image"] for r in read_lines(out)] == ["im0.png", "im1.png"]


@pytest.mark.parametrize("case", ["missing_image", "no_prompt_key", "out_is_folder", "dir_is_file",
                                  "missing_prompts", "bad_out_line"])
def test_bad_input_exit_2_one_line(tmp_path, case, capsys):
    folder, prompts = make_folder(tmp_path, n=2)
    out = tmp_path / "s.jsonl"
    args = None
    if case == "missing_image":
        prompts.write_text(json.dumps({"image": "gone.png", "prompt": "x"}) + "\n")
        want = "gone.png"
    elif case == "no_prompt_key":
        prompts.write_text(json.dumps({"image": "im0.png"}) + "\n")
        want = "line 1"
    elif case == "out_is_folder":
        out.mkdir()
        want = "is a folder"
    elif case == "dir_is_file":
        args = ["score", str(prompts), "--prompts", str(prompts), "--out", str(out)]
        want = "not a folder"
    elif case == "missing_prompts":
        prompts.unlink()
        want = "no such file"
    else:
        out.write_text("garbage line\n{\"image\": \"im0.png\", \"prompt\": \"prompt 0\"}\n")
        want = "line 1"
    before = out.read_bytes() if out.is_file() else None
    rc = main(args or ["score", str(folder), "--prompts", str(prompts), "--out", str(out),
                       "--critic", "http://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and want in err, err
    if before is not None:
        assert out.read_bytes() == before


@pytest.mark.parametrize("case,want", [("broken_header", "not a readable image"), ("tiny", "1x1 pixels"),
                                       ("sliver", "aspect ratio")])
def test_images_the_critic_cannot_read_stop_the_run_before_any_scoring(tmp_path, capsys, case, want):
    """Every listed image's header is checked before a model loads (here the critic is a folder that does
    not exist: its error would come first otherwise) and nothing is written."""
    folder, prompts = make_folder(tmp_path, n=3)
    if case == "broken_header":
        (folder / "im2.png").write_bytes(b"\x89PNG broken")
    else:
        Image.new("RGB", (1, 1) if case == "tiny" else (4000, 16)).save(folder / "im2.png")
    out = tmp_path / "s.jsonl"
    rc = main(["score", str(folder), "--prompts", str(prompts), "--out", str(out), "--critic", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert "line 3" in err and "im2.png" in err and want in err, err
    assert not out.exists()
