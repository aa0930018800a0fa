"""Loop nodes in the ComfyUI stand-in: the Simple Loop over stand-in MODEL/CLIP/VAE objects and the
stand-in common_ksampler, and the Graph Loop pair run by a small executor that handles node
expansion the way ComfyUI 0.3.64 does (ephemeral nodes, display ids, duplicate-id check)."""
from __future__ import annotations

import json
import zlib

import pytest
import torch

from conftest import run_node
from data_answers import EDIT_FULL
from scripted_critic import ScriptedCritic, t2i_answer

BAD, GOOD = (2.5, 3.5), (4, 4)


def answers(*scores_and_prompts):
    return [t2i_answer(tf, pq, refined) for (tf, pq), refined in scores_and_prompts]


def edit_answers(*scores_and_prompts):
    """Edit answers (the critic was given a source image): image faithfulness 2.0 when BAD, 4 when GOOD."""
    out = []
    for scores, refined in scores_and_prompts:
        text = EDIT_FULL.replace("Turn the sky purple and keep the house and everything else exactly as in the source.",
                                 refined)
        out.append(text.replace("## Score: 2.0", "## Score: 4").replace("## Score: 3.0", "## Score: 4")
                   if scores == GOOD else text)
    return out


# ---- stand-in MODEL / CLIP / VAE -------------------------------------------------------------------------
class FakeClip:
    """encode_from_tokens_scheduled returns CONDITIONING whose tensor depends on the prompt."""

    def __init__(self, on_encode=None):
        self.texts: list[str] = []
        self.on_encode = on_encode

    def tokenize(self, text):
        return {"l": [[(t, 1.0) for t in text.split()]], "text": text}

    def encode_from_tokens_scheduled(self, tokens):
        text = tokens["text"]
        self.texts.append(text)
        if self.on_encode:
            self.on_encode(len(self.texts))
        value = (zlib.crc32(text.encode()) % 1000) / 1000.0
        return [[torch.full((1, 4, 8), value), {"pooled_output": torch.full((1, 8), value)}]]


class FakeVae:
    def __init__(self, five_d=False):
        self.five_d = five_d

    def decode(self, samples):
        # 4x upscale: the critic refuses images under 16x16
        img = samples[:, :3].repeat_interleave(4, 2).repeat_interleave(4, 3).movedim(1, -1).clamp(0, 1)
        return img[:, None] if self.five_d else img


class FakeModel:
    pass


def simple_inputs(critic, **over):
    base = dict(model=FakeModel(), clip=FakeClip(), vae=FakeVae(), positive="a red cube", negative="blurry",
                width=64, height=64, batch_size=1, seed=7, steps=4, cfg=7.0, sampler_name="euler",
                scheduler="normal", denoise=1.0, critic=critic, rule="paper", threshold=3.0, patience=0,
                keep_phrases="", token_window="off", overflow="keep", max_iterations=3, seed_policy="fixed")
    base.update(over)
    return base


def sampler_calls(log):
    return [d for name, d in log.calls if name == "common_ksampler"]


# ---- Simple Loop ---------------------------------------------------------------------------------------
def test_simple_loop_stops_early_and_keeps_best(comfy, standin_log):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "a red cube on wood"), (GOOD, "unused")))
    inputs = simple_inputs(critic, seed_policy="increment")
    best, final, all_images, best_prompt, history, n, score = run_node(SimpleLoopNode, **inputs).args
    assert n == 2 and score == pytest.approx(1.0)
    assert best_prompt == "a red cube on wood"
    assert all_images.shape == (2, 32, 32, 3) and torch.equal(best, final) and torch.equal(all_images[1:], final)
    calls = sampler_calls(standin_log)
    assert [c["seed"] for c in calls] == [7, 8] and calls[0]["shape"] == (1, 4, 8, 8)
    # the clip saw the refined prompt on the second iteration; the negative is encoded once
    assert inputs["clip"].texts == ["a red cube", "blurry", "a red cube on wood"]
    data = json.loads(history)
    assert data["stop_reason"] == "good_enough" and len(data["history"]) == 2
    texts = [d["text"] for name, d in standin_log.calls if name == "progress_text"]
    assert any(t.startswith("iteration 1/3: score 0.667") for t in texts)
    assert any(name == "progress" and d["value"] == 2 and d["total"] == 3 for name, d in standin_log.calls)


