"""The command line's promise (README, Errors): bad input and unwritable output are one line on stderr and
exit code 2, found before any model loads, never a traceback. Read-only folders are tried for real: the
command runs in a subprocess that file permissions bind (as root, with the capabilities that let root
write anywhere, CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, dropped before it starts)."""
from __future__ import annotations

import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from rationalrewards.cli import main

PR_CAPBSET_DROP, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH = 24, 1, 2


def _drop_root_file_override() -> None:
    """In the child before exec: remove the two capabilities from the bounding set, so the program it
    runs as root gets neither and a folder without write permission refuses it like anyone else."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def run_bound_by_permissions(args: list[str], home: Path) -> subprocess.CompletedProcess:
    """``python -m rationalrewards.cli ARGS`` in a process that read-only folders refuse."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(HOME=str(home), RATIONALREWARDS_MODELS=str(home / "models"), HF_HUB_OFFLINE="1")
    drop = dict(preexec_fn=_drop_root_file_override) if os.geteuid() == 0 else {}
    try:
        return subprocess.run([sys.executable, "-m", "rationalrewards.cli", *args], capture_output=True, text=True,
                              env=env, cwd=home, timeout=300, **drop)
    except (subprocess.SubprocessError, OSError) as e:  # a sandbox that forbids dropping capabilities
        pytest.skip(f"cannot run a process bound by file permissions here: {e}")


def read_only_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def png(path: Path, size=(32, 32)) -> Path:
    Image.new("RGB", size, (200, 60, 30)).save(path)
    return path


def assert_one_line(proc_or_err, want: str) -> None:
    err = proc_or_err if isinstance(proc_or_err, str) else proc_or_err.stderr
    assert err.count("\n") == 1 and "Traceback" not in err and want in err, err


# -- unwritable --out, found before a model loads ---------------------------------------------------
def test_score_out_in_a_read_only_folder(tmp_path):
    images = tmp_path / "imgs"
    images.mkdir()
    png(images / "a.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"image": "a.png", "prompt": "a red square"}) + "\n")
    ro = read_only_dir(tmp_path / "ro")
    # the critic folder does not exist: were the model loaded first, its error would show instead
    proc = run_bound_by_permissions(["score", str(images), "--prompts", str(prompts), "--out", str(ro / "scores.jsonl"),
                             "--critic", str(tmp_path / "no-critic")], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_line(proc, f"--out {ro / 'scores.jsonl'}: cannot write this file (Permission denied)")
    assert not (ro / "scores.jsonl").exists()


def test_refine_out_read_only_folder(tmp_path):
    ro = read_only_dir(tmp_path / "ro")
    gen = tmp_path / "no-generator"  # would fail as "not a diffusers pipeline" were it loaded first
    proc = run_bound_by_permissions(["refine", "--prompt", "a red cube", "--out", str(ro), "--generator", str(gen),
                             "--critic", str(tmp_path / "no-critic"), "--quiet"], tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert_one_line(proc, f"--out {ro}: cannot write files in this folder (Permission denied)")
    assert list(ro.iterdir()) == []
    sub = ro / "run1"  # a new folder inside a read-only one cannot be created
    proc = run_bound_by_permissions(["refine", "--prompt", "a red cube", "--out", str(sub), "--generator", str(gen),
                             "--quiet"], tmp_path)
    assert proc.returncode == 2
    assert_one_line(proc, f"--out {sub}: cannot create the folder (Permission denied)")


# -- --out under a file -----------------------------------------------------------------------------
def test_score_out_whose_parent_is_a_file(tmp_path, capsys):
    images = tmp_path / "imgs"
    images.mkdir()
    png(images / "a.png")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"image": "a.png", "prompt": "x"}) + "\n")
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    for out in (afile / "scores.jsonl", afile / "deeper" / "scores.jsonl"):
        rc = main(["score", str(images), "--prompts", str(prompts), "--out", str(out), "--critic", "http://127.0.0.1:9"])
        assert rc == 2
        assert_one_line(capsys.readouterr().err, f"--out {out}: {afile} is a file, not a folder")
    assert afile.read_text() == "keep me"


def test_refine_out_whose_parent_is_a_file(tmp_path, capsys):
    afile = tmp_path / "afile.txt"
    afile.write_text("keep me")
    out = afile / "run"
    rc = main(["refine", "--prompt", "x", "--out", str(out), "--generator", str(tmp_path / "none"), "--quiet"])
    assert rc == 2
    assert_one_line(capsys.readouterr().err, f"--out {out}: {afile} is a file, not a folder")
    assert afile.read_text() == "keep me"


# -- inputs the critic cannot read, found before it loads ---------------------------------------------
@pytest.mark.parametrize("size,want", [((1, 1), "is 1x1 pixels; the critic needs at least 16x16"),
                                       ((4000, 16), "aspect ratio over 150:1")])
def test_critique_image_too_small_or_thin_before_loading_the_critic(tmp_path, capsys, size, want):
    bad = png(tmp_path / "one.png", size)
    # a critic folder that does not exist: its error would come first if the critic were loaded first
    rc = main(["critique", str(bad), "--prompt", "a cat", "--critic", str(tmp_path / "no-critic")])
    assert rc == 2
    assert_one_line(capsys.readouterr().err, want)


def test_refine_size_the_critic_cannot_read_and_small_source(tmp_path, capsys):
    base = ["refine", "--prompt", "x", "--out", str(tmp_path / "run"), "--generator", str(tmp_path / "none"), "--quiet"]
    assert main([*base, "--width", "8"]) == 2
    assert_one_line(capsys.readouterr().err, "the critic needs at least 16x16")
    assert main([*base, "--width", "4000", "--height", "16"]) == 2
    assert_one_line(capsys.readouterr().err, "aspect ratio")
    src = png(tmp_path / "src.png", (1, 1))
    assert main([*base, "--source", str(src)]) == 2
    assert_one_line(capsys.readouterr().err, "--source image")


def test_a_file_that_cannot_be_written_mid_run_is_one_line(tmp_path, capsys, monkeypatch):
    """A write that fails after the checks (disk full, folder removed) still ends in one line, exit 2."""
    from rationalrewards.cli import critique_cmd

    def failing(args):
        raise OSError(28, "No space left on device", str(tmp_path / "x.png"))

    monkeypatch.setattr(critique_cmd, "run", failing)
    img = png(tmp_path / "a.png")
    rc = main(["critique", str(img), "--prompt", "x"])
    assert rc == 2
    assert_one_line(capsys.readouterr().err, f"{tmp_path / 'x.png'}: No space left on device")
