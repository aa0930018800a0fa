"""The generate-critique-refine loop with a deterministic generator and a scripted critic.

The critic is a real CriticBackend subclass whose ``_generate`` returns scripted RationalRewards
answers, so image intake, request building, the cache and the parser all run for real.
"""
from __future__ import annotations

import dataclasses
import json
import zlib

import pytest
import torch

from rationalrewards.engine import (GeneratorError, LoopCallbacks, LoopConfig, LoopConfigError, LoopInterrupted,
                                    StepOutcome, make_critic_rewriter, run_loop, start, step)
from rationalrewards.models.backends.base import CriticBackend, Generation
from rationalrewards.models.errors import CriticError, CritiqueInterrupted


def answer(tf, pq, tr="N/A", refined: str | None = "refined prompt") -> str:
    """A RationalRewards text-to-image answer with these scores (None = the section is cut off)."""
    text = (
        "# User Request Analysis\nwhat is asked\n# Detailed Judgement\n"
        f"1. Text Faithfulness:\n## Justification: tf\n## Score: {tf}\n"
        f"2. Physical and Visual Quality:\n## Justification: pq\n## Score: {pq}\n"
        f"3. Text Rendering:\n## Justification: tr\n## Score: {tr}\n# Summary: summary\n\n"
        "# User Request Refinement:\n## Refinement Comments: comments\n"
    )
    if refined is not None:
        text += f"## Refined Request: {refined}\n"
    return text


class ScriptedCritic(CriticBackend):
    """Answers call k with ``script[k]``: a list of answers (one per image), one answer for all
    images of the call, or an exception to raise. ``poll`` polls the interrupt callback like a
    token loop does."""

    def __init__(self, script, poll: int = 3, on_call=None):
        super().__init__(cache_size=0)
        self.on_call = on_call
        self.script = list(script)
        self.calls = 0
        self.requests: list[list] = []
        self.poll = poll

    @property
    def identity(self) -> str:
        return "scripted"

    def _generate(self, messages, settings, callbacks):
        if self.on_call:
            self.on_call(self.calls + 1)
        for _ in range(self.poll):
            callbacks.check_interrupt()
        item = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        self.requests.append(list(messages))
        if isinstance(item, BaseException):
            raise item
        texts = item if isinstance(item, list) else [item] * len(messages)
        return [Generation(t) for t in texts]

    def prompts_seen(self) -> list[str]:
        out = []
        for msgs in self.requests:
            text = "".join(p["text"] for p in msgs[0][-1]["content"] if p["type"] == "text")
            out.append(text.split("User Instruction: ", 1)[1].split("\n", 1)[0])
        return out


class PixelGenerator:
    """Deterministic images: the pixel value encodes (prompt, seed); image k of a batch adds k."""

    name = "PixelGenerator"

    def __init__(self, batch: int = 1, fail_at: int | None = None, on_generate=None):
        self.batch = batch
        self.calls: list[tuple[str, int]] = []
        self.fail_at = fail_at
        self.on_generate = on_generate

    def generate(self, prompt, seed):
        self.calls.append((prompt, seed))
        if self.on_generate:
            self.on_generate(len(self.calls))
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            return None
        base = (zlib.crc32(f"{prompt}|{seed}".encode()) % 150) / 255.0
        return torch.stack([torch.full((32, 32, 3), base + k / 255.0) for k in range(self.batch)])


LOW = answer(2.0, 2.5)
HIGH = answer(3.5, 3.0)


def low(k: int, score: float = 2.0) -> str:
    return answer(score, 2.5, refined=f"prompt v{k}")


def test_good_enough_on_first_iteration():
    critic = ScriptedCritic([HIGH])
    r = run_loop(PixelGenerator(), critic, "a cat", LoopConfig(max_iterations=5))
    assert r.stop_reason == "good_enough" and r.iterations_run == 1
    assert r.best_iteration == 0 and r.best_prompt == "a cat" and r.best_score == pytest.approx(((3.5 + 3.0) / 2 - 1) / 3)
    assert r.history[0]["decision"]["reason"] == "kept: all aspects >= 3.0"