def test_simple_loop_best_is_not_the_last(comfy, standin_log):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers(((2.9, 2.8), "second"), ((2.0, 2.0), "third"), ((2.5, 2.5), "fourth")))
    out = run_node(SimpleLoopNode, **simple_inputs(critic, max_iterations=3)).args
    best, final, all_images, best_prompt, history, n, score = out
    assert n == 3 and best_prompt == "a red cube" and score == pytest.approx((1.9 + 1.8) / 6)
    assert torch.equal(best, all_images[0:1]) and not torch.equal(best, final)
    assert json.loads(history)["stop_reason"] == "max_iterations"


@pytest.mark.parametrize("given,ran,message", [(0, 1, "below 1"), (25, 20, "clamped to 20")])
def test_simple_loop_clamps_max_iterations(comfy, standin_log, given, ran, message):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers(*[(BAD, f"p{i}") for i in range(30)]))
    out = run_node(SimpleLoopNode, **simple_inputs(critic, max_iterations=given)).args
    assert out[5] == ran
    data = json.loads(out[4])
    assert any(message in w for w in data["warnings"])
    texts = [d["text"] for name, d in standin_log.calls if name == "progress_text"]
    assert any(message in t for t in texts)  # shown on the node


def test_simple_loop_cancel_while_sampling(comfy, standin_log):
    import comfy.model_management as mm
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "second"), (BAD, "third")))
    clip = FakeClip(on_encode=lambda k: mm.interrupt_current_processing() if k == 3 else None)
    with pytest.raises(mm.InterruptProcessingException):
        run_node(SimpleLoopNode, **simple_inputs(critic, clip=clip))
    assert len(sampler_calls(standin_log)) == 1 and not mm.processing_interrupted()


def test_simple_loop_cancel_while_critiquing(comfy, standin_log):
    import comfy.model_management as mm
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "second")))
    mm.interrupt_current_processing()
    with pytest.raises(mm.InterruptProcessingException):
        run_node(SimpleLoopNode, **simple_inputs(critic))
    assert critic.chats == []


def test_simple_loop_critic_failure_returns_best_so_far(comfy, standin_log):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic(answers((BAD, "second"), (BAD, "third")), fail_after=1)
    out = run_node(SimpleLoopNode, **simple_inputs(critic))
    best, final, all_images, best_prompt, history, n, score = out.args
    assert n == 2 and best_prompt == "a red cube" and torch.equal(best, all_images[0:1])
    data = json.loads(history)
    assert data["stop_reason"] == "critic_error" and "scripted critic failure" in data["error"]
    assert "scripted critic failure" in data["history"][-1]["error"]
    assert "critic failed" in out.ui.value and "best result so far" in out.ui.value


def test_simple_loop_latent_input_5d_vae_and_source(comfy, standin_log):
    from rationalrewards.nodes.loop_simple import SimpleLoopNode
    critic = ScriptedCritic()  # default answers: the edit answer (image faithfulness 2.0) with a source
    latent = {"samples": torch.zeros(2, 4, 4, 4)}
    src = torch.full((1, 32, 32, 3), 0.3)
    out = run_node(SimpleLoopNode, **simple_inputs(critic, latent=latent, vae=FakeVae(five_d=True), source_image=src,
                                                   max_iterations=1, denoise=0.6)).args
    assert out[1].shape == (2, 16, 16, 3) and out[0].shape == (1, 16, 16, 3)
    assert sampler_calls(standin_log)[0]["denoise"] == 0.6
    assert len(critic.chats) == 2  # both images of the batch, each judged as an edit of the source
    assert "image_faithfulness" in json.loads(out[4])["history"][0]["scores"]


def test_simple_loop_generator_without_image(comfy, standin_log):
    from rationalrewards.engine import GeneratorError
    from rationalrewards.nodes.loop_simple import SimpleLoopNode

    class EmptyVae:
        def decode(self, samples):
            return torch.zeros(0, 8, 8, 3)

    with pytest.raises(GeneratorError, match="returned no image"):
        run_node(SimpleLoopNode, **simple_inputs(ScriptedCritic(), vae=EmptyVae()))


