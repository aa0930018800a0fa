"""What the two browser tests share: which files to drop, where screenshots go, skipping or failing."""
from __future__ import annotations

import contextlib
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "browser"
#: Set by tools/browser_test.sh (and so by CI): a missing piece fails the run instead of skipping it.
REQUIRED = os.environ.get("RATIONALREWARDS_BROWSER_REQUIRED") == "1"


def drop_files() -> list[Path]:
    """Every file a user may drop: the workflows and the subgraph blueprints."""
    return sorted((ROOT / "workflows").glob("*.json")) + sorted((ROOT / "subgraphs").glob("*.json"))


#: Defects the browser tests have found and someone is fixing: {(frontend version, "folder/stem"): what happens}.
#: Each runs as a strict xfail: it must still fail (it shows in the report as XFAIL), and once the file is
#: fixed it passes, the strict xfail fails the run, and the entry must go.
KNOWN_DEFECTS: dict[tuple[str, str], str] = {}


def mark_known_defect(request, frontend_version: str, path: Path) -> None:
    """Mark the drop test of a KNOWN_DEFECTS file as a strict xfail."""
    known = KNOWN_DEFECTS.get((frontend_version, f"{path.parent.name}/{path.stem}"))
    if known:
        request.applymarker(pytest.mark.xfail(strict=True, reason=known))


def missing(reason: str):
    """Skip (a developer without the browser set-up) or fail (tools/browser_test.sh, CI)."""
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def pack_python() -> str:
    """A Python that imports the pack (the project's .venv): it generates the pack's node definitions."""
    env = os.environ.get("RATIONALREWARDS_PACK_PYTHON")
    venv = ROOT / ".venv" / "bin" / "python"
    return env or (str(venv) if venv.exists() else sys.executable)


def generated_pack_info() -> dict:
    """The pack's /object_info entries generated from the current code (pack_object_info.py)."""
    out = subprocess.run([pack_python(), str(Path(__file__).with_name("pack_object_info.py"))],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    if out.returncode:
        raise AssertionError(f"pack_object_info.py failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout)


def newest_widget_counts() -> dict[str, int]:
    """{core node type: number of widget values} in the newest recorded ComfyUI (tests/browser/recorded),
    by the frontend's widget layout (tests/workflow_check.py)."""
    from workflow_check import widget_layout

    def version(f: Path) -> tuple:
        return tuple(int(x) for x in f.name.removeprefix("comfyui-").removesuffix(".json.gz").split("."))
    recordings = sorted((Path(__file__).parent / "recorded").glob("comfyui-*.json.gz"), key=version)
    if not recordings:
        return {}
    info = json.loads(gzip.decompress(recordings[-1].read_bytes()))["object_info"]
    return {name: len(widget_layout(d)) for name, d in info.items()}


def report(results, path: Path) -> None:
    """Write what each drop found (problems and every event) next to the screenshots."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({r.name: {"problems": r.problems, "events": [str(e) for e in r.events],
                                         "screenshot": str(r.screenshot.relative_to(ROOT)) if r.screenshot else None}
                                for r in results}, indent=1))


@contextlib.contextmanager
def opened_app(browser, url: str, shots: Path):
    """An App (harness.py) on the frontend at ``url``, loaded, its start-up dialogs closed; on leaving,
    what each drop found is written to report.json beside the screenshots."""
    from harness import App

    app = App(browser, url, shots)
    app.newer_widgets = newest_widget_counts()
    app.results = []
    try:
        app.open()
        app.close_dialogs()
        yield app
    finally:
        report(app.results, app.shots / "report.json")