def test_refines_then_stops_when_good_enough():
    gen, critic = PixelGenerator(), ScriptedCritic([answer(2.0, 3.0, refined="a black cat on a red sofa"), HIGH])
    r = run_loop(gen, critic, "a cat", LoopConfig(max_iterations=5))
    assert [p for p, _ in gen.calls] == ["a cat", "a black cat on a red sofa"]
    assert r.stop_reason == "good_enough" and r.iterations_run == 2
    assert r.best_iteration == 1 and r.final_prompt == r.best_prompt == "a black cat on a red sofa"
    assert r.history[0]["decision"]["reason"] == "refined: Text Faithfulness 2.0 < 3.0"
    assert len(r.all_images) == 2 and torch.equal(r.final_images, r.all_images[1])


def test_max_iterations():
    r = run_loop(PixelGenerator(), ScriptedCritic([low(k) for k in range(10)]), "a cat", LoopConfig(max_iterations=3))
    assert r.stop_reason == "max_iterations" and r.iterations_run == 3 and len(r.history) == 3


def test_patience_stops_when_score_stops_improving():
    script = [low(0, 2.0), low(1, 2.0), low(2, 1.5), low(3, 3.5)]
    r = run_loop(PixelGenerator(), ScriptedCritic(script), "a cat", LoopConfig(max_iterations=10, patience=2))
    assert r.stop_reason == "patience" and r.iterations_run == 3
    assert [e["improved"] for e in r.history] == [True, False, False]


def test_unscored_first_iteration_does_not_use_up_patience():
    """Found in real ComfyUI: with patience 1 an unreadable first critique ended the loop at once."""
    script = ["no structure at all", low(1, 2.0), low(2, 2.0)]
    r = run_loop(PixelGenerator(), ScriptedCritic(script), "a cat", LoopConfig(max_iterations=5, patience=1,
                                                                                    seed_policy="increment"))
    assert r.iterations_run == 3 and r.stop_reason == "patience"
    assert r.best_iteration == 1


def test_best_tracking_earlier_wins_ties():
    script = [low(0, 2.0), low(1, 2.5), low(2, 2.5), low(3, 1.0)]
    r = run_loop(PixelGenerator(), ScriptedCritic(script), "a cat", LoopConfig(max_iterations=4))
    assert r.best_iteration == 1 and r.best_prompt == "prompt v0"
    assert torch.equal(r.best_images, r.all_images[1])


def test_batch_uses_best_image_and_its_refined_request():
    script = [[answer(2.0, 2.0, refined="from 0"), answer(2.5, 2.5, refined="from 1"),
               answer(2.5, 2.5, refined="from 2")], HIGH]
    gen = PixelGenerator(batch=3)
    r = run_loop(gen, ScriptedCritic(script), "a cat", LoopConfig(max_iterations=3))
    first = r.history[0]
    assert first["best_index"] == 1 and first["batch_size"] == 3 and len(first["overall_per_image"]) == 3
    assert gen.calls[1][0] == "from 1"
    assert r.best_iteration == 1 and r.best_index == 0  # the second batch scores higher
    assert r.best_images.shape[0] == 1 and r.final_images.shape[0] == 3


def test_batch_best_image_is_sliced_from_its_batch():
    script = [[low(0, 1.0), low(0, 3.0), low(0, 2.0)]]
    r = run_loop(PixelGenerator(batch=3), ScriptedCritic(script), "a cat", LoopConfig(max_iterations=1))
    assert r.best_index == 1 and torch.equal(r.best_images, r.all_images[0][1:2])


@pytest.mark.parametrize("policy,expected", [("fixed", [7, 7, 7]), ("increment", [7, 8, 9])])
def test_seed_policy(policy, expected):
    gen = PixelGenerator()
    run_loop(gen, ScriptedCritic([low(k) for k in range(5)]), "a cat",
             LoopConfig(max_iterations=3, seed=7, seed_policy=policy))
    assert [s for _, s in gen.calls] == expected


@pytest.mark.parametrize("n,runs,msg", [(0, 1, "below 1"), (25, 20, "clamped to 20")])
def test_max_iterations_clamped(n, runs, msg):
    r = run_loop(PixelGenerator(), ScriptedCritic([low(k) for k in range(30)]), "a cat", LoopConfig(max_iterations=n))
    assert r.iterations_run == runs and r.stop_reason == "max_iterations"
    assert any(msg in w for w in r.warnings)


