"""``rationalrewards parse``: JSON on stdout, exit 0 with problems in the JSON, exit 2 on usage errors."""
import json
import os
import subprocess
import sys

import pytest

from rationalrewards.cli import main

from data_answers import PAIR_EDIT, T2I_FULL


def test_parse_file(tmp_path, capsys):
    f = tmp_path / "a.txt"
    f.write_text(T2I_FULL, encoding="utf-8")
    assert main(["parse", str(f)]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["aspects"]["text_faithfulness"]["score"] == 2.5
    assert d["problems"] == []


def test_parse_stdin_pairwise(monkeypatch, capsys):
    import io
    monkeypatch.setattr(sys, "stdin", io.StringIO(PAIR_EDIT))
    assert main(["parse", "-", "--kind", "pairwise-edit", "--compact"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert json.loads(out)["winner"] == "B"


def test_garbage_exits_zero_with_problems(tmp_path, capsys):
    f = tmp_path / "g.txt"
    f.write_bytes(b"\xff\xfe garbage")
    assert main(["parse", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["problems"]


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["parse", str(tmp_path / "missing.txt")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["parse", str(tmp_path)]) == 2
    with pytest.raises(SystemExit) as e:
        main(["parse", "x", "--kind", "video"])
    assert e.value.code == 2


def test_console_script_is_installed():
    exe = os.path.join(os.path.dirname(sys.executable), "rationalrewards")
    assert os.path.exists(exe), "pip install -e . installs the rationalrewards command"
    r = subprocess.run([exe, "parse", "-", "--compact"],
                       input="1. Text Faithfulness:\n## Score: 3\n", capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["aspects"]["text_faithfulness"]["score"] == 3.0
