#!/usr/bin/env python3
"""Write the pack's drag-and-drop workflows: workflows/<name>.json plus a <name>.jpg thumbnail beside each
(the same files are ComfyUI's Workflow -> Browse Templates entries for the pack), and the subgraph
blueprints subgraphs/<name>.json (tools/build_subgraphs.py).

    python tools/build_workflows.py

Node definitions: core nodes recorded from ComfyUI 0.3.64 and 0.33.0 (tests/fixtures/, tools/capture_object_info.py;
widgets 0.33 appended are written too, so the files load complete on both), the pack's from define_schema()
through the ComfyUI stand-in, so the files always match the nodes.
Model names are the documented defaults (RationalRewards-8B-T2I / -Edit, the usual ComfyUI file names).
Each workflow reads left to right in groups, "Step 1 - ..." first, with a note saying what to load and where.
"""
from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "comfy_standin"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_subgraphs  # noqa: E402
from thumbnails import THUMBNAILS  # noqa: E402
from workflow_builder import Graph  # noqa: E402
from workflow_check import load_core_both, pack_defs  # noqa: E402

#: namespace of the workflows' stable UUIDs (the frontend's schema wants a UUID string as the id)
WORKFLOW_NS = uuid.UUID("6f1d7f2e-3c1a-4d59-9a43-52b7c3a1e0d4")
#: the frontend version the files are written for (ComfyUI 0.3.64's); they load on later ones too
FRONTEND_VERSION = "1.27.10"

T2I, EDIT = "TIGER-Lab/RationalRewards-8B-T2I", "TIGER-Lab/RationalRewards-8B-Edit"
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
PROMPT = "a red fox sitting in a snowy forest at dawn, a wooden sign that says \"WINTER\""
NEGATIVE = "blurry, low quality, deformed"

SD15_FILES = (f"- **Checkpoint**: any SD1.5 or SDXL checkpoint in `ComfyUI/models/checkpoints` (e.g. "
              f"[{SD15}](https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive)); pick yours in "
              "*Load Checkpoint*.")
CRITIC_FILES = ("- **Critic**: the Model Loader's `{repo}` is downloaded on the first run into "
                "`ComfyUI/models/rationalrewards/{folder}` (about 17.5 GB; never again afterwards). Offline: put "
                "the folder there yourself. Less VRAM: quantization `4bit` (about 6 GB, needs bitsandbytes), or "
                "the Remote Critic.")


def critic_files(repo: str = T2I) -> str:
    return CRITIC_FILES.format(repo=repo, folder=repo.replace("/", "--"))


def loader(g: Graph, repo: str = T2I):
    return g.add("RationalRewardsModelLoader", {"model": repo}, title="Load the critic")


def sd15_models(g: Graph):
    ckpt = g.add("CheckpointLoaderSimple", {"ckpt_name": SD15})
    return ckpt


def encoders(g: Graph, ckpt, prompt_node=None, text: str = PROMPT, title: str = "Positive prompt"):
    pos = g.add("CLIPTextEncode", {"text": text}, title=title)
    neg = g.add("CLIPTextEncode", {"text": NEGATIVE}, title="Negative prompt")
    for enc in (pos, neg):
        g.link(ckpt, "CLIP", enc, "clip")
    if prompt_node is not None:
        g.link(prompt_node, "STRING", pos, "text")
    return pos, neg


def sampler(g: Graph, ckpt, pos, neg, latent, seed: int = 123456789, title: str | None = None):
    ks = g.add("KSampler", {"seed": seed, "seed:control": "fixed", "steps": 20, "cfg": 7.0,
                            "sampler_name": "euler", "scheduler": "normal"}, title=title)
    g.link(ckpt, "MODEL", ks, "model")
    g.link(pos, "CONDITIONING", ks, "positive")
    g.link(neg, "CONDITIONING", ks, "negative")
    g.link(latent, "LATENT", ks, "latent_image")
    dec = g.add("VAEDecode")
    g.link(ks, "LATENT", dec, "samples")
    g.link(ckpt, "VAE", dec, "vae")
    return ks, dec


