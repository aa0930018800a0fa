#!/usr/bin/env python3
"""Write the pack's drag-and-drop workflows: workflows/*.json, and the same files plus a .jpg thumbnail
each in example_workflows/ (ComfyUI's Workflow -> Browse Templates).

    python tools/build_workflows.py

Node definitions: core nodes from tests/fixtures/core_object_info.json (tools/capture_object_info.py),
the pack's from define_schema() through the ComfyUI stand-in, so the files always match the nodes.
Model names are the documented defaults (RationalRewards-8B-T2I / -Edit, the usual ComfyUI file names).
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "comfy_standin"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from workflow_builder import Graph, thumbnail  # noqa: E402
from workflow_check import load_core, pack_defs  # noqa: E402

T2I, EDIT = "TIGER-Lab/RationalRewards-8B-T2I", "TIGER-Lab/RationalRewards-8B-Edit"
SD15 = "v1-5-pruned-emaonly.safetensors"
PROMPT = "a red fox sitting in a snowy forest at dawn, a wooden sign that says \"WINTER\""
NEGATIVE = "blurry, low quality, deformed"
REMOTE_NOTE = ("Start a RationalRewards server first (README: vLLM), e.g.\n"
               "vllm serve TIGER-Lab/RationalRewards-8B-T2I --served-model-name Qwen3-VL-8B-Instruct --port 6868\n"
               "'model' must equal --served-model-name; put an API key in an environment variable and give its "
               "NAME in api_key_env.")

#: namespace of the workflows' stable UUIDs
WORKFLOW_NS = uuid.UUID("6f1d7f2e-3c1a-4d59-9a43-52b7c3a1e0d4")


def loader(g: Graph, repo: str = T2I):
    return g.add("RationalRewardsModelLoader", {"model": repo})


def sd15(g: Graph):
    ckpt = g.add("CheckpointLoaderSimple", {"ckpt_name": SD15})
    neg = g.add("CLIPTextEncode", {"text": NEGATIVE}, title="Negative")
    g.link(ckpt, "CLIP", neg, "clip")
    return ckpt, neg


def critique_image(g: Graph) -> None:
    g.add("Note", {"text": "Critique any picture: load it, type the prompt it was made from, run. The Score Card "
                           "shows per-aspect scores (1-4) and reasons; the Critic node shows the scores too."}, col=0)
    img = g.add("LoadImage", {"image": "example.png"})
    crit_model = loader(g)
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    g.link(crit_model, "critic", critic, "critic")
    g.link(img, "IMAGE", critic, "image")
    card = g.add("RationalRewardsScoreCard")
    g.link(img, "IMAGE", card, "image")
    g.link(critic, "critique", card, "critique")
    prev = g.add("PreviewImage")
    g.link(card, "score_card", prev, "images")


def t2i_one_refine_step(g: Graph) -> None:
    g.add("Note", {"text": "The paper's loop by hand: generate, critique, refine the prompt, generate again with "
                           "the same seed. Any SD1.5 or SDXL checkpoint works."}, col=0)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Prompt")
    ckpt, neg = sd15(g)
    pos1 = g.add("CLIPTextEncode", {"text": PROMPT}, title="Positive (first try)")
    latent = g.add("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})
    ks1 = g.add("KSampler", {"seed": 123456789, "seed:control": "fixed", "steps": 20, "cfg": 7.0,
                 "sampler_name": "euler", "scheduler": "normal"},
                title="KSampler (first try)")
    dec1 = g.add("VAEDecode")
    crit_model = loader(g)
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    refiner = g.add("RationalRewardsPromptRefiner", {"prompt": PROMPT, "token_window": "77 (SD1.5/SDXL CLIP)"})
    pos2 = g.add("CLIPTextEncode", {"text": ""}, title="Positive (refined)")
    ks2 = g.add("KSampler", {"seed": 123456789, "seed:control": "fixed", "steps": 20, "cfg": 7.0,
                 "sampler_name": "euler", "scheduler": "normal"},
                title="KSampler (refined, same seed)")
    dec2 = g.add("VAEDecode")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/refined"})
    card = g.add("RationalRewardsScoreCard", {"title": "first try"})
    prev = g.add("PreviewImage")
    g.link(prompt, "STRING", pos1, "text")
    g.link(prompt, "STRING", critic, "prompt")
    g.link(prompt, "STRING", refiner, "prompt")
    g.link(ckpt, "CLIP", pos1, "clip")
    for ks, pos in ((ks1, pos1), (ks2, pos2)):
        g.link(ckpt, "MODEL", ks, "model")
        g.link(pos, "CONDITIONING", ks, "positive")
        g.link(neg, "CONDITIONING", ks, "negative")
        g.link(latent, "LATENT", ks, "latent_image")
    g.link(ks1, "LATENT", dec1, "samples")
    g.link(ckpt, "VAE", dec1, "vae")
    g.link(crit_model, "critic", critic, "critic")
    g.link(dec1, "IMAGE", critic, "image")
    g.link(critic, "critique", refiner, "critique")
    g.link(refiner, "prompt", pos2, "text")
    g.link(ckpt, "CLIP", pos2, "clip")
    g.link(ks2, "LATENT", dec2, "samples")
    g.link(ckpt, "VAE", dec2, "vae")
    g.link(dec2, "IMAGE", save, "images")
    g.link(dec1, "IMAGE", card, "image")
    g.link(critic, "critique", card, "critique")
    g.link(card, "score_card", prev, "images")


def simple_loop(g: Graph, remote: bool = False) -> None:
    g.add("Note", {"text": (REMOTE_NOTE + "\n\n" if remote else "") + "The Simple Loop generates with your "
                   "checkpoint, critiques, refines the prompt and tries again (same seed) until every aspect "
                   "scores >= threshold (early stop), the score stops improving for 'patience' iterations, or "
                   "max_iterations is reached. best_image is the best-scored try."}, col=0)
    ckpt = g.add("CheckpointLoaderSimple", {"ckpt_name": SD15})  # the loop encodes its prompts itself
    if remote:
        crit_model = g.add("RationalRewardsRemoteCritic")
    else:
        crit_model = loader(g)
    loop = g.add("RationalRewardsSimpleLoop", {
        "positive": PROMPT, "negative": NEGATIVE, "width": 512, "height": 512, "seed": 123456789,
        "seed:control": "fixed", "steps": 20, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "rule": "paper", "threshold": 3.0, "patience": 1,
        "token_window": "77 (SD1.5/SDXL CLIP)", "max_iterations": 4, "seed_policy": "fixed"})
    for out, inp in (("MODEL", "model"), ("CLIP", "clip"), ("VAE", "vae")):
        g.link(ckpt, out, loop, inp)
    g.link(crit_model, "critic", loop, "critic")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/loop"})
    g.link(loop, "best_image", save, "images")
    prev = g.add("PreviewImage", title="Every iteration")
    g.link(loop, "all_images", prev, "images")
    hist = g.add("PreviewAny", title="History (why it stopped)")
    g.link(loop, "history", hist, "source")


def graph_loop_flux(g: Graph) -> None:
    g.add("Note", {"text": "Graph Loop: the nodes between Loop Start and Loop End (the 'loop body' group) run "
                           "again with the refined prompt; the loaders and the empty latent outside run once. "
                           "Flux dev: cfg 1.0, guidance 3.5, negative zeroed. Put the files in models/unet, "
                           "models/clip and models/vae."}, col=0)
    unet = g.add("UNETLoader", {"unet_name": "flux1-dev.safetensors"})
    clip = g.add("DualCLIPLoader", {"clip_name1": "clip_l.safetensors",
                                    "clip_name2": "t5xxl_fp8_e4m3fn.safetensors", "type": "flux"})
    vae = g.add("VAELoader", {"vae_name": "ae.safetensors"})
    latent = g.add("EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1})
    crit_model = loader(g)
    start = g.add("RationalRewardsLoopStart", {"prompt": PROMPT, "seed": 123456789, "max_iterations": 3})
    enc = g.add("CLIPTextEncode", {"text": ""}, title="Encode the loop's prompt")
    guid = g.add("FluxGuidance", {"guidance": 3.5})
    zero = g.add("ConditioningZeroOut")
    ks = g.add("KSampler", {"steps": 20, "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple"})
    dec = g.add("VAEDecode")
    end = g.add("RationalRewardsLoopEnd", {"threshold": 3.0, "patience": 1})
    g.link(clip, "CLIP", enc, "clip")
    g.link(start, "prompt", enc, "text")
    g.link(enc, "CONDITIONING", guid, "conditioning")
    g.link(enc, "CONDITIONING", zero, "conditioning")
    g.link(unet, "MODEL", ks, "model")
    g.link(guid, "CONDITIONING", ks, "positive")
    g.link(zero, "CONDITIONING", ks, "negative")
    g.link(latent, "LATENT", ks, "latent_image")
    g.link(start, "seed", ks, "seed")
    g.link(ks, "LATENT", dec, "samples")
    g.link(vae, "VAE", dec, "vae")
    g.link(start, "flow", end, "flow")
    g.link(dec, "IMAGE", end, "image")
    g.link(crit_model, "critic", end, "critic")
    g.group("loop body (runs once per iteration)", [enc, guid, zero, ks, dec])
    _loop_outputs(g, end, "RationalRewards/flux_loop")


def graph_loop_qwen_edit(g: Graph) -> None:
    g.add("Note", {"text": "Image editing in a Graph Loop: Qwen-Image-Edit makes the edit, the Edit critic "
                           "(RationalRewards-8B-Edit) judges it against the source picture and the instruction, "
                           "and the loop refines the instruction. Files: models/diffusion_models (unet), "
                           "models/text_encoders (clip), models/vae."}, col=0)
    unet = g.add("UNETLoader", {"unet_name": "qwen_image_edit_fp8_e4m3fn.safetensors"})
    clip = g.add("CLIPLoader", {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"})
    vae = g.add("VAELoader", {"vae_name": "qwen_image_vae.safetensors"})
    src = g.add("LoadImage", {"image": "example.png"}, title="Source image")
    scale = g.add("ImageScaleToTotalPixels", {"upscale_method": "lanczos", "megapixels": 1.0})
    enc_src = g.add("VAEEncode")
    shift = g.add("ModelSamplingAuraFlow", {"shift": 3.1})
    norm = g.add("CFGNorm", {"strength": 1.0})
    neg = g.add("TextEncodeQwenImageEdit", {"prompt": ""}, title="Negative")
    crit_model = loader(g, EDIT)
    start = g.add("RationalRewardsLoopStart", {
        "prompt": "Replace the sky with a warm sunset and keep everything else unchanged",
        "seed": 123456789, "max_iterations": 3})
    pos = g.add("TextEncodeQwenImageEdit", {"prompt": ""}, title="Edit instruction (from the loop)")
    ks = g.add("KSampler", {"steps": 20, "cfg": 2.5, "sampler_name": "euler", "scheduler": "simple"})
    dec = g.add("VAEDecode")
    end = g.add("RationalRewardsLoopEnd", {"threshold": 3.0, "patience": 1})
    g.link(src, "IMAGE", scale, "image")
    g.link(scale, "IMAGE", enc_src, "pixels")
    g.link(vae, "VAE", enc_src, "vae")
    g.link(unet, "MODEL", shift, "model")
    g.link(shift, "MODEL", norm, "model")
    for enc in (neg, pos):
        g.link(clip, "CLIP", enc, "clip")
        g.link(vae, "VAE", enc, "vae")
        g.link(scale, "IMAGE", enc, "image")
    g.link(start, "prompt", pos, "prompt")
    g.link(norm, "patched_model", ks, "model")
    g.link(pos, "CONDITIONING", ks, "positive")
    g.link(neg, "CONDITIONING", ks, "negative")
    g.link(enc_src, "LATENT", ks, "latent_image")
    g.link(start, "seed", ks, "seed")
    g.link(ks, "LATENT", dec, "samples")
    g.link(vae, "VAE", dec, "vae")
    g.link(start, "flow", end, "flow")
    g.link(dec, "IMAGE", end, "image")
    g.link(crit_model, "critic", end, "critic")
    g.link(scale, "IMAGE", end, "source_image")
    g.group("loop body (runs once per iteration)", [pos, ks, dec])
    _loop_outputs(g, end, "RationalRewards/qwen_edit_loop")


def _loop_outputs(g: Graph, end, prefix: str) -> None:
    save = g.add("SaveImage", {"filename_prefix": prefix})
    g.link(end, "best_image", save, "images")
    prev = g.add("PreviewImage", title="Every iteration")
    g.link(end, "all_images", prev, "images")
    hist = g.add("PreviewAny", title="History (why it stopped)")
    g.link(end, "history", hist, "source")


def _sd15_batch(g: Graph, seeds: list[int], batch: int, prompt_node):
    ckpt, neg = sd15(g)
    pos = g.add("CLIPTextEncode", {"text": PROMPT}, title="Positive")
    g.link(ckpt, "CLIP", pos, "clip")
    g.link(prompt_node, "STRING", pos, "text")
    latent = g.add("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": batch})
    outs = []
    for seed in seeds:
        ks = g.add("KSampler", {"seed": seed, "seed:control": "fixed", "steps": 20, "cfg": 7.0,
                 "sampler_name": "euler", "scheduler": "normal"},
                   title=f"KSampler (seed {seed})" if len(seeds) > 1 else None)
        g.link(ckpt, "MODEL", ks, "model")
        g.link(pos, "CONDITIONING", ks, "positive")
        g.link(neg, "CONDITIONING", ks, "negative")
        g.link(latent, "LATENT", ks, "latent_image")
        dec = g.add("VAEDecode")
        g.link(ks, "LATENT", dec, "samples")
        g.link(ckpt, "VAE", dec, "vae")
        outs.append((ks, dec))
    return ckpt, outs


def best_of_n(g: Graph) -> None:
    g.add("Note", {"text": "Best-of-N: 4 images in one batch, each critiqued on its own absolute scores; the best "
                           "k are kept (best first) with their LATENT rows, e.g. for a hires-fix pass."}, col=0)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Prompt")
    ckpt, [(ks, dec)] = _sd15_batch(g, [123456789], 4, prompt)
    crit_model = loader(g)
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    best = g.add("RationalRewardsBestOfN", {"k": 1})
    g.link(crit_model, "critic", critic, "critic")
    g.link(dec, "IMAGE", critic, "image")
    g.link(prompt, "STRING", critic, "prompt")
    g.link(dec, "IMAGE", best, "images")
    g.link(critic, "critique", best, "critique")
    g.link(ks, "LATENT", best, "latent")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/best_of_4"})
    g.link(best, "images", save, "images")
    card = g.add("RationalRewardsScoreCard", {"title": "best of 4"})
    g.link(best, "images", card, "image")
    g.link(best, "critique", card, "critique")
    prev = g.add("PreviewImage")
    g.link(card, "score_card", prev, "images")
    dec2 = g.add("VAEDecode", title="Best latent (passed through)")
    g.link(best, "latent", dec2, "samples")
    g.link(ckpt, "VAE", dec2, "vae")
    prev2 = g.add("PreviewImage", title="Decoded best latent")
    g.link(dec2, "IMAGE", prev2, "images")


def pairwise_ab(g: Graph) -> None:
    g.add("Note", {"text": "Pairwise A/B: the same prompt with two seeds; the critic scores both on every "
                           "aspect and names the winner. The Score Card needs A then B in one batch."}, col=0)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Prompt")
    _, [(_, dec_a), (_, dec_b)] = _sd15_batch(g, [111, 222], 1, prompt)
    crit_model = loader(g)
    cmp_ = g.add("RationalRewardsCompare", {"prompt": PROMPT})
    g.link(crit_model, "critic", cmp_, "critic")
    g.link(dec_a, "IMAGE", cmp_, "image_a")
    g.link(dec_b, "IMAGE", cmp_, "image_b")
    g.link(prompt, "STRING", cmp_, "prompt")
    both = g.add("ImageBatch", title="A then B")
    g.link(dec_a, "IMAGE", both, "image1")
    g.link(dec_b, "IMAGE", both, "image2")
    card = g.add("RationalRewardsScoreCard", {"title": "A vs B"})
    g.link(both, "IMAGE", card, "image")
    g.link(cmp_, "comparison", card, "critique")
    prev = g.add("PreviewImage")
    g.link(card, "score_card", prev, "images")
    win = g.add("PreviewAny", title="Winner")
    g.link(cmp_, "winner", win, "source")


WORKFLOWS = {
    "critique_image": ("Critique an image", critique_image),
    "t2i_one_refine_step": ("Generate, critique, refine once", t2i_one_refine_step),
    "simple_loop_early_stop": ("Simple Loop with early stop", simple_loop),
    "graph_loop_flux_t2i": ("Graph Loop around Flux", graph_loop_flux),
    "graph_loop_qwen_image_edit": ("Graph Loop: Qwen-Image-Edit", graph_loop_qwen_edit),
    "best_of_n": ("Best-of-N (batch of 4)", best_of_n),
    "pairwise_ab": ("Pairwise A/B", pairwise_ab),
    "simple_loop_remote": ("Simple Loop, remote critic", lambda g: simple_loop(g, remote=True)),
}


def build(defs: dict) -> dict[str, dict]:
    """{file stem: workflow dict} for every workflow."""
    out = {}
    for stem, (_, fn) in WORKFLOWS.items():
        g = Graph(defs)
        fn(g)
        # the frontend's workflow schema wants a UUID string id (null makes a dropped file fail to load);
        # derived from the name so rebuilding gives the same file
        out[stem] = {"id": str(uuid.uuid5(WORKFLOW_NS, stem))} | g.to_json()
    return out


def main() -> int:
    defs = load_core() | pack_defs()
    for folder in ("workflows", "example_workflows"):
        (ROOT / folder).mkdir(exist_ok=True)
    for stem, wf in build(defs).items():
        text = json.dumps(wf, indent=2) + "\n"
        for folder in ("workflows", "example_workflows"):
            (ROOT / folder / f"{stem}.json").write_text(text)
        thumbnail(wf, WORKFLOWS[stem][0], ROOT / "example_workflows" / f"{stem}.jpg")
        print(stem, len(wf["nodes"]), "nodes", len(wf["links"]), "links")
    return 0


if __name__ == "__main__":
    sys.exit(main())