def test_cancel_between_steps_raises_with_partial_result():
    flag = {"stop": False}
    cb = LoopCallbacks(is_interrupted=lambda: flag["stop"],
                       on_iteration_end=lambda i, e: flag.update(stop=True))
    gen = PixelGenerator()
    with pytest.raises(LoopInterrupted) as ei:
        run_loop(gen, ScriptedCritic([low(k) for k in range(5)]), "a cat", LoopConfig(max_iterations=5), callbacks=cb)
    assert isinstance(ei.value, CritiqueInterrupted)
    res = ei.value.result
    assert res.stop_reason == "cancelled" and res.iterations_run == 1 and res.best_iteration == 0
    assert len(gen.calls) == 1


def test_cancel_inside_the_critic():
    flag = {"stop": False}
    gen = PixelGenerator()
    critic = ScriptedCritic([low(k) for k in range(5)], on_call=lambda n: flag.update(stop=n == 2))
    with pytest.raises(LoopInterrupted) as ei:
        run_loop(gen, critic, "a cat", LoopConfig(max_iterations=5),
                 callbacks=LoopCallbacks(is_interrupted=lambda: flag["stop"], on_iteration_end=lambda i, e: None))
    # the second critique was stopped by the critic's own polling, inside the step
    assert len(gen.calls) == 2 and critic.calls == 1
    assert ei.value.result.iterations_run == 1 and "while critiquing iteration 2" in str(ei.value)


def test_cancel_checked_after_generation():
    flag = {"stop": False}
    gen = PixelGenerator(on_generate=lambda n: flag.update(stop=True))
    critic = ScriptedCritic([HIGH])
    with pytest.raises(LoopInterrupted, match="after generating iteration 1"):
        run_loop(gen, critic, "a cat", callbacks=LoopCallbacks(is_interrupted=lambda: flag["stop"]))
    assert critic.calls == 0


def test_critic_failure_mid_loop_keeps_best_and_stops():
    critic = ScriptedCritic([low(0, 2.5), CriticError("out of memory: lower max_pixels"), HIGH])
    gen = PixelGenerator()
    r = run_loop(gen, critic, "a cat", LoopConfig(max_iterations=5))
    assert r.stop_reason == "critic_error" and "out of memory" in r.error and "iteration 2" in r.error
    assert len(gen.calls) == 2 and critic.calls == 2
    assert r.best_iteration == 0 and r.iterations_run == 2
    assert r.history[-1]["error"] == r.error and r.history[-1]["stop_reason"] == "critic_error"


def test_critic_failure_on_first_iteration_returns_the_unscored_image():
    r = run_loop(PixelGenerator(), ScriptedCritic([RuntimeError("server down")]), "a cat")
    assert r.stop_reason == "critic_error" and r.best_score is None
    assert r.best_iteration == 0 and torch.equal(r.best_images, r.all_images[0])


def test_generator_without_image_first_iteration_raises():
    with pytest.raises(GeneratorError, match="PixelGenerator returned no image for iteration 1"):
        run_loop(PixelGenerator(fail_at=1), ScriptedCritic([HIGH]), "a cat")


def test_generator_without_image_later_ends_loop_with_best():
    r = run_loop(PixelGenerator(fail_at=2), ScriptedCritic([low(0), HIGH]), "a cat", LoopConfig(max_iterations=4))
    assert r.stop_reason == "generator_error" and "PixelGenerator returned no image for iteration 2" in r.error
    assert r.best_iteration == 0 and r.iterations_run == 2 and len(r.all_images) == 1


def test_unreadable_critique_with_fixed_seed_stops_as_no_change():
    r = run_loop(PixelGenerator(), ScriptedCritic(["I cannot judge this."]), "a cat", LoopConfig(max_iterations=5))
    assert r.stop_reason == "no_change" and r.iterations_run == 1
    assert "could not be read" in r.history[0]["decision"]["reason"]
    r2 = run_loop(PixelGenerator(), ScriptedCritic(["I cannot judge this."]), "a cat",
                  LoopConfig(max_iterations=3, seed_policy="increment"))
    assert r2.stop_reason == "max_iterations" and r2.best_score is None and r2.best_iteration == 0