# ------------------------------------------------------------------------------------------- workflows
def critique_image(g: Graph) -> None:
    note = g.note("## Critique a picture\n"
                  "1. **Step 1**: pick the picture in *Load Image* (or drop one onto it).\n"
                  "2. **Step 2**: type the prompt it was made from into the Critic's *prompt*.\n"
                  "3. Run. The **Score Card** shows every aspect's 1-4 score with its reason; the Critic node "
                  "shows the overall score.\n\n" + critic_files())
    img = g.add("LoadImage", {"image": "example.png"}, title="Load the picture")
    crit_model = loader(g)
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    card = g.add("RationalRewardsScoreCard")
    prev = g.add("PreviewImage", title="Score card")
    g.link(crit_model, "critic", critic, "critic")
    g.link(img, "IMAGE", critic, "image")
    g.link(img, "IMAGE", card, "image")
    g.link(critic, "critique", card, "critique")
    g.link(card, "score_card", prev, "images")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - The picture", [img])
    g.place(2, 0, "Step 2 - Critique it", [crit_model, critic])
    g.place(3, 0, "Step 3 - Scores and reasons", [card, prev])


def t2i_one_refine_step(g: Graph) -> None:
    note = g.note("## Generate, critique, refine once\n"
                  "The paper's test-time step: generate, let the critic judge the picture and rewrite the prompt, "
                  "then generate again **with the same seed**.\n\n" + SD15_FILES + "\n" + critic_files(), height=380)
    ckpt = sd15_models(g)
    crit_model = loader(g)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Your prompt")
    pos1, neg = encoders(g, ckpt, prompt)
    latent = g.add("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})
    ks1, dec1 = sampler(g, ckpt, pos1, neg, latent, title="KSampler (first try)")
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    refiner = g.add("RationalRewardsPromptRefiner", {"prompt": PROMPT, "token_window": "77 (SD1.5/SDXL CLIP)"})
    card = g.add("RationalRewardsScoreCard", {"title": "first try"})
    prev = g.add("PreviewImage", title="First try, scored")
    pos2 = g.add("CLIPTextEncode", {"text": ""}, title="Positive prompt (refined)")
    g.link(ckpt, "CLIP", pos2, "clip")
    ks2, dec2 = sampler(g, ckpt, pos2, neg, latent, title="KSampler (refined, same seed)")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/refined"}, title="Refined picture")
    g.link(prompt, "STRING", critic, "prompt")
    g.link(prompt, "STRING", refiner, "prompt")
    g.link(crit_model, "critic", critic, "critic")
    g.link(dec1, "IMAGE", critic, "image")
    g.link(critic, "critique", refiner, "critique")
    g.link(refiner, "prompt", pos2, "text")
    g.link(dec1, "IMAGE", card, "image")
    g.link(critic, "critique", card, "critique")
    g.link(card, "score_card", prev, "images")
    g.link(dec2, "IMAGE", save, "images")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [ckpt, crit_model])
    g.place(2, 0, "Step 2 - Prompt", [prompt, pos1, neg, latent])
    g.place(3, 0, "Step 3 - First try", [ks1, dec1])
    g.place(4, 0, "Step 4 - Critique and refine", [critic, refiner])
    g.place(5, 0, "First try, scored", [card, prev])
    g.place(4, 1, "Step 5 - Again with the refined prompt", [pos2, ks2, dec2])
    g.place(5, 1, "Result", [save])


