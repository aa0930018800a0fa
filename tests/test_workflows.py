"""The drag-and-drop workflows (workflows/, also the pack's template list) open in ComfyUI without missing nodes,
with widget values that fit each node's inputs and links whose types agree (tests/workflow_check.py), and are
laid out the way ComfyUI's own templates are (left to right in labelled groups, nothing covering anything).

Core nodes are checked against the definitions recorded from ComfyUI 0.3.64's /object_info
(tests/fixtures/core_object_info.json), the pack's nodes against their define_schema() via the stand-in.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_check import (FIXTURE_NEWEST, check_workflow, input_specs, is_widget, load_core,  # noqa: E402
                            load_core_both, type_name, widget_layout)

EXPECTED = ["critique_image", "t2i_one_refine_step", "simple_loop_early_stop", "graph_loop_flux_t2i",
            "graph_loop_qwen_image_edit", "best_of_n", "pairwise_ab", "simple_loop_remote"]
FILES = sorted((ROOT / "workflows").glob("*.json"))


@pytest.fixture(scope="module")
def defs(comfy):
    """What the files are written against: 0.3.64's core nodes with the widgets 0.33 appended."""
    from workflow_check import pack_defs

    return load_core_both() | pack_defs()


@pytest.fixture(scope="module")
def defs_by_version(comfy):
    from workflow_check import pack_defs

    pack = pack_defs()
    return {"0.3.64": load_core() | pack, "0.33.0": load_core(FIXTURE_NEWEST) | pack}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def nodes_of(wf: dict, ntype: str) -> list[dict]:
    return [n for n in wf["nodes"] if n["type"] == ntype]


def test_every_expected_workflow_is_there_once():
    assert sorted(p.stem for p in FILES) == sorted(EXPECTED)
    # ComfyUI lists the templates of every example folder a pack has (example_workflows, examples, workflow,
    # ...): one folder only, or the Templates dialog shows each workflow twice
    others = [d.name for d in ROOT.iterdir() if d.name in ("example_workflows", "example", "examples", "workflow")]
    assert others == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_workflow_is_valid(path, defs):
    wf = load(path)
    assert wf["version"] == 0.4
    assert check_workflow(wf, defs) == []


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_workflow_fits_both_comfyui_versions(path, defs_by_version):
    """Every widget of the newest release has a value (newer widgets at the end, which 0.3.64 leaves
    unused), and 0.3.64's sockets and outputs are all there."""
    wf = load(path)
    assert check_workflow(wf, defs_by_version["0.3.64"], skew="file_newer") == []
    assert check_workflow(wf, defs_by_version["0.33.0"], skew="file_older") == []


def test_ids_are_uuid_strings():
    """The frontend reads a dropped file's top-level values; a null id makes the drop fail with nothing shown."""
    import uuid

    ids = [load(p)["id"] for p in FILES]
    assert all(isinstance(i, str) and str(uuid.UUID(i)) == i for i in ids) and len(set(ids)) == len(ids)


def test_thumbnails_beside_the_files():
    from PIL import Image

    for stem in EXPECTED:
        jpg = ROOT / "workflows" / f"{stem}.jpg"  # the frontend asks for <name>.jpg beside <name>.json
        assert jpg.stat().st_size < 100_000, stem
        with Image.open(jpg) as im:
            assert im.format == "JPEG" and im.size == (512, 512)


