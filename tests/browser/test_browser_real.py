"""Opt-in: the workflows in a real ComfyUI's own web frontend, in headless Chromium, as a user meets them.

A real ComfyUI (``RATIONALREWARDS_COMFYUI``: a checkout; started by tests/test_comfyui_real.py's Server in a
temporary base directory with this pack, the tiny SD1.5 and the canned tiny critic) serves its own frontend.
For every workflow file the test drops it onto the canvas as a file and fails on anything the user would
see go wrong (harness.py / graph_compare.py, as the CI guard). Then, for the workflows whose models can be
tiny, it types the tiny models and small sizes into the loaded graph's widgets, clicks Run, waits for the
run to end, and checks what the canvas shows: the preview images (the Score Card among them), the text on
the Critic node, the loop's and the A/B's text outputs. It also checks that the pack's node definitions
the CI guard generates from the code equal what this real server sends (pack_object_info.py).

Screenshots and report.json: out/browser/comfyui-<version>/. One command per ComfyUI version:
``tools/browser_test.sh old`` (0.3.64) / ``tools/browser_test.sh new`` (0.33.0).
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this file

pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (tools/browser_test.sh old|new)")
from playwright.sync_api import sync_playwright  # noqa: E402

from browser_common import (ROOT, SHOTS, drop_files, generated_pack_info, mark_known_defect,  # noqa: E402
                            opened_app)
from fake_comfy import MIRRORED_COMBOS  # noqa: E402
from harness import USER_SETTINGS, launch  # noqa: E402
from pack_object_info import frontend_view  # noqa: E402
from test_comfyui_real import SHRINK, TINY_WORKFLOWS, Server, _http  # noqa: E402

COMFY = os.environ.get("RATIONALREWARDS_COMFYUI")
pytestmark = pytest.mark.skipif(not COMFY or not (Path(COMFY) / "main.py").is_file(),
                                reason="set RATIONALREWARDS_COMFYUI to a ComfyUI checkout to run")
FILES = drop_files()
#: Combo options that depend on the install (its model folders), not on the code.
LOCAL_OPTIONS = {("RationalRewardsModelLoader", "model")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("comfy"))
    try:
        stats = _http(s.url + "/system_stats")["system"]
        if str(s.base) not in stats["argv"]:  # an older server on the same port answered
            raise AssertionError(f"port {s.port} answers for another ComfyUI ({stats['argv']})")
        req = urllib.request.Request(s.url + "/settings", data=json.dumps(USER_SETTINGS).encode(), method="POST")
        urllib.request.urlopen(req, timeout=30).read()  # answers with an empty body
        s.version, s.frontend_version = stats["comfyui_version"], stats.get("required_frontend_version")
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def app(server):
    with sync_playwright() as p:
        browser = launch(p)
        try:
            with opened_app(browser, server.url, SHOTS / f"comfyui-{server.version}") as a:
                a.frontend_version = server.frontend_version
                yield a
        finally:
            browser.close()


def test_generated_pack_definitions_equal_the_real_servers(server):
    """The CI guard's fake backend describes the pack's nodes as this real ComfyUI does."""
    real = _http(server.url + "/object_info", timeout=120)
    gen = generated_pack_info()
    assert set(gen) <= set(real), sorted(set(gen) - set(real))
    for name, entry in gen.items():
        g, r = frontend_view(entry), frontend_view(real[name])
        for sec in ("required", "optional"):
            for inp, spec in (g["input"].get(sec) or {}).items():
                src = MIRRORED_COMBOS.get(inp)
                if src and spec[0] == "COMBO":  # the fake takes these lists from the core KSampler
                    spec[1]["options"] = real[src[0]]["input"]["required"][src[1]][0]
                    if isinstance(spec[1]["options"], str):  # V3-style [COMBO, {options}]
                        spec[1]["options"] = real[src[0]]["input"]["required"][src[1]][1]["options"]
                if (name, inp) in LOCAL_OPTIONS:
                    for side in (spec[1], r["input"][sec][inp][1]):
                        side.pop("options", None)
                        side.pop("default", None)
        assert g == r, f"{name}: generated {json.dumps(g)[:3000]}\nreal {json.dumps(r)[:3000]}"


@pytest.mark.parametrize("path", FILES, ids=[f"{f.parent.name}/{f.stem}" for f in FILES])
def test_dropped_file_loads_unchanged(app, path, request):
    mark_known_defect(request, app.frontend_version, path)
    assert app.load_errors() == []
    result = app.drop_workflow(path)
    app.results.append(result)
    assert not result.problems, f"{path.name} (screenshot {result.screenshot}):\n" + "\n".join(result.problems)


def _subs(server) -> dict:
    """SHRINK of the real-ComfyUI test, with this server's tiny model names (as its shrink() does)."""
    subs = {k: dict(v) for k, v in SHRINK.items()}
    if server.canned:  # room for the whole canned critique
        for cls in ("RationalRewardsCritic", "RationalRewardsCompare", "RationalRewardsBestOfN"):
            subs[cls] = {"max_new_tokens": 512}
    subs["CheckpointLoaderSimple"] = {"ckpt_name": server.ckpt_name}
    subs["RationalRewardsModelLoader"]["model"] = server.critic_name
    return subs