def simple_loop(g: Graph, remote: bool = False) -> None:
    if remote:
        critic_text = ("- **Critic server**: start RationalRewards on a server first (README: *Remote critic*), "
                       "e.g. `vllm serve TIGER-Lab/RationalRewards-8B-T2I --served-model-name Qwen3-VL-8B-Instruct "
                       "--port 6868`. *model* must equal `--served-model-name`; a key goes in an environment "
                       "variable whose NAME you give in *api_key_env*.")
    else:
        critic_text = critic_files()
    note = g.note("## Refinement Loop (one node)\n"
                  "Generates with your checkpoint, critiques, refines the prompt and tries again with the same "
                  "seed, until every aspect scores at least *threshold* (early stop), the score stops improving "
                  "for *patience* tries, or *max_iterations* is reached. *best_image* is the best-scored try; the "
                  "history says why it stopped.\n\n" + SD15_FILES + "\n" + critic_text, height=420)
    ckpt = sd15_models(g)
    crit_model = g.add("RationalRewardsRemoteCritic", title="Remote critic (vLLM)") if remote else loader(g)
    loop = g.add("RationalRewardsSimpleLoop", {
        "positive": PROMPT, "negative": NEGATIVE, "width": 512, "height": 512, "seed": 123456789,
        "seed:control": "fixed", "steps": 20, "cfg": 7.0, "sampler_name": "euler",
        "scheduler": "normal", "rule": "paper", "threshold": 3.0, "patience": 1,
        "token_window": "77 (SD1.5/SDXL CLIP)", "max_iterations": 4, "seed_policy": "fixed"},
        title="Refinement Loop")
    for out, inp in (("MODEL", "model"), ("CLIP", "clip"), ("VAE", "vae")):
        g.link(ckpt, out, loop, inp)
    g.link(crit_model, "critic", loop, "critic")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/loop"}, title="Best picture")
    g.link(loop, "best_image", save, "images")
    prev = g.add("PreviewImage", title="Every iteration")
    g.link(loop, "all_images", prev, "images")
    hist = g.add("PreviewAny", title="History (why it stopped)")
    g.link(loop, "history", hist, "source")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [ckpt, crit_model])
    g.place(2, 0, "Step 2 - Prompt, sampler and loop settings", [loop])
    g.place(3, 0, "Results", [save, hist])
    g.place(4, 0, "Every try", [prev])


def graph_loop_flux(g: Graph) -> None:
    note = g.note("## Graph Loop around Flux\n"
                  "Loop Start and Loop End wrap your own graph: the nodes of the *loop body* group run again with "
                  "the refined prompt; loaders and the empty latent run once. Flux dev: cfg 1.0, guidance 3.5, "
                  "negative zeroed.\n\n"
                  "- **Flux files**: `flux1-dev.safetensors` in `ComfyUI/models/unet` (diffusion_models), "
                  "`clip_l.safetensors` and `t5xxl_fp8_e4m3fn.safetensors` in `ComfyUI/models/clip` "
                  "(text_encoders), `ae.safetensors` in `ComfyUI/models/vae`.\n" + critic_files(), height=440)
    unet = g.add("UNETLoader", {"unet_name": "flux1-dev.safetensors"})
    clip = g.add("DualCLIPLoader", {"clip_name1": "clip_l.safetensors",
                                    "clip_name2": "t5xxl_fp8_e4m3fn.safetensors", "type": "flux"})
    vae = g.add("VAELoader", {"vae_name": "ae.safetensors"})
    crit_model = loader(g)
    start = g.add("RationalRewardsLoopStart", {"prompt": PROMPT, "seed": 123456789, "max_iterations": 3})
    latent = g.add("EmptySD3LatentImage", {"width": 1024, "height": 1024, "batch_size": 1})
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
    outs = _loop_outputs(g, end, "RationalRewards/flux_loop")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [unet, clip, vae, crit_model])
    g.place(2, 0, "Step 2 - Prompt and loop", [start, latent])
    g.place(3, 0, "Loop body (runs once per iteration)", [enc, guid, zero])
    g.place(4, 0, "Loop body (sampling)", [ks, dec])
    g.place(5, 0, "Step 3 - Critique, refine, repeat", [end])
    g.place(6, 0, "Results", outs[:2])
    g.place(7, 0, "Every try", outs[2:])