def _rect(n: dict) -> tuple[float, float, float, float]:
    """A node's box on the canvas, its title bar (drawn above pos) included."""
    (x, y), (w, h) = n["pos"], n["size"]
    return x, y - 30, x + w, y + h


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_layout_reads_left_to_right_in_groups(path):
    wf = load(path)
    nodes = {n["id"]: n for n in wf["nodes"]}
    rects = {i: _rect(n) for i, n in nodes.items()}
    for i in rects:  # no node covers another (or its preview)
        for j in rects:
            assert i >= j or not _overlap(rects[i], rects[j]), (nodes[i]["type"], nodes[j]["type"])
    groups = wf["groups"]
    assert any(g["title"].startswith("Step 1 - ") for g in groups)
    for n in wf["nodes"]:  # every node but the note sits inside exactly one group
        if n["type"] == "MarkdownNote":
            continue
        x0, y0, x1, y1 = rects[n["id"]]
        inside = [g["title"] for g in groups if g["bounding"][0] <= x0 and g["bounding"][1] <= y0
                  and x1 <= g["bounding"][0] + g["bounding"][2] and y1 <= g["bounding"][1] + g["bounding"][3]]
        assert len(inside) == 1, (n["type"], inside)
    for a in groups:
        for b in groups:
            assert a is b or not _overlap(_box(a), _box(b)), (a["title"], b["title"])
    width = max(r[2] for r in rects.values()) - min(r[0] for r in rects.values())
    for lid, src, _, dst, _, _ in wf["links"]:  # no link across the whole canvas
        span = abs(rects[dst][0] - rects[src][2])
        assert span < 0.6 * width, (lid, nodes[src]["type"], nodes[dst]["type"], span, width)
    groups_x = [g["bounding"][0] for g in sorted(groups, key=lambda g: g["title"]) if g["title"].startswith("Step")]
    assert groups_x == sorted(groups_x), "steps go left to right"


def _box(g: dict) -> tuple[float, float, float, float]:
    x, y, w, h = g["bounding"]
    return x, y, x + w, y + h


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_note_says_what_to_load_and_where(path):
    wf = load(path)
    notes = nodes_of(wf, "MarkdownNote")
    assert len(notes) == 1
    text = notes[0]["widgets_values"][0]
    assert "ComfyUI/models/" in text or "vllm serve" in text
    files = [n["widgets_values"][0] for t in ("CheckpointLoaderSimple", "UNETLoader", "VAELoader", "CLIPLoader")
             for n in nodes_of(wf, t)]
    for f in files:  # every model file the graph loads is named in the note
        assert f in text, f


def test_files_are_what_the_builder_writes(defs):
    """A node whose inputs changed must come with regenerated workflows (python tools/build_workflows.py)."""
    sys.path.insert(0, str(ROOT / "tools"))
    from build_workflows import build

    for stem, wf in build(defs).items():
        assert load(ROOT / "workflows" / f"{stem}.json") == wf, f"re-run tools/build_workflows.py ({stem})"


def test_workflows_use_the_documented_models_and_their_own_nodes():
    from rationalrewards.models.store import KNOWN_REPOS

    wfs = {stem: load(ROOT / "workflows" / f"{stem}.json") for stem in EXPECTED}
    for stem, wf in wfs.items():
        for n in nodes_of(wf, "RationalRewardsModelLoader"):
            assert n["widgets_values"][0] in KNOWN_REPOS, stem
    edit = nodes_of(wfs["graph_loop_qwen_image_edit"], "RationalRewardsModelLoader")[0]
    assert edit["widgets_values"][0] == "TIGER-Lab/RationalRewards-8B-Edit"
    assert nodes_of(wfs["graph_loop_qwen_image_edit"], "TextEncodeQwenImageEdit")
    assert nodes_of(wfs["simple_loop_remote"], "RationalRewardsRemoteCritic")
    assert not nodes_of(wfs["simple_loop_remote"], "RationalRewardsModelLoader")
    for stem, t in (("simple_loop_early_stop", "RationalRewardsSimpleLoop"), ("best_of_n", "RationalRewardsBestOfN"),
                    ("pairwise_ab", "RationalRewardsCompare"), ("graph_loop_flux_t2i", "RationalRewardsLoopEnd")):
        assert nodes_of(wfs[stem], t), (stem, t)
    assert {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance"} <= {
        n["type"] for n in wfs["graph_loop_flux_t2i"]["nodes"]}
    # the one-refine-step workflow samples twice with the same seed (only the prompt changes)
    seeds = {n["widgets_values"][0] for n in nodes_of(wfs["t2i_one_refine_step"], "KSampler")}
    assert len(seeds) == 1
    assert nodes_of(wfs["best_of_n"], "EmptyLatentImage")[0]["widgets_values"][2] == 4