def _wait(server, prompt_id: str, timeout: float = 900) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = _http(f"{server.url}/history/{prompt_id}").get(prompt_id)
        if entry and (entry.get("status", {}).get("completed") or entry.get("status", {}).get("status_str") == "error"):
            return entry
        time.sleep(1)
    raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s:\n{server.log_text()[-3000:]}")


def _text(node: dict) -> str:
    """All text a node shows in its widgets (text previews, Preview Any's box, the streamed critique)."""
    return "\n".join(str(w.get("dom") or w.get("value") or "") for w in node["widgets"]
                     if isinstance(w.get("dom") or w.get("value"), str))


def _node_text(node: dict) -> str:
    """The text the frontend shows on the node body (the last progress text the node sent)."""
    return next((str(w.get("dom") or w.get("value") or "") for w in node["widgets"]
                 if w["name"] == "$$node-text-preview"), "")


def _score_text_problems(node: dict, text: str, canned: bool) -> list[str]:
    """The finished Critic shows its score summary (overall first, then the aspects), Compare its winner.
    The canned critic's text-to-image critique scores 2.5 / 3.0 / N/A: overall (2.75 - 1) / 3 = 0.58."""
    label = f"{node['type']} {node['id']}"
    if node["type"] == "RationalRewardsCompare":
        return [] if text.startswith("winner") else [f"{label} shows no winner: {text[:300]!r}"]
    blocks = [line for line in text.splitlines() if "overall" in line]
    if not blocks or not all(re.match(r"(image \d+: )?overall ", line) for line in blocks):
        return [f"{label} does not show its score summary (overall first): {text[:300]!r}"]
    if canned and not all("overall 0.58 · needs refinement" in line for line in blocks):
        return [f"{label} shows other scores than the canned critique's: {text[:300]!r}"]
    return []


