"""CI guard: every workflow file, dropped onto the canvas of ComfyUI's real web frontend, loads unchanged.

No ComfyUI needed: the frontend package from PyPI (comfyui-frontend-package, one per recorded ComfyUI version:
1.27.10 for 0.3.64, 1.48.7 for 0.33.0) is served by fake_comfy.py with the start-up answers recorded from the
real servers and the pack's node definitions generated from the current code. Headless Chromium drops each
file as a user's drag does (harness.py) and the test fails on any page error, console error, alert, toast,
dialog, node the frontend could not create, or change between the file and the loaded graph. Copies of a
workflow with the defects users met (``"id": null``, a node type that does not exist, one widget value too
many) must fail it. Screenshots: out/browser/guard-<frontend version>/.

Run it with ``tools/browser_test.sh guard`` (installs Chromium, Playwright and the frontends); skipped when
Playwright or a frontend is missing, unless RATIONALREWARDS_BROWSER_REQUIRED=1.
"""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this file

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (tools/browser_test.sh guard)")
from playwright.sync_api import sync_playwright  # noqa: E402

from browser_common import (ROOT, SHOTS, drop_files, mark_known_defect, missing,  # noqa: E402
                            opened_app, pack_python)
from harness import launch  # noqa: E402

RECORDED = sorted((Path(__file__).parent / "recorded").glob("comfyui-*.json.gz"))
FRONTENDS = os.environ.get("RATIONALREWARDS_FRONTENDS")  # folder with <version>/comfyui_frontend_package/static


def _frontend_version(recording: Path) -> str:
    return json.loads(gzip.decompress(recording.read_bytes()))["_note"]["frontend_version"]


VERSIONS = {_frontend_version(r): r for r in RECORDED}
FILES = drop_files()


@pytest.fixture(scope="module")
def playwright():
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    try:
        b = launch(playwright)
    except Exception as e:  # no Chromium on this machine
        missing(f"cannot start Chromium: {e}")
    yield b
    b.close()


@pytest.fixture(scope="module", params=sorted(VERSIONS), ids=lambda v: f"frontend-{v}")
def app(request, browser):
    """The frontend of one version on the fake backend, loaded once; yields an App (harness.py)."""
    version = request.param
    static = Path(FRONTENDS or "/nonexistent") / version / "comfyui_frontend_package" / "static"
    if not (static / "index.html").is_file():
        missing(f"no frontend {version} under RATIONALREWARDS_FRONTENDS ({FRONTENDS}): run tools/browser_test.sh guard")
    proc = subprocess.Popen([pack_python(), str(Path(__file__).with_name("fake_comfy.py")), "--frontend", str(static),
                             "--recorded", str(VERSIONS[version])], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("READY "):
        proc.kill()
        raise AssertionError(f"fake backend did not start: {line}{proc.stderr.read()[-3000:]}")
    try:
        with opened_app(browser, line.split()[1], SHOTS / f"guard-{version}") as a:
            a.version = version
            yield a
            a.context.close()
    finally:
        proc.kill()
        proc.wait()


def test_frontend_starts_without_pack_errors_and_knows_every_pack_node(app):
    assert app.load_errors() == []
    types = app.page.evaluate("() => Object.keys(window.LiteGraph.registered_node_types)")
    from_files = {n["type"] for f in FILES for n in json.loads(f.read_text()).get("nodes") or []}
    pack = {t for t in from_files if t.startswith("RationalRewards")}
    assert pack and pack <= set(types), sorted(pack - set(types))


def test_subgraph_blueprints_are_fetched_where_comfyui_serves_them(app):
    """ComfyUI >= 0.3.67 serves the pack's subgraphs/*.json at /global_subgraphs; the frontend fetches
    each at start (a failure would be a load error, checked above). 0.3.64 does not serve them."""
    blueprints = sorted((ROOT / "subgraphs").glob("*.json"))
    served = json.loads(gzip.decompress(VERSIONS[app.version].read_bytes()))["routes"]["/api/global_subgraphs"]["status"]
    if served != 200 or not blueprints:
        pytest.skip(f"ComfyUI of frontend {app.version} serves no blueprints" if blueprints else "no blueprints")
    fetched = {p.rsplit("/", 1)[1] for m, p, status in app.api_calls if p.startswith("/global_subgraphs/")
               and status == 200}
    assert len(fetched) == len(blueprints), (fetched, app.api_calls)


@pytest.mark.parametrize("path", FILES, ids=[f"{f.parent.name}/{f.stem}" for f in FILES])
def test_dropped_file_loads_unchanged(app, path, request):
    mark_known_defect(request, app.version, path)
    core = {n["type"] for n in json.loads(path.read_text()).get("nodes") or []} - set(
        app.page.evaluate("() => Object.keys(window.LiteGraph.registered_node_types)"))
    result = app.drop_workflow(path)
    app.results.append(result)
    assert not result.problems, (f"{path.name} on frontend {app.version} (screenshot {result.screenshot}; "
                                 f"node types the frontend does not know: {sorted(core)}):\n" + "\n".join(result.problems))


def _defects() -> dict[str, dict]:
    """Copies of critique_image.json with the defects users met."""
    base = json.loads((ROOT / "workflows" / "critique_image.json").read_text())
    id_null = dict(base, id=None)
    gone = json.loads(json.dumps(base))
    next(n for n in gone["nodes"] if n["type"] == "RationalRewardsScoreCard")["type"] = "RationalRewardsScoreCardOld"
    extra = json.loads(json.dumps(base))
    next(n for n in extra["nodes"] if n["type"] == "RationalRewardsCritic")["widgets_values"].append(7)
    return {"id_null": id_null, "missing_node_type": gone, "one_widget_value_too_many": extra}


#: Words each defect's failure must contain (the frontend's own message, or the comparison's).
EXPECTED = {
    "id_null": ("class_type", "Unable to find workflow", "zod", "does not show"),
    "missing_node_type": ("RationalRewardsScoreCardOld",),
    "one_widget_value_too_many": ("widget values",),
}


@pytest.mark.parametrize("defect", sorted(EXPECTED))
def test_known_defects_fail_the_guard(app, defect):
    result = app.drop_workflow(Path(f"defect_{defect}.json"), json.dumps(_defects()[defect]))
    app.results.append(result)
    text = "\n".join(result.problems)
    assert result.problems, f"{defect}: the guard found nothing wrong"
    assert any(word in text for word in EXPECTED[defect]), text
    print(f"\n{defect} on frontend {app.version}:\n  " + "\n  ".join(p[:300] for p in result.problems))
