"""Test doubles for the loop node tests: stand-in MODEL/CLIP/VAE objects, scripted answers, core-node
stand-ins and a small executor that handles node expansion the way ComfyUI 0.3.64 does."""
from __future__ import annotations

import zlib

import torch

from conftest import run_node
from data_answers import EDIT_FULL
from scripted_critic import t2i_answer

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

def sampler_calls(log):
    return [d for name, d in log.calls if name == "common_ksampler"]

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