@pytest.mark.parametrize("stem", TINY_WORKFLOWS)
def test_runs_from_the_run_button(app, server, stem):
    path = ROOT / "workflows" / f"{stem}.json"
    dropped = app.drop_workflow(path)
    assert not dropped.problems, dropped.problems
    changed = app.set_widgets(_subs(server))
    mark = len(app.events)
    answer = app.click_run()
    assert answer["status"] == 200, f"the server refused the queued prompt: {json.dumps(answer['body'])[:4000]}"
    entry = _wait(server, answer["body"]["prompt_id"])
    status = entry.get("status", {})
    assert status.get("status_str") == "success", json.dumps(status.get("messages"), indent=1)[:6000]
    outputs = entry.get("outputs", {})
    app.fit_view()  # the canvas loads a preview when it draws the node: bring them all into view
    app.wait_previews([int(k) for k, v in outputs.items() if v.get("images") and k.isdigit()])
    app.page.wait_for_timeout(1000)  # the last executed messages (text) reach the canvas
    nodes = {str(n["id"]): n for n in app.nodes_view()}
    shot = app.screenshot(f"{stem}-run")
    seen = {"changed": changed, "sent": answer["sent"].get("prompt"), "outputs": {k: list(v) for k, v in outputs.items()}, "nodes": nodes}
    (app.shots / f"{stem}-run.json").write_text(json.dumps(seen, indent=1))
    problems = [str(e) for e in app.since(mark) if e.kind in ("pageerror", "alert", "toast", "dialog")
                or (e.kind == "console" and "RationalRewards" in e.text)]
    previews = [n for n in nodes.values() if n["type"] in ("PreviewImage", "SaveImage")]
    for n in previews:
        app.focus(n["id"], f"{stem}-node{n['id']}-{n['type']}", scale=1.0)
        if not n["imgs"] or not all(i["complete"] and i["w"] > 0 for i in n["imgs"]):
            problems.append(f"node {n['id']} ({n['type']}, {n['title']}) shows no picture: {n['imgs']}; "
                            f"server output {outputs.get(str(n['id']))}")
    for n in nodes.values():
        if n["type"] in ("RationalRewardsCritic", "RationalRewardsCompare"):
            app.focus(n["id"], f"{stem}-node{n['id']}-{n['type'].removeprefix('RationalRewards').lower()}")
            text = _node_text(n)
            print(f"\n{stem}: {n['type']} node {n['id']} shows:\n{text}")
            problems += _score_text_problems(n, text, server.canned)
        if n["type"] == "PreviewAny":
            text = _text(n)
            want = (outputs.get(str(n["id"])) or {}).get("text", [""])[0]
            print(f"{stem}: {n['title']} shows: {text[:300]!r}")
            if not text.strip() or want.strip()[:200] not in text:
                problems.append(f"Preview Any {n['id']} ({n['title']}) shows {text[:300]!r}, the server sent {want[:300]!r}")
    assert not problems, f"{stem} (screenshot {shot}):\n" + "\n".join(problems)


# ------------------------------------------------------------------ the Templates list and the blueprints
def _pack_templates(server) -> tuple[str, list[str]]:
    """(module, names) of this pack in the server's template list."""
    listed = _http(server.url + "/workflow_templates")
    ours = [(m, names) for m, names in listed.items() if "critique_image" in names]
    assert len(ours) == 1, listed
    return ours[0]


def test_templates_list_each_workflow_once_with_its_thumbnail(app, server):
    """Workflow -> Browse Templates: every workflow of workflows/ once (ComfyUI reads every example folder a
    pack has), each card with the picture beside the file."""
    module, names = _pack_templates(server)
    assert sorted(names) == sorted(p.stem for p in (ROOT / "workflows").glob("*.json")), names
    for name in names:
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{module}/{name}.jpg", timeout=30) as r:
            assert r.status == 200 and r.headers.get_content_type() == "image/jpeg", name
    calls = len(app.api_calls)
    app.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    app.page.wait_for_timeout(1500)
    pack_tab = app.page.get_by_text(module, exact=True)
    if pack_tab.count():
        pack_tab.first.click()
    app.page.wait_for_timeout(2000)
    shot = app.screenshot("templates-dialog")
    # the frontend fetches each card's picture (1.48 shows it as a blob: URL, so watch the requests)
    fetched = {urllib.parse.unquote(path).rsplit("/", 1)[-1] for method, path, status in app.api_calls[calls:]
               if status == 200 and urllib.parse.unquote(path).startswith(f"/workflow_templates/{module}/")}
    shown = app.page.evaluate("() => [...document.querySelectorAll('.p-dialog img, [role=dialog] img')]"
                              ".filter(i => i.complete && i.naturalWidth > 0).length")
    app.page.keyboard.press("Escape")
    assert fetched >= {f"{n}.jpg" for n in names}, (shot, sorted(fetched))
    assert shown >= len(names), (shot, shown)


BLUEPRINT_RUNS = {  # blueprint: (its IMAGE input, the output to preview)
    "Critique and refine once": ("image", "score_card"),
    "Best of N": ("images", "images"),
}