def graph_loop_qwen_edit(g: Graph) -> None:
    note = g.note("## Graph Loop: Qwen-Image-Edit\n"
                  "Qwen-Image-Edit makes the edit, the **Edit critic** judges it against the source picture and "
                  "the instruction, and the loop refines the instruction and edits again.\n\n"
                  "- **Qwen files**: `qwen_image_edit_fp8_e4m3fn.safetensors` in `ComfyUI/models/diffusion_models`, "
                  "`qwen_2.5_vl_7b_fp8_scaled.safetensors` in `ComfyUI/models/text_encoders`, "
                  "`qwen_image_vae.safetensors` in `ComfyUI/models/vae`.\n"
                  "- **Source picture**: Step 2's *Load Image*.\n" + critic_files(EDIT), height=460)
    unet = g.add("UNETLoader", {"unet_name": "qwen_image_edit_fp8_e4m3fn.safetensors"})
    clip = g.add("CLIPLoader", {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"})
    vae = g.add("VAELoader", {"vae_name": "qwen_image_vae.safetensors"})
    crit_model = loader(g, EDIT)
    src = g.add("LoadImage", {"image": "example.png"}, title="Source picture")
    scale = g.add("ImageScaleToTotalPixels", {"upscale_method": "lanczos", "megapixels": 1.0})
    enc_src = g.add("VAEEncode")
    shift = g.add("ModelSamplingAuraFlow", {"shift": 3.1})
    norm = g.add("CFGNorm", {"strength": 1.0})
    neg = g.add("TextEncodeQwenImageEdit", {"prompt": ""}, title="Negative")
    start = g.add("RationalRewardsLoopStart", {
        "prompt": "Replace the sky with a warm sunset and keep everything else unchanged",
        "seed": 123456789, "max_iterations": 3}, title="Loop Start (edit instruction)")
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
    outs = _loop_outputs(g, end, "RationalRewards/qwen_edit_loop")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [unet, clip, vae, crit_model])
    g.place(2, 0, "Step 2 - Source picture", [src, scale, enc_src])
    g.place(3, 0, "Model settings", [shift, norm, neg])
    g.place(4, 0, "Step 3 - Instruction and loop", [start])
    g.place(5, 0, "Loop body (runs once per iteration)", [pos, ks, dec])
    g.place(6, 0, "Step 4 - Critique, refine, repeat", [end])
    g.place(7, 0, "Results", outs[:2])
    g.place(8, 0, "Every try", outs[2:])


def _loop_outputs(g: Graph, end, prefix: str) -> list:
    save = g.add("SaveImage", {"filename_prefix": prefix}, title="Best picture")
    g.link(end, "best_image", save, "images")
    hist = g.add("PreviewAny", title="History (why it stopped)")
    g.link(end, "history", hist, "source")
    prev = g.add("PreviewImage", title="Every iteration")
    g.link(end, "all_images", prev, "images")
    return [save, hist, prev]


def best_of_n(g: Graph) -> None:
    note = g.note("## Best of N\n"
                  "Four pictures in one batch; the critic scores each on its own (absolute scores, never relative "
                  "to the batch) and Best-of-N keeps the best *k*, best first, with their LATENT rows (e.g. for a "
                  "hires-fix pass).\n\n" + SD15_FILES + "\n" + critic_files(), height=400)
    ckpt = sd15_models(g)
    crit_model = loader(g)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Your prompt")
    pos, neg = encoders(g, ckpt, prompt)
    latent = g.add("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 4})
    ks, dec = sampler(g, ckpt, pos, neg, latent)
    critic = g.add("RationalRewardsCritic", {"prompt": PROMPT})
    best = g.add("RationalRewardsBestOfN", {"k": 1})
    g.link(crit_model, "critic", critic, "critic")
    g.link(dec, "IMAGE", critic, "image")
    g.link(prompt, "STRING", critic, "prompt")
    g.link(dec, "IMAGE", best, "images")
    g.link(critic, "critique", best, "critique")
    g.link(ks, "LATENT", best, "latent")
    card = g.add("RationalRewardsScoreCard", {"title": "best of 4"})
    g.link(best, "images", card, "image")
    g.link(best, "critique", card, "critique")
    prev = g.add("PreviewImage", title="Best picture, scored")
    g.link(card, "score_card", prev, "images")
    save = g.add("SaveImage", {"filename_prefix": "RationalRewards/best_of_4"}, title="Best picture")
    g.link(best, "images", save, "images")
    dec2 = g.add("VAEDecode", title="Decode the best latent")
    g.link(best, "latent", dec2, "samples")
    g.link(ckpt, "VAE", dec2, "vae")
    prev2 = g.add("PreviewImage", title="Best latent, decoded")
    g.link(dec2, "IMAGE", prev2, "images")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [ckpt, crit_model])
    g.place(2, 0, "Step 2 - Prompt and a batch of 4", [prompt, pos, neg, latent])
    g.place(3, 0, "Step 3 - Generate", [ks, dec])
    g.place(4, 0, "Step 4 - Score each, keep the best", [critic, best])
    g.place(5, 0, "Best picture", [card, prev])
    g.place(6, 0, "Saved", [save])
    g.place(4, 1, "Its latent, passed through", [dec2, prev2])


def pairwise_ab(g: Graph) -> None:
    note = g.note("## Pairwise A/B\n"
                  "The same prompt with two seeds; the critic scores both pictures on every aspect and names the "
                  "winner (by the sums of the scores). The Score Card takes A then B in one batch.\n\n"
                  + SD15_FILES + "\n" + critic_files(), height=380)
    ckpt = sd15_models(g)
    crit_model = loader(g)
    prompt = g.add("PrimitiveStringMultiline", {"value": PROMPT}, title="Your prompt")
    pos, neg = encoders(g, ckpt, prompt)
    latent = g.add("EmptyLatentImage", {"width": 512, "height": 512, "batch_size": 1})
    ks_a, dec_a = sampler(g, ckpt, pos, neg, latent, seed=111, title="KSampler A (seed 111)")
    ks_b, dec_b = sampler(g, ckpt, pos, neg, latent, seed=222, title="KSampler B (seed 222)")
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
    prev = g.add("PreviewImage", title="A vs B, scored")
    g.link(card, "score_card", prev, "images")
    win = g.add("PreviewAny", title="Winner")
    g.link(cmp_, "winner", win, "source")
    g.place(0, 0, None, [note])
    g.place(1, 0, "Step 1 - Models", [ckpt, crit_model])
    g.place(2, 0, "Step 2 - Prompt", [prompt, pos, neg, latent])
    g.place(3, 0, "Step 3 - Picture A", [ks_a, dec_a])
    g.place(3, 1, "Step 3 - Picture B", [ks_b, dec_b])
    g.place(4, 0, "Step 4 - Compare", [cmp_, win])
    g.place(4, 1, "A and B side by side", [both, card])
    g.place(5, 0, "Scores of A and B", [prev])


WORKFLOWS = {
    "critique_image": critique_image,
    "t2i_one_refine_step": t2i_one_refine_step,
    "simple_loop_early_stop": simple_loop,
    "graph_loop_flux_t2i": graph_loop_flux,
    "graph_loop_qwen_image_edit": graph_loop_qwen_edit,
    "best_of_n": best_of_n,
    "pairwise_ab": pairwise_ab,
    "simple_loop_remote": lambda g: simple_loop(g, remote=True),
}


def build(defs: dict) -> dict[str, dict]:
    """{file stem: workflow dict} for every workflow."""
    out = {}
    for stem, fn in WORKFLOWS.items():
        g = Graph(defs)
        fn(g)
        # the frontend's workflow schema wants a UUID string id (null makes a dropped file fail to load);
        # derived from the name so rebuilding gives the same file
        out[stem] = {"id": str(uuid.uuid5(WORKFLOW_NS, stem))} | g.to_json(FRONTEND_VERSION)
    return out


def main() -> int:
    defs = load_core_both() | pack_defs()
    folder = ROOT / "workflows"
    folder.mkdir(exist_ok=True)
    for stem, wf in build(defs).items():
        (folder / f"{stem}.json").write_text(json.dumps(wf, indent=2) + "\n")
        THUMBNAILS[stem](folder / f"{stem}.jpg")
        print(stem, len(wf["nodes"]), "nodes", len(wf["links"]), "links")
    (ROOT / "subgraphs").mkdir(exist_ok=True)
    for stem, bp in build_subgraphs.build(defs, FRONTEND_VERSION).items():
        (ROOT / "subgraphs" / f"{stem}.json").write_text(json.dumps(bp, indent=2) + "\n")
        print("subgraphs/" + stem, len(bp["definitions"]["subgraphs"][0]["nodes"]), "nodes inside")
    return 0


if __name__ == "__main__":
    sys.exit(main())