@pytest.mark.parametrize("fixture", ["core_object_info.json", "core_object_info_0.33.json"])
def test_standin_schemas_match_what_real_comfyui_reported(defs, fixture):
    """The pack's definitions built from define_schema() (what this test validates against) lay out widgets,
    sockets and outputs as ComfyUI 0.3.64 and 0.33.0 themselves reported them (fixtures' pack_nodes). On a
    deliberate node change, re-capture with tools/capture_object_info.py."""
    real = json.loads((ROOT / "tests" / "fixtures" / fixture).read_text())["pack_nodes"]
    for name, entry in real.items():
        assert name in defs, name

        def shape(d):
            sockets = [(n, type_name(t), sec) for n, t, o, sec in input_specs(d) if not is_widget(t, o)]
            return widget_layout(d), sockets, d["output"], d["output_name"]
        assert shape(defs[name]) == shape(entry), name


# ---------------------------------------------------------------------------------- the checker can fail
@pytest.fixture
def good(defs):
    return load(ROOT / "workflows" / "t2i_one_refine_step.json")


def node_by_type(wf, ntype):
    return nodes_of(wf, ntype)[0]


def test_rejects_wrong_widget_count(good, defs):
    node_by_type(good, "KSampler")["widgets_values"].pop(1)  # the seed's control value
    assert any("widget values for" in p for p in check_workflow(good, defs))
    node_by_type(good, "RationalRewardsCritic")["widgets_values"].append("extra")
    assert any("RationalRewardsCritic" in p and "widget values" in p for p in check_workflow(good, defs))


def test_rejects_bad_link_type(good, defs):
    link = next(lk for lk in good["links"] if lk[5] == "CONDITIONING")
    dst = next(n for n in good["nodes"] if n["id"] == link[3])
    dst["inputs"][link[4]]["type"] = "LATENT"
    problems = check_workflow(good, defs)
    assert any("types differ" in p for p in problems) and any("has type 'LATENT'" in p for p in problems)


def test_rejects_link_from_wrong_output(good, defs):
    # VAEDecode.samples fed from the checkpoint's CLIP output instead of a LATENT
    ckpt = node_by_type(good, "CheckpointLoaderSimple")
    link = next(lk for lk in good["links"] if lk[5] == "LATENT")
    link[1], link[2], link[5] = ckpt["id"], 1, "CLIP"
    ckpt["outputs"][1]["links"].append(link[0])
    assert any("types differ" in p for p in check_workflow(good, defs))


def test_rejects_unknown_node(good, defs):
    good["nodes"][1]["type"] = "RationalRewardsNoSuchNode"
    assert any("unknown node type" in p for p in check_workflow(good, defs))


def test_rejects_dangling_and_unlisted_links(good, defs):
    bad = copy.deepcopy(good)
    bad["links"].pop()
    assert any("does not exist" in p for p in check_workflow(bad, defs))
    bad = copy.deepcopy(good)
    node_by_type(bad, "VAEDecode")["inputs"][0]["link"] = None
    problems = check_workflow(bad, defs)
    assert any("is not connected" in p for p in problems) and any("points at None" in p for p in problems)


@pytest.mark.parametrize("ntype,index,value,expect", [
    ("KSampler", 2, 0, "outside"),                       # steps min 1
    ("KSampler", 4, "no_such_sampler", "is not one of"),
    ("KSampler", 1, "sometimes", "control_after_generate"),
    ("RationalRewardsCritic", 2, 64.5, "not an integer"),  # max_new_tokens
    ("RationalRewardsPromptRefiner", 1, "sometimes", "is not one of"),  # rule
    ("RationalRewardsModelLoader", 0, "some/other-model", "is not one of"),
    ("RationalRewardsModelLoader", 5, "yes", "not a boolean"),
    ("EmptyLatentImage", 0, "512", "not a number"),
])
def test_rejects_values_that_do_not_fit(good, defs, ntype, index, value, expect):
    node_by_type(good, ntype)["widgets_values"][index] = value
    problems = check_workflow(good, defs)
    assert any(expect in p and ntype in p for p in problems), problems