@pytest.mark.parametrize("name", sorted(BLUEPRINT_RUNS))
def test_blueprint_runs_from_the_node_search(app, server, name):
    """ComfyUI 0.3.67+ lists the pack's subgraphs/ as blueprints: find one in the node search as a user does
    (double-click the canvas, type its name, Enter), feed it a picture, run it, see its output."""
    if not _has_blueprints(server):
        pytest.skip(f"ComfyUI {server.version} serves no subgraph blueprints (0.3.67+); the folder is ignored")
    app.new_blank_workflow()
    box = app.page.locator("#graph-canvas").bounding_box()
    x, y = box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.4
    typing = "() => document.activeElement && document.activeElement.tagName === 'INPUT'"
    for attempt in range(3):  # a double-click on the empty canvas opens the node search with its input focused
        app.page.keyboard.press("Escape")
        app.page.mouse.dblclick(x, y)
        try:
            app.page.wait_for_function(typing, timeout=3000)
            break
        except Exception:  # noqa: BLE001 (Playwright's TimeoutError): the canvas only took focus; again
            if attempt == 2:  # the same search box, by its command
                app.page.evaluate("() => window.app.extensionManager.command.execute('Workspace.SearchBox.Toggle')")
                app.page.wait_for_function(typing, timeout=5000)
    app.page.keyboard.type(name, delay=15)
    app.page.wait_for_timeout(1500)
    app.screenshot(f"blueprint-{name}-search")
    app.page.keyboard.press("Enter")
    app.page.wait_for_timeout(800)
    app.page.mouse.click(x, y)  # newer frontends let the new node follow the cursor until a click places it
    app.page.wait_for_timeout(700)
    image_in, shown = BLUEPRINT_RUNS[name]
    made = app.page.evaluate("""([imageIn, shown, model]) => {
      const g = window.app.rootGraph || window.app.graph;
      if (g.nodes.length !== 1) return {error: 'nodes after the search: ' + g.nodes.map(n => n.type)};
      const bp = g.nodes[0];
      const load = LiteGraph.createNode('LoadImage'); load.pos = [bp.pos[0] - 420, bp.pos[1]]; g.add(load);
      window.app.canvas.deselectAll?.();
      load.widgets.find(w => w.name === 'image').value = 'example.png';
      const prev = LiteGraph.createNode('PreviewImage'); prev.pos = [bp.pos[0] + bp.size[0] + 80, bp.pos[1]];
      g.add(prev);
      load.connect(0, bp, bp.inputs.findIndex(i => i.name === imageIn));
      bp.connect(bp.outputs.findIndex(o => o.name === shown), prev, 0);
      for (const w of bp.widgets) {
        if (w.name === 'model') w.value = model;
        if (w.name === 'prompt') w.value = 'a red square';
      }
      window.app.canvas.setDirty(true, true);
      return {title: bp.title, type: bp.type, widgets: bp.widgets.map(w => [w.name, w.value]), preview: prev.id};
    }""", [image_in, shown, server.critic_name])
    assert "error" not in made, made
    assert made["title"] == name, made
    app.collect_seen()  # the node search was a dialog of its own; the run starts here
    mark = len(app.events)
    answer = app.click_run()
    assert answer["status"] == 200, f"the server refused the queued prompt: {json.dumps(answer['body'])[:4000]}"
    sent = answer["sent"]["prompt"]
    assert {n["class_type"] for n in sent.values()} >= {"RationalRewardsModelLoader", "RationalRewardsCritic"}
    entry = _wait(server, answer["body"]["prompt_id"])
    assert entry.get("status", {}).get("status_str") == "success", json.dumps(entry.get("status"), indent=1)[:6000]
    app.fit_view()
    assert app.wait_previews([made["preview"]]), "the blueprint's output picture is not shown"
    shot = app.screenshot(f"blueprint-{name}-run")
    problems = [str(e) for e in app.since(mark) if e.kind in ("pageerror", "alert", "toast", "dialog")]
    assert not problems, f"{name} (screenshot {shot}):\n" + "\n".join(problems)


def _has_blueprints(server) -> bool:
    try:
        listed = _http(server.url + "/global_subgraphs")
    except AssertionError:  # 404 on a ComfyUI without blueprints
        return False
    return any(v.get("source") == "custom_node" for v in listed.values())