def test_history_is_json_and_complete():
    r = run_loop(PixelGenerator(), ScriptedCritic([low(0), HIGH]), "a cat", LoopConfig(max_iterations=3, seed=3))
    h = json.loads(r.history_json())
    assert [e["iteration"] for e in h] == [0, 1]
    e = h[0]
    for key in ("prompt", "seed", "overall", "scores", "critique", "decision", "generate_seconds",
                "critique_seconds", "refine_seconds"):
        assert key in e
    assert e["scores"] == {"text_faithfulness": 2.0, "physical_quality": 2.5, "text_rendering": None}
    assert e["critique"]["kind"] == "t2i" and e["decision"]["changed"] is True
    assert e["generate_seconds"] >= 0 and e["critique_seconds"] >= 0
    assert "good enough" in r.summary()


def test_step_api_does_not_modify_its_input_state():
    critic = ScriptedCritic([low(0), HIGH])
    gen = PixelGenerator()
    state, cfg = start("a cat", LoopConfig(max_iterations=3, seed=5, seed_policy="increment"))
    s1, out1 = step(state, gen.generate(state.prompt, state.seed), critic, cfg)
    assert isinstance(out1, StepOutcome) and not out1.stop
    assert (out1.next_prompt, out1.next_seed) == ("prompt v0", 6)
    assert state.iteration == 0 and state.history == [] and s1.iteration == 1
    s2, out2 = step(s1, gen.generate(s1.prompt, s1.seed), critic, cfg)
    assert out2.stop and out2.stop_reason == "good_enough" and s2.done
    assert json.loads(json.dumps(s2.to_dict()))["best_iteration"] == 1
    with pytest.raises(LoopConfigError, match="already stopped"):
        step(s2, gen.generate("x", 1), critic, cfg)
    with pytest.raises(GeneratorError, match="no image for iteration 2"):
        step(s1, None, critic, cfg)


def test_edit_source_from_config_and_from_generator():
    src = torch.full((1, 32, 32, 3), 0.5)
    edit_answer = answer(3.5, 3.5).replace(
        "2. Physical", "2. Image Faithfulness:\n## Justification: if\n## Score: 3.5\n3. Physical")
    critic = ScriptedCritic([edit_answer])
    r = run_loop(PixelGenerator(), critic, "make it red", LoopConfig(source=src))
    assert r.history[0]["critique"]["kind"] == "edit"
    images = [p for p in critic.requests[0][0][-1]["content"] if p["type"] == "image"]
    assert len(images) == 2
    gen = PixelGenerator()
    gen.source = src
    critic2 = ScriptedCritic([edit_answer])
    assert run_loop(gen, critic2, "make it red").history[0]["critique"]["kind"] == "edit"


def test_syntax_is_hidden_from_the_critic_and_kept_in_the_next_prompt():
    critic = ScriptedCritic([answer(2.0, 3.0, refined="a fluffy cat wearing a red hat"), HIGH])
    gen = PixelGenerator()
    cfg = LoopConfig(keep_phrases=("masterpiece",), max_iterations=3)
    run_loop(gen, critic, "masterpiece, a cat, (red hat:1.3) <lora:catStyle:0.7>", cfg)
    assert critic.prompts_seen()[0] == "masterpiece, a cat, red hat"
    assert gen.calls[1][0] == "a fluffy cat wearing a (red hat:1.3), masterpiece, <lora:catStyle:0.7>"


def test_rewrite_with_the_critics_text_generation():
    class Rewriter(ScriptedCritic):
        def generate_text(self, messages, settings=None, callbacks=None):
            self.rewrite_messages = messages
            return Generation('Refined prompt: "a tabby cat, sharp focus"')

    critic = Rewriter([low(0), HIGH])
    gen = PixelGenerator()
    run_loop(gen, critic, "a cat", LoopConfig(rewrite=make_critic_rewriter(critic, "Be brief.")))
    assert gen.calls[1][0] == "a tabby cat, sharp focus"
    assert critic.rewrite_messages[0]["content"][0]["text"] == "Be brief."


def test_rewrite_failure_is_a_critic_error():
    def broken(prompt, critique):
        raise CriticError("text generation failed")

    r = run_loop(PixelGenerator(), ScriptedCritic([low(0)]), "a cat", LoopConfig(rewrite=broken))
    assert r.stop_reason == "critic_error" and "rewrite failed" in r.error and r.best_iteration == 0


