"""graph_compare.compare_graphs reports each change the browser tests must catch (no browser needed)."""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this file

from graph_compare import compare_graphs  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "workflows").glob("*.json"))


@pytest.fixture
def wf():
    """A workflow with links, widgets and a Note (the one-step refine graph)."""
    return json.loads((ROOT / "workflows" / "t2i_one_refine_step.json").read_text())


def _node(graph, type_):
    return next(n for n in graph["nodes"] if n["type"] == type_)


@pytest.mark.parametrize("path", FILES, ids=[f.stem for f in FILES])
def test_a_faithful_load_has_no_problem(path):
    wf = json.loads(path.read_text())
    loaded = copy.deepcopy(wf)
    for n in loaded["nodes"]:  # what every load changes harmlessly: positions, sizes, extra widget slots
        n["pos"] = [n["pos"][0] + 1, n["pos"][1]]
        n.setdefault("inputs", []).append({"name": "extra_widget_slot", "type": "INT", "link": None})
    assert compare_graphs(wf, loaded) == []


def test_a_changed_widget_value_is_reported(wf):
    loaded = copy.deepcopy(wf)
    _node(loaded, "KSampler")["widgets_values"][2] = 99
    problems = compare_graphs(wf, loaded)
    assert len(problems) == 1 and "KSampler" in problems[0] and "-> 99" in problems[0], problems


def test_a_float_kept_to_javascript_precision_is_not_a_change(wf):
    loaded = copy.deepcopy(wf)
    w = _node(loaded, "KSampler")["widgets_values"]
    i = next(i for i, v in enumerate(w) if isinstance(v, float))
    w[i] = w[i] * (1 + 1e-12)
    assert compare_graphs(wf, loaded) == []


def test_a_changed_widget_count_is_reported(wf):
    loaded = copy.deepcopy(wf)
    _node(loaded, "RationalRewardsModelLoader")["widgets_values"].pop()
    problems = compare_graphs(wf, loaded)
    assert any("widget values after loading" in p for p in problems), problems


def test_a_dropped_link_is_reported(wf):
    loaded = copy.deepcopy(wf)
    gone = loaded["links"].pop(0)
    problems = compare_graphs(wf, loaded)
    assert any(f"link {gone[0]} " in p and "dropped" in p for p in problems), problems


def test_a_link_into_a_renamed_slot_is_reported(wf):
    loaded = copy.deepcopy(wf)
    lk = wf["links"][0]
    target = next(n for n in loaded["nodes"] if n["id"] == lk[3])
    target["inputs"][lk[4]]["name"] = "something_else"
    problems = compare_graphs(wf, loaded)
    assert any("input slot" in p and "something_else" in p for p in problems), problems


def test_a_lost_node_a_new_type_and_a_new_mode_are_reported(wf):
    loaded = copy.deepcopy(wf)
    lost = loaded["nodes"].pop()
    _node(loaded, "VAEDecode")["type"] = "VAEDecodeTiled"
    _node(loaded, "KSampler")["mode"] = 4
    problems = "\n".join(compare_graphs(wf, loaded))
    assert f"node {lost['id']} ({lost['type']}) is missing" in problems
    assert "became type 'VAEDecodeTiled'" in problems and "mode 0 became 4" in problems


def test_a_replaced_workflow_id_is_reported(wf):
    loaded = copy.deepcopy(wf)
    loaded["id"] = "00000000-0000-4000-8000-000000000000"
    assert any("workflow id" in p for p in compare_graphs(wf, loaded))


def test_subgraph_definitions_are_compared():
    sub = {"id": "s1", "name": "inner", "nodes": [{"id": 1, "type": "KSampler", "widgets_values": [1]}],
           "links": [{"id": 1, "origin_id": 1, "origin_slot": 0, "target_id": 2, "target_slot": 0, "type": "LATENT"}]}
    wf = {"id": "w", "nodes": [], "links": [], "definitions": {"subgraphs": [sub]}}
    changed = copy.deepcopy(wf)
    changed["definitions"]["subgraphs"][0]["nodes"][0]["widgets_values"] = [2]
    changed["definitions"]["subgraphs"][0]["links"] = []
    problems = compare_graphs(wf, changed)
    assert any("subgraph inner" in p and "widget values changed" in p for p in problems), problems
    assert any("subgraph inner" in p and "dropped" in p for p in problems), problems
    assert any("subgraph inner is missing" in p for p in compare_graphs(wf, {**wf, "definitions": {}}))


def test_values_of_widgets_only_a_newer_comfyui_has_may_be_dropped_by_an_older_frontend(wf):
    """A file written for the newest ComfyUI (one more KSampler widget, say) loads on an older frontend,
    which keeps the values it knows: allowed only with the newer count and the kept values unchanged."""
    wf = copy.deepcopy(wf)
    _node(wf, "KSampler")["widgets_values"].append("new_widget_value")
    newer = {"KSampler": len(_node(wf, "KSampler")["widgets_values"])}
    loaded = copy.deepcopy(wf)
    _node(loaded, "KSampler")["widgets_values"].pop()
    assert compare_graphs(wf, loaded, newer_widgets=newer) == []
    assert any("widget values after loading" in p for p in compare_graphs(wf, loaded))  # without the newer count
    _node(loaded, "KSampler")["widgets_values"][2] = 99  # a kept value changed: still a problem
    assert any("99" in p and "widget values" in p for p in compare_graphs(wf, loaded, newer_widgets=newer))
    newer["KSampler"] += 1  # a value too many even for the newer ComfyUI: still a problem
    assert any("widget values after loading" in p for p in compare_graphs(wf, loaded, newer_widgets=newer))
