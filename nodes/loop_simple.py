"""Simple Loop node: generate -> critique -> refine inside one node, sampling through ComfyUI's own path.

Each iteration encodes the prompt as CLIPTextEncode does (clip.tokenize + encode_from_tokens_scheduled),
samples with nodes.common_ksampler (any checkpoint KSampler can use; ComfyUI loads and moves the
MODEL as VRAM needs) and decodes as VAEDecode does. The loop itself is engine.loop.run_loop, which
holds the critic resident for the whole run.
"""
from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..engine.loop import LoopCallbacks, LoopConfig, run_loop
from ..models.errors import CritiqueInterrupted
from . import host
from .common import checks_combos
from .loop_common import (LOOP_CATEGORY, loop_outputs, max_iterations_input, node_text, refine_config,
                          refine_inputs, result_outputs, result_ui, seed_policy_input)
from .types import Critic, as_critic

#: Longest side of the per-iteration preview sent to the node.
PREVIEW_SIZE = 512


def encode_text(clip: Any, text: str) -> Any:
    """CONDITIONING for ``text``, the way CLIPTextEncode.encode makes it."""
    if clip is None:
        raise RuntimeError("clip input is invalid: None. If the clip is from a checkpoint loader, the checkpoint "
                           "has no text encoder; load one and connect it.")
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def decode_latent(vae: Any, samples: Any) -> Any:
    """IMAGE [B,H,W,C] from latent samples, the way VAEDecode.decode does (5-D video output flattened)."""
    images = vae.decode(samples)
    if len(images.shape) == 5:
        images = images.reshape(-1, images.shape[-3], images.shape[-2], images.shape[-1])
    return images