def test_model_file_combos_of_core_loaders_take_any_file(good, defs):
    node_by_type(good, "CheckpointLoaderSimple")["widgets_values"][0] = "my_own_model.safetensors"
    assert check_workflow(good, defs) == []


# ------------------------------------------------------------------------------------ subgraph blueprints
BLUEPRINTS = sorted((ROOT / "subgraphs").glob("*.json"))


def test_blueprints_are_what_the_builder_writes(defs):
    sys.path.insert(0, str(ROOT / "tools"))
    import build_subgraphs
    from build_workflows import FRONTEND_VERSION

    built = build_subgraphs.build(defs, FRONTEND_VERSION)
    assert sorted(p.stem for p in BLUEPRINTS) == sorted(built) == ["Best of N", "Critique and refine once"]
    for stem, bp in built.items():
        assert load(ROOT / "subgraphs" / f"{stem}.json") == bp, f"re-run tools/build_workflows.py ({stem})"


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: p.name)
def test_blueprint_inner_graph_is_valid(path, defs):
    """The graph inside each blueprint passes the same checks as a workflow, its inputs and outputs wired to
    real slots of the right type, and the outer node shows exactly the inputs and outputs it declares."""
    bp = load(path)
    (outer,) = bp["nodes"]
    (sub,) = bp["definitions"]["subgraphs"]
    assert outer["type"] == sub["id"] and sub["category"] == "RationalRewards" and sub["description"]
    inner_links = [[lk["id"], lk["origin_id"], lk["origin_slot"], lk["target_id"], lk["target_slot"], lk["type"]]
                   for lk in sub["links"]]
    boundary = {lk[0] for lk in inner_links if lk[1] == -10 or lk[3] == -20}
    nodes = copy.deepcopy(sub["nodes"])
    for n in nodes:  # what the subgraph's own input and output nodes connect, judged on its own below
        for s in n["inputs"]:
            if s["link"] in boundary:
                s["link"] = None
        for o in n["outputs"]:
            o["links"] = [lid for lid in o["links"] if lid not in boundary]
    wf = {"last_node_id": sub["state"]["lastNodeId"], "last_link_id": sub["state"]["lastLinkId"], "nodes": nodes,
          "links": [lk for lk in inner_links if lk[0] not in boundary], "version": 0.4}
    fed = {(lk[3], lk[4]) for lk in inner_links if lk[1] == -10}
    problems = [p for p in check_workflow(wf, defs) if "is not connected" not in p]
    unconnected = [p for p in check_workflow(wf, defs) if "is not connected" in p]
    assert problems == []
    by_id = {n["id"]: n for n in sub["nodes"]}
    for p in unconnected:  # a socket left open inside must be fed by a blueprint input
        nid = int(p.split()[1])
        name = p.split("'")[1]
        slot = next(i for i, s in enumerate(by_id[nid]["inputs"]) if s["name"] == name)
        assert (nid, slot) in fed, p
    for lk in inner_links:
        if lk[1] == -10:
            port = sub["inputs"][lk[2]]
            assert lk[0] in port["linkIds"] and by_id[lk[3]]["inputs"][lk[4]]["type"] == port["type"]
        if lk[3] == -20:
            port = sub["outputs"][lk[4]]
            assert lk[0] in port["linkIds"] and by_id[lk[1]]["outputs"][lk[2]]["type"] == port["type"]
    assert [i["name"] for i in outer["inputs"]] == [i["name"] for i in sub["inputs"]]
    assert [o["type"] for o in outer["outputs"]] == [o["type"] for o in sub["outputs"]]
    # frontend 1.48 rewrites proxyWidgets into subgraph inputs on load: every widget shown outside is an input
    assert "proxyWidgets" not in outer["properties"]
    assert len(outer["widgets_values"]) == sum("widget" in i for i in outer["inputs"])