def test_callbacks_and_critic_is_not_closed():
    events = []

    class Counting(ScriptedCritic):
        closed = 0

        def close(self):
            self.closed += 1

    critic = Counting([low(0), low(1), HIGH])
    cb = LoopCallbacks(on_iteration_start=lambda i, p, s: events.append(("start", i, p, s)),
                       on_image=lambda i, im: events.append(("image", i, tuple(im.shape))),
                       on_iteration_end=lambda i, e: events.append(("end", i, e["overall"] is not None)),
                       on_text=lambda k, t: None)
    r = run_loop(PixelGenerator(), critic, "a cat", LoopConfig(max_iterations=5, seed=1), callbacks=cb)
    assert r.iterations_run == 3 and critic.closed == 0
    assert events[:3] == [("start", 0, "a cat", 1), ("image", 0, (1, 32, 32, 3)), ("end", 0, True)]
    assert len(events) == 9


@pytest.mark.parametrize("kwargs,match", [
    ({"rule": "median"}, "rule"), ({"threshold": 5}, "threshold"), ({"patience": -1}, "patience"),
    ({"seed_policy": "random"}, "seed_policy"), ({"overflow": "cut"}, "overflow"),
    ({"aspect_weights": {"text_faithfulness": -1}}, "weights"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(LoopConfigError, match=match):
        run_loop(PixelGenerator(), ScriptedCritic([HIGH]), "a cat", LoopConfig(**kwargs))


def test_empty_prompt():
    with pytest.raises(LoopConfigError, match="prompt is empty"):
        run_loop(PixelGenerator(), ScriptedCritic([HIGH]), "  ")


def test_aspect_weights_drive_the_best():
    script = [answer(3.0, 1.0, refined="v1"), answer(1.5, 3.0, refined="v2")]
    plain = run_loop(PixelGenerator(), ScriptedCritic(script), "a cat", LoopConfig(max_iterations=2))
    tf_only = run_loop(PixelGenerator(), ScriptedCritic(script), "a cat",
                       LoopConfig(max_iterations=2, aspect_weights={"physical_quality": 0}))
    assert plain.best_iteration == 1 and tf_only.best_iteration == 0


@pytest.mark.slow
def test_real_tiny_critic_is_placed_once_per_run(tiny_critic_dir):
    """The real LocalCritic (tiny random Qwen3-VL): one load, and one placement per loop run."""
    from rationalrewards.models.backends.base import GenerationSettings
    from rationalrewards.models.backends.local import LocalCritic
    from rationalrewards.models.backends.local_options import DevicePlacement

    class CountingPlacement(DevicePlacement):
        """Offloads on release like ComfyUI may; counts how often the model is brought back."""

        def __init__(self):
            super().__init__("cpu")
            self.loads = 0
            self.on_device = False

        def prepare(self, model):
            if not self.on_device:
                self.loads += 1
                self.on_device = True
            return super().prepare(model)

        def release(self, model):
            self.on_device = False

    placement = CountingPlacement()
    critic = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu", memory=placement)
    cfg = LoopConfig(max_iterations=2, seed_policy="increment",
                     settings=GenerationSettings(max_new_tokens=4, greedy=True))
    r = run_loop(PixelGenerator(), critic, "a cat", cfg)
    assert r.iterations_run == 2 and placement.loads == 1  # random text: unreadable, so it runs to max
    assert all("could not be read" in e["decision"]["reason"] for e in r.history)
    placement.loads = 0
    run_loop(PixelGenerator(), critic, "a dog", dataclasses.replace(cfg, keep_critic_resident=False))
    assert placement.loads == 2
    critic.close()


def test_pil_list_batches():
    from PIL import Image

    class PilGenerator:
        def generate(self, prompt, seed):
            return [Image.new("RGB", (32, 32), (k * 40, 0, 0)) for k in range(3)]

    r = run_loop(PilGenerator(), ScriptedCritic([[low(0, 1.0), low(0, 2.0), low(0, 2.0)]]), "a cat",
                 LoopConfig(max_iterations=1))
    assert r.best_index == 1 and isinstance(r.best_images, list) and len(r.best_images) == 1
    assert r.best_images[0].getpixel((0, 0)) == (40, 0, 0)