def empty_latent(width: int, height: int, batch_size: int) -> dict:
    """EmptyLatentImage's latent; common_ksampler adapts its channels to the model."""
    import torch
    import comfy.model_management as mm

    return {"samples": torch.zeros([int(batch_size), 4, int(height) // 8, int(width) // 8],
                                   device=mm.intermediate_device())}


class ComfyGenerator:
    """The engine's Generator over ComfyUI's sampling path: prompt, seed -> IMAGE batch."""

    name = "ComfyUI sampler (CLIP encode, common_ksampler, VAE decode)"

    def __init__(self, model, clip, vae, negative: str, latent: dict, steps: int, cfg: float, sampler_name: str,
                 scheduler: str, denoise: float):
        self.model, self.clip, self.vae, self.latent = model, clip, vae, latent
        self.negative_text = negative
        self.steps, self.cfg, self.sampler_name, self.scheduler = int(steps), float(cfg), sampler_name, scheduler
        self.denoise = float(denoise)
        self._negative = None  # encoded once: the negative prompt never changes within a run

    def generate(self, prompt: str, seed: int) -> Any:
        import comfy.model_management as mm
        import nodes

        try:
            positive = encode_text(self.clip, prompt)
            if self._negative is None:
                self._negative = encode_text(self.clip, self.negative_text or "")
            (out,) = nodes.common_ksampler(self.model, int(seed), self.steps, self.cfg, self.sampler_name,
                                           self.scheduler, positive, self._negative, self.latent, denoise=self.denoise)
            return decode_latent(self.vae, out["samples"])
        except mm.InterruptProcessingException:
            # Cancel pressed while sampling: the engine's cancel, so the loop stops as cancelled
            # (and the node turns it back into ComfyUI's interrupt) instead of as a generator failure.
            raise CritiqueInterrupted("cancelled while sampling") from None


def _preview(images: Any) -> Any:
    """("JPEG", PIL image, max size): the preview tuple ComfyUI's progress hook sends to the node."""
    import numpy as np
    from PIL import Image

    arr = np.clip(255.0 * images[0].detach().cpu().float().numpy(), 0, 255).astype(np.uint8)
    return ("JPEG", Image.fromarray(arr[..., :3] if arr.shape[-1] >= 3 else arr[..., 0]), PREVIEW_SIZE)


class SimpleLoopNode(io.ComfyNode):
    """Generate, critique and refine with a checkpoint until good enough; hand back the best."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        import comfy.samplers

        return io.Schema(
            node_id="RationalRewardsSimpleLoop",
            display_name="RationalRewards Refinement Loop (simple)",
            category=LOOP_CATEGORY,
            description="Generates an image with your checkpoint (CLIP encode, KSampler, VAE decode), has the critic "
            "judge it, rewrites the prompt from the critique and generates again, until every aspect is good enough, "
            "the score stops improving or max_iterations is reached. Outputs the best image and prompt, the last "
            "image, every iteration's image and the history. For any other sampling graph use the Loop Start / "
            "Loop End pair.",
            inputs=[
                io.Model.Input("model", tooltip="The diffusion model (from a checkpoint loader)."),
                io.Clip.Input("clip", tooltip="The text encoder used for the positive and negative prompts."),
                io.Vae.Input("vae", tooltip="The VAE that decodes the sampled latents."),
                io.String.Input("positive", multiline=True, default="",
                                tooltip="The prompt to generate and refine (ComfyUI syntax such as (word:1.2) and "
                                "embedding:name is kept through refinement)."),
                io.String.Input("negative", multiline=True, default="",
                                tooltip="Negative prompt, the same for every iteration."),
                io.Latent.Input("latent", optional=True,
                                tooltip="Optional start latent (e.g. from VAE Encode for img2img with denoise < 1). "
                                "Unconnected: an empty latent of width x height x batch_size."),
                io.Int.Input("width", default=512, min=16, max=16384, step=8,
                             tooltip="Image width when no latent is connected."),
                io.Int.Input("height", default=512, min=16, max=16384, step=8,
                             tooltip="Image height when no latent is connected."),
                io.Int.Input("batch_size", default=1, min=1, max=64,
                             tooltip="Images per iteration when no latent is connected; each is critiqued and the "
                             "best one's critique drives the refinement."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="Sampling seed of the first iteration (see seed_policy)."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="Sampling steps."),
                io.Float.Input("cfg", default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale."),
                io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS),
                               tooltip="The sampling algorithm (as on KSampler)."),
                io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS),
                               tooltip="The noise schedule (as on KSampler)."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="Denoise strength; below 1.0 with a connected latent for img2img."),
                Critic.Input("critic", tooltip="From RationalRewards Model Loader or Remote Critic; it stays loaded "
                             "for the whole loop."),
                *refine_inputs(),
                max_iterations_input(),
                seed_policy_input(),
                io.Image.Input("source_image", optional=True,
                               tooltip="For edits (img2img of a source picture): the source image, so the critic "
                               "judges an edit (image faithfulness included)."),
            ],
            outputs=loop_outputs(),
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, model, clip, vae, positive, negative, width, height, batch_size, seed, steps, cfg, sampler_name,
                scheduler, denoise, critic, rule, threshold, patience, keep_phrases, token_window, overflow,
                max_iterations, seed_policy, latent=None, source_image=None) -> io.NodeOutput:
        backend = as_critic(critic)
        node_id = cls.hidden.unique_id
        config = LoopConfig(max_iterations=int(max_iterations), seed=int(seed), seed_policy=seed_policy,
                            source=source_image, **refine_config(rule, threshold, patience, keep_phrases,
                                                                 token_window, overflow))
        checked, warnings = config.checked()  # run_loop checks again and keeps the messages in the result
        for w in warnings:
            host.send_text(node_id, f"warning: {w}")
        n = checked.max_iterations
        generator = ComfyGenerator(model, clip, vae, negative,
                                   latent if latent is not None else empty_latent(width, height, batch_size),
                                   steps, cfg, sampler_name, scheduler, denoise)
        callbacks = _callbacks(node_id, n)
        result = host.run_interruptible(lambda: run_loop(generator, backend, positive, config, callbacks=callbacks))
        text = node_text(result)
        host.send_text(node_id, text)
        return io.NodeOutput(*result_outputs(result), ui=result_ui(text))


def _callbacks(node_id: str | None, n: int) -> LoopCallbacks:
    """Progress bar by iteration, a preview of each iteration's image, a line per iteration on the node."""
    import comfy.utils

    bar = comfy.utils.ProgressBar(n, node_id=node_id)
    current = {"i": 0}

    def on_iteration_start(i: int, prompt: str, seed: int) -> None:
        current["i"] = i
        host.send_text(node_id, f"iteration {i + 1}/{n}: generating (seed {seed})\n{prompt}")

    def on_image(i: int, images: Any) -> None:
        try:
            preview = _preview(images)
        except Exception:  # a preview must never fail the loop
            preview = None
        bar.update_absolute(i, n, preview)
        host.send_text(node_id, f"iteration {i + 1}/{n}: critiquing")

    def on_iteration_end(i: int, entry: dict) -> None:
        bar.update_absolute(i + 1, n)
        score = "-" if entry.get("overall") is None else f"{entry['overall']:.3f}"
        why = entry.get("error") or (entry.get("decision") or {}).get("reason", "")
        host.send_text(node_id, f"iteration {i + 1}/{n}: score {score}: {why}")

    return LoopCallbacks(on_iteration_start=on_iteration_start, on_iteration_end=on_iteration_end,
                         on_image=on_image, is_interrupted=host.is_interrupted,
                         on_status=host.status_callback(node_id, bar, n, lambda: current["i"]))