# ---- Graph Loop: a small executor with ComfyUI's expansion rules ---------------------------------------
class Counter(dict):
    def hit(self, key):
        self[key] = self.get(key, 0) + 1


def fake_classes(critic, ran: Counter):
    """Plain callables standing in for core nodes, named as in ComfyUI; ``ran`` counts executions."""
    import nodes

    from rationalrewards.nodes.loop_simple import decode_latent, encode_text

    clip, vae, model = FakeClip(), FakeVae(), FakeModel()

    def ckpt(ckpt_name):
        ran.hit("CheckpointLoaderSimple")
        return (model, clip, vae)

    def sampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        ran.hit("KSampler")
        return nodes.common_ksampler(model, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                     latent_image, denoise=denoise)

    def scale(image, factors):
        assert factors == [1.0, 2.0]  # a list widget value arrives unwrapped
        return (image,)

    return {
        "CheckpointLoaderSimple": ckpt,
        "RRCritic": lambda: (critic,),
        "PrimitiveString": lambda value: (value,),
        "CLIPTextEncode": lambda clip, text: (encode_text(clip, text),),
        "ConditioningCombine": lambda conditioning_1, conditioning_2: (conditioning_1 + conditioning_2,),
        "EmptyLatentImage": lambda width, height, batch_size: (
            ran.hit("EmptyLatentImage") or {"samples": torch.zeros(batch_size, 4, height // 8, width // 8)},),
        "KSampler": sampler,
        "VAEDecode": lambda vae, samples: (decode_latent(vae, samples["samples"]),),
        "LoadImage": lambda image: (ran.hit("LoadImage") or torch.full((1, 32, 32, 3), 0.2), None),
        "Scale": scale,
    }


class MiniExecutor:
    """Runs an API-format prompt: links resolved depth-first, each node once (its outputs cached by id),
    V3 nodes given unique_id + dynprompt; an expansion's nodes join the DynamicPrompt as ephemeral
    nodes (duplicate ids refused, as ComfyUI does) and its result links are resolved from them."""

    def __init__(self, prompt, critic):
        from comfy_execution.graph import DynamicPrompt
        from rationalrewards.nodes.loop_graph import LoopEndNode, LoopStartNode

        self.dyn = DynamicPrompt(prompt)
        self.ran = Counter()
        self.classes = {**fake_classes(critic, self.ran), "RationalRewardsLoopStart": LoopStartNode,
                        "RationalRewardsLoopEnd": LoopEndNode}
        self.outputs: dict = {}
        self.expansions: list[tuple[str, dict]] = []

    def output(self, node_id):
        from comfy_api.latest import io
        from comfy_execution.graph_utils import is_link

        if node_id in self.outputs:
            return self.outputs[node_id]
        info = self.dyn.get_node(node_id)
        kwargs = {}
        for k, v in info["inputs"].items():
            if is_link(v) and self.dyn.has_node(v[0]):
                v = self.output(v[0])[v[1]]
            elif isinstance(v, dict) and "__value__" in v and node_id in self.dyn.original_prompt:
                v = v["__value__"]  # ComfyUI's validation unwraps list widget values of the user's prompt
            kwargs[k] = v
        cls = self.classes[info["class_type"]]
        if isinstance(cls, type) and issubclass(cls, io.ComfyNode):
            out = run_node(cls, _hidden={"unique_id": node_id, "dynprompt": self.dyn}, **kwargs)
            if out.expand is not None:
                assert cls.GET_SCHEMA().enable_expand
                self.expansions.append((node_id, out.expand))
                for new_id, new_info in out.expand.items():
                    assert not self.dyn.has_node(new_id), f"duplicate node {new_id}"
                    self.dyn.add_ephemeral_node(new_id, new_info, node_id,
                                                new_info.get("override_display_id", node_id))
                result = tuple(self.output(r[0])[r[1]] if is_link(r) else r for r in out.args)
            else:
                result = out.args
        else:
            result = cls(**kwargs)
        self.outputs[node_id] = result
        return result


END_SETTINGS = dict(rule="paper", threshold=3.0, patience=0, keep_phrases="", token_window="off", overflow="keep")


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
