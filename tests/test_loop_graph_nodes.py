"""Graph Loop Start/End in the ComfyUI stand-in, run by a small executor with ComfyUI's expansion rules
(ephemeral nodes, display ids, duplicate ids refused): expansion graphs of several body shapes."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import run_node
from loop_doubles import BAD, END_SETTINGS, GOOD, MiniExecutor, answers, edit_answers, sampler_calls
from scripted_critic import ScriptedCritic

def linear_prompt(max_iterations=3, seed_policy="fixed", text_from_start=True):
    """Checkpoint + empty latent + negative outside; encode -> sample -> decode inside."""
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "tiny.safetensors"}},
        "2": {"class_type": "RRCritic", "inputs": {}},
        "10": {"class_type": "RationalRewardsLoopStart", "inputs": {
            "prompt": "a red cube", "seed": 5, "max_iterations": max_iterations, "seed_policy": seed_policy}},
        "11": {"class_type": "CLIPTextEncode", "inputs": {
            "clip": ["1", 1], "text": ["10", 1] if text_from_start else "a fixed prompt"}},
        "12": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "blurry"}},
        "13": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "14": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": ["10", 3], "steps": 4, "cfg": 7.0, "sampler_name": "euler",
            "scheduler": "normal", "positive": ["11", 0], "negative": ["12", 0], "latent_image": ["13", 0],
            "denoise": 1.0}},
        "15": {"class_type": "VAEDecode", "inputs": {"samples": ["14", 0], "vae": ["1", 2]}},
        "20": {"class_type": "RationalRewardsLoopEnd", "inputs": {
            "flow": ["10", 0], "image": ["15", 0], "critic": ["2", 0], **END_SETTINGS}},
    }


def branch_prompt():
    """Subgraph-style ids, the prompt from an outside text node, two encoders of the prompt combined,
    a list widget value in the body, and an outside LoadImage as the edit source."""
    p = linear_prompt()
    p["30"] = {"class_type": "PrimitiveString", "inputs": {"value": "a red cube"}}
    p["40"] = {"class_type": "LoadImage", "inputs": {"image": "source.png"}}
    p["10"]["inputs"]["prompt"] = ["30", 0]
    p["54:16"] = {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": ["10", 1]}}
    p["54:17"] = {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["11", 0],
                                                                  "conditioning_2": ["54:16", 0]}}
    p["14"]["inputs"]["positive"] = ["54:17", 0]
    p["54:18"] = {"class_type": "Scale", "inputs": {"image": ["15", 0], "factors": {"__value__": [1.0, 2.0]}}}
    p["20"]["inputs"].update(image=["54:18", 0], source_image=["40", 0])
    return p


def run_graph(prompt, script):
    edit = "source_image" in prompt["20"]["inputs"]
    ex = MiniExecutor(prompt, ScriptedCritic((edit_answers if edit else answers)(*script)))
    return ex, ex.output("20")


def structure(graph):
    """An expansion without the carried state object (compared between runs)."""
    return {k: {**v, "inputs": {n: x for n, x in v["inputs"].items() if n != "loop_state"}} for k, v in graph.items()}


@pytest.mark.parametrize("shape", ["linear", "branch"])
def test_graph_loop_expansion(comfy, standin_log, shape):
    prompt = linear_prompt() if shape == "linear" else branch_prompt()
    script = [(BAD, "a red cube on wood"), (BAD, "a red cube on oak"), (GOOD, "unused")]
    ex, out = run_graph(prompt, script)
    best, final, all_images, best_prompt, history, n, score = out
    assert n == 3 and score == pytest.approx(1.0) and best_prompt == "a red cube on oak"
    assert all_images.shape[0] == 3 and json.loads(history)["stop_reason"] == "good_enough"
    # outside nodes ran once; the body ran once per iteration
    assert ex.ran["CheckpointLoaderSimple"] == 1 and ex.ran["EmptyLatentImage"] == 1 and ex.ran["KSampler"] == 3
    assert [e[0] for e in ex.expansions] == ["20", "20.rr1.20"]
    body = {"10", "11", "14", "15", "20"} | ({"54:16", "54:17", "54:18"} if shape == "branch" else set())
    outside = set(prompt) - body
    all_ids = set()
    for k, (parent, graph) in enumerate(ex.expansions, start=1):
        prefix = f"20.rr{k}."
        assert set(graph) == {prefix + i for i in body}  # only the body, the Start and the End are cloned
        assert not all_ids & set(graph) and not set(prompt) & set(graph)
        all_ids |= set(graph)
        for node_id, info in graph.items():
            original = node_id[len(prefix):]
            assert info["override_display_id"] == original and ex.dyn.get_display_node_id(node_id) == original
            assert info["class_type"] == prompt[original]["class_type"]
            for name, value in info["inputs"].items():
                orig_value = prompt[original]["inputs"].get(name)
                if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                    # links stay on outside nodes, or move to the clone of a body node
                    assert value == orig_value if value[0] in outside else value == [prefix + orig_value[0],
                                                                                        orig_value[1]]
        start = graph[prefix + "10"]["inputs"]
        assert start["prompt"] == ["a red cube on wood", "a red cube on oak"][k - 1] and start["seed"] == 5
        assert start["loop_state"].state.iteration == k and start["loop_state"].root == "20"
        assert graph[prefix + "20"]["class_type"] == "RationalRewardsLoopEnd"
        if shape == "branch":
            assert graph[prefix + "54:18"]["inputs"]["factors"] == [1.0, 2.0]
            assert graph[prefix + "20"]["inputs"]["source_image"] == ["40", 0]
    # deterministic: the same prompt and critic give the same graphs
    ex2, _ = run_graph(prompt, script)
    assert [(p, structure(g)) for p, g in ex2.expansions] == [(p, structure(g)) for p, g in ex.expansions]


def test_graph_loop_seed_increment_and_iteration_outputs(comfy, standin_log):
    ex, out = run_graph(linear_prompt(seed_policy="increment"), [(BAD, "b"), (BAD, "c"), (BAD, "d")])
    assert out[5] == 3 and json.loads(out[4])["stop_reason"] == "max_iterations"
    assert [c["seed"] for c in sampler_calls(standin_log)] == [5, 6, 7]
    assert [ex.outputs[i][2] for i in ("10", "20.rr1.10", "20.rr2.10")] == [0, 1, 2]
    assert ex.outputs["20.rr2.10"][1] == "c"


def test_graph_loop_stop_returns_values_without_expansion(comfy, standin_log):
    from rationalrewards.nodes.loop_graph import LoopEndNode
    ex = MiniExecutor(linear_prompt(), ScriptedCritic(answers((GOOD, "unused"))))
    flow, image, critic = ex.output("10")[0], ex.output("15")[0], ex.output("2")[0]
    out = run_node(LoopEndNode, _hidden={"unique_id": "20", "dynprompt": ex.dyn}, flow=flow, image=image,
                   critic=critic, **END_SETTINGS)
    assert out.expand is None and out.args[5] == 1 and out.args[3] == "a red cube"
    assert torch.equal(out.args[0], image)
    assert LoopEndNode.fingerprint_inputs() != LoopEndNode.fingerprint_inputs()  # NaN: always re-run


def test_graph_loop_clamps_max_iterations(comfy, standin_log):
    ex, out = run_graph(linear_prompt(max_iterations=0), [(BAD, "b")])
    assert out[5] == 1 and not ex.expansions
    assert any("below 1" in w for w in json.loads(out[4])["warnings"])
    assert any("below 1" in d["text"] and d["node_id"] == "10" for n, d in standin_log.calls if n == "progress_text")


def test_graph_loop_end_not_fed_from_start(comfy, standin_log):
    from rationalrewards.nodes.loop_graph import LoopEndNode, LoopGraphError
    prompt = linear_prompt()
    ex = MiniExecutor(prompt, ScriptedCritic())
    flow, image, critic = ex.output("10")[0], ex.output("15")[0], ex.output("2")[0]
    with pytest.raises(LoopGraphError, match="must come from RationalRewards Loop Start"):
        run_node(LoopEndNode, _hidden={"unique_id": "20", "dynprompt": ex.dyn}, flow="not a flow", image=image,
                 critic=critic, **END_SETTINGS)
    prompt["20"]["inputs"]["flow"] = ["30", 0]  # a flow value passed through some other node
    prompt["30"] = {"class_type": "PrimitiveString", "inputs": {"value": "x"}}
    with pytest.raises(LoopGraphError, match=r"node 30 \(PrimitiveString\), not from a RationalRewards Loop Start"):
        run_node(LoopEndNode, _hidden={"unique_id": "20", "dynprompt": ex.dyn}, flow=flow, image=image,
                 critic=critic, **END_SETTINGS)


def test_graph_loop_body_without_prompt_warns(comfy, standin_log):
    ex, out = run_graph(linear_prompt(max_iterations=2), [(BAD, "b"), (BAD, "c")])
    assert not any("does not use" in w for w in json.loads(out[4])["warnings"])
    standin_log.reset()
    ex, out = run_graph(linear_prompt(max_iterations=2, text_from_start=False), [(BAD, "b"), (BAD, "c")])
    warnings = json.loads(out[4])["warnings"]
    assert sum("does not use Loop Start's prompt" in w for w in warnings) == 1
    from rationalrewards.nodes.loop_graph import NO_PROMPT_WARNING
    texts = [d for n, d in standin_log.calls if n == "progress_text" and d["text"] == f"warning: {NO_PROMPT_WARNING}"]
    assert len(texts) == 1 and texts[0]["node_id"] == "20"  # once, on the user's Loop End


def test_graph_loop_critic_failure_and_empty_image(comfy, standin_log):
    from rationalrewards.engine import GeneratorError
    from rationalrewards.nodes.loop_graph import LoopEndNode
    ex = MiniExecutor(linear_prompt(), ScriptedCritic(answers((BAD, "b"), (BAD, "c")), fail_after=1))
    out = ex.output("20")
    data = json.loads(out[4])
    assert out[5] == 2 and data["stop_reason"] == "critic_error" and out[3] == "a red cube"
    flow, critic = ex.output("10")[0], ex.output("2")[0]
    with pytest.raises(GeneratorError, match="no image"):
        run_node(LoopEndNode, _hidden={"unique_id": "20", "dynprompt": ex.dyn}, flow=flow,
                 image=torch.zeros(0, 8, 8, 3), critic=critic, **END_SETTINGS)


def test_graph_loop_cancel(comfy, standin_log):
    import comfy.model_management as mm
    ex = MiniExecutor(linear_prompt(), ScriptedCritic(answers((BAD, "b"))))
    ex.output("15")
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        ex.output("20")


def test_graph_loop_nested_ids_do_not_collide(comfy, standin_log):
    """A loop inside another loop's body: each inner run expands under its own End's id."""
    p = linear_prompt(max_iterations=2, seed_policy="increment")
    p["50"] = {"class_type": "RationalRewardsLoopStart", "inputs": {
        "prompt": ["10", 1], "seed": ["10", 3], "max_iterations": 2, "seed_policy": "increment"}}
    p["11"]["inputs"]["text"] = ["50", 1]
    p["14"]["inputs"]["seed"] = ["50", 3]
    p["60"] = {"class_type": "RationalRewardsLoopEnd", "inputs": {
        "flow": ["50", 0], "image": ["15", 0], "critic": ["2", 0], **END_SETTINGS}}
    p["20"]["inputs"]["image"] = ["60", 0]
    ex, out = run_graph(p, [(BAD, f"prompt {i}") for i in range(6)])
    assert out[5] == 2
    assert [e[0] for e in ex.expansions] == ["60", "20", "20.rr1.60"]
    ids = [i for _, g in ex.expansions for i in g]
    assert len(ids) == len(set(ids))
    assert ex.ran["KSampler"] == 4 and ex.ran["CheckpointLoaderSimple"] == 1
