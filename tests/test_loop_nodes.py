"""Simple Loop node in the ComfyUI stand-in: stand-in MODEL/CLIP/VAE objects, the stand-in common_ksampler
and a scripted critic."""
from __future__ import annotations

import json

import pytest
import torch

from conftest import run_node
from loop_doubles import BAD, GOOD, FakeClip, FakeModel, FakeVae, answers, sampler_calls
from scripted_critic import ScriptedCritic

def simple_inputs(critic, **over):
    base = dict(model=FakeModel(), clip=FakeClip(), vae=FakeVae(), positive="a red cube", negative="blurry",
                width=64, height=64, batch_size=1, seed=7, steps=4, cfg=7.0, sampler_name="euler",
                scheduler="normal", denoise=1.0, critic=critic, rule="paper", threshold=3.0, patience=0,
                keep_phrases="", token_window="off", overflow="keep", max_iterations=3, seed_policy="fixed")
    base.update(over)
    return base

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
