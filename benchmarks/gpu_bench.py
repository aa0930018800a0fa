#!/usr/bin/env python3
"""GPU benchmark of the in-process critic (LocalCritic) with the real RationalRewards-8B, or a stand-in.

    python benchmarks/gpu_bench.py [--critic DIR] [--batches 1,4,16] [--new-tokens 128] [--reps 2]
                                   [--no-study] [--variants bf16-sdpa,8bit,4bit,bf16-flash,bf16-static]
                                   [--json OUT] [--dry-run]

By default it runs the speed study (benchmarks/gpu_speed.py; about 8 minutes on an H100/H200-class GPU,
stand-in build included): bf16 standard vs compiled decoding at batch 1, 4 and 16 (first call with
compiling, steady per-step time, peak VRAM, share of equal greedy answers), graphs compiled over 20
mixed critiques after warm-up, the eviction case (weights to the CPU and back: same answer, no
recompile), and fp8 weights (torchao; skipped with the reason on GPUs without fp8 or without torchao).

--variants adds the older per-variant table: for every variant (dtype / quantization / attention /
transformers' static cache + torch.compile) it loads the critic
through LocalCritic.from_pretrained and measures: load seconds; peak VRAM after loading and during a
critique; prefill seconds and decode tokens/s; seconds per 1024x1024 critique (the pipeline downscales it
to the 802,816-pixel budget, 896x896 = 784 image tokens) with a fixed answer length (greedy,
min_new_tokens = max_new_tokens); seconds per image for a batch of 4.

Without --critic (or if the folder is missing) it builds a RANDOM-WEIGHT stand-in with Qwen3-VL-8B's
exact shapes (QWEN3_VL_8B below, from Qwen/Qwen3-VL-8B-Instruct's config.json) directly on the GPU, saves
it as safetensors to a temp folder (~17.5 GB) and benchmarks that through the same loading path. Speed and
memory match the real model; its text is noise, and its tokenizer is the small test tokenizer
(tests/tiny_critic.py), so the request is ~1,400 prompt tokens instead of ~1,000 with Qwen's tokenizer.

--dry-run (no GPU needed): builds the stand-in on the meta device (no memory), prints its parameter count
and the variant plan with what this machine would skip and why.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

# Qwen/Qwen3-VL-8B-Instruct config.json (the shapes RationalRewards-8B shares).
QWEN3_VL_8B = {
    "text_config": dict(
        vocab_size=151936, hidden_size=4096, intermediate_size=12288, num_hidden_layers=36,
        num_attention_heads=32, num_key_value_heads=8, head_dim=128, hidden_act="silu",
        max_position_embeddings=262144, rms_norm_eps=1e-6, attention_bias=False, use_cache=True,
        initializer_range=0.02, bos_token_id=151643, eos_token_id=151645,
        rope_parameters={"rope_type": "default", "rope_theta": 5000000.0, "mrope_section": [24, 20, 20],
                         "mrope_interleaved": True},
        rope_scaling={"rope_type": "default", "mrope_section": [24, 20, 20], "mrope_interleaved": True},
        rope_theta=5000000.0, dtype="bfloat16",
    ),
    "vision_config": dict(
        depth=27, hidden_size=1152, intermediate_size=4304, num_heads=16, in_channels=3, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=4096, num_position_embeddings=2304,
        deepstack_visual_indexes=[8, 16, 24], hidden_act="gelu_pytorch_tanh", initializer_range=0.02,
    ),
    "tie_word_embeddings": False,
}

VARIANTS = {
    "bf16-sdpa": dict(dtype="auto", attention="sdpa", quantization="none"),
    "bf16-flash": dict(dtype="auto", attention="flash_attention_2", quantization="none"),
    "8bit": dict(dtype="auto", attention="sdpa", quantization="8bit"),
    "4bit": dict(dtype="auto", attention="sdpa", quantization="4bit"),
    "bf16-static": dict(dtype="auto", attention="sdpa", quantization="none", static=True),
    "bf16-compiled": dict(dtype="auto", attention="sdpa", quantization="none", speed="compiled"),
    "fp8-compiled": dict(dtype="auto", attention="sdpa", quantization="fp8", speed="compiled"),
}


def standin_config(tok=None):
    """Qwen3VLConfig with the 8B shapes; special token ids from ``tok`` (the test tokenizer) when given."""
    from transformers import Qwen3VLConfig

    ids = {"image": 151655, "video": 151656, "vs": 151652, "ve": 151653}
    text = dict(QWEN3_VL_8B["text_config"])
    if tok is not None:
        ids = {k: tok.convert_tokens_to_ids(t) for k, t in
               (("image", "<|image_pad|>"), ("video", "<|video_pad|>"), ("vs", "<|vision_start|>"),
                ("ve", "<|vision_end|>"))}
        text.update(bos_token_id=tok.convert_tokens_to_ids("<|endoftext|>"),
                    eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"),
                    pad_token_id=tok.convert_tokens_to_ids("<|endoftext|>"))
    cfg = Qwen3VLConfig(text_config=text, vision_config=dict(QWEN3_VL_8B["vision_config"]),
                        image_token_id=ids["image"], video_token_id=ids["video"], vision_start_token_id=ids["vs"],
                        vision_end_token_id=ids["ve"], tie_word_embeddings=False)
    cfg.architectures = ["Qwen3VLForConditionalGeneration"]
    return cfg


def build_standin(out_dir: Path) -> Path:
    """Random 8B weights made on the GPU (no download), saved with the test tokenizer/processor."""
    import torch
    from transformers import GenerationConfig, Qwen3VLForConditionalGeneration

    from tiny_critic import build_processor, build_tokenizer

    tok = build_tokenizer()
    cfg = standin_config(tok)
    t0 = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    model.generation_config = GenerationConfig(eos_token_id=eos, pad_token_id=eos[1], do_sample=True, top_k=20,
                                               top_p=0.8, temperature=0.7)
    model.save_pretrained(out_dir, safe_serialization=True, max_shard_size="5GB")
    build_processor(tok).save_pretrained(out_dir)
    print(f"stand-in: {sum(p.numel() for p in model.parameters()) / 1e9:.2f} B params, built and saved in "
          f"{time.perf_counter() - t0:.0f} s -> {out_dir}", flush=True)
    del model
    gc.collect()
    torch.cuda.empty_cache()
    return out_dir


def check_variant(name: str) -> str | None:
    """None when this machine can run the variant, else why not (the OptionError's message)."""
    from rationalrewards.models.backends.local_options import resolve_options
    from rationalrewards.models.errors import OptionError

    v = VARIANTS[name]
    try:
        o = resolve_options("cuda", v["dtype"], v["attention"], v["quantization"], v.get("speed", "standard"))
    except OptionError as e:
        return str(e)
    return o.speed_note


def run_variant(folder: Path, name: str, new_tokens: int, reps: int) -> dict:
    import torch
    from PIL import Image

    from rationalrewards.models.backends.base import GenerationSettings
    from rationalrewards.models.backends.local import LocalCritic

    v = VARIANTS[name]
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    critic = LocalCritic.from_pretrained(folder, dtype=v["dtype"], attention=v["attention"],
                                         quantization=v["quantization"], speed=v.get("speed", "standard"),
                                         device="cuda", cache_size=0)
    res = {"variant": name, "load_s": round(time.perf_counter() - t0, 1),
           "vram_after_load_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2),
           "model_gb": round(critic.model_size_bytes() / 2**30, 2), "options": critic.options.describe()}
    if v.get("static"):
        critic.generate_kwargs = {"cache_implementation": "static"}  # transformers compiles the decode step
    g = torch.Generator().manual_seed(0)
    pics = [Image.fromarray((torch.rand(1024, 1024, 3, generator=g) * 255).byte().numpy()) for _ in range(4)]
    prompt = "a red cube on a wooden table, soft window light"

    def timed(n_new, images, batch_size=1):
        critic.batch_size = batch_size
        critic.generate_kwargs = {**critic.generate_kwargs, "min_new_tokens": n_new}
        s = GenerationSettings(max_new_tokens=n_new, greedy=True)
        torch.cuda.synchronize()
        t = time.perf_counter()
        critic.critique(images, prompt, settings=s)
        torch.cuda.synchronize()
        return time.perf_counter() - t

    try:
        timed(1, pics[:1])  # warm-up (and compile, for the static variant: once per cache length)
        timed(new_tokens, pics[:1])
        torch.cuda.reset_peak_memory_stats()
        prefill = statistics.median(timed(1, pics[:1]) for _ in range(reps))
        full = statistics.median(timed(new_tokens, pics[:1]) for _ in range(reps))
        res.update(prefill_s=round(prefill, 3), critique_1024_s=round(full, 2),
                   decode_tokens_per_s=round((new_tokens - 1) / max(full - prefill, 1e-9), 1),
                   vram_peak_critique_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2))
        b4 = timed(new_tokens, pics, batch_size=4)
        res.update(batch4_s_per_image=round(b4 / 4, 2), batch4_tokens_per_s=round(4 * new_tokens / b4, 1),
                   vram_peak_batch4_gb=round(torch.cuda.max_memory_allocated() / 2**30, 2))
    except Exception as e:  # one failing variant (e.g. compile) must not hide the others
        res["error"] = f"{type(e).__name__}: {e}"[:500]
    finally:
        critic.close()
        del critic
        gc.collect()
        torch.cuda.empty_cache()
    return res


def dry_run(variants: list[str]) -> int:
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from tiny_critic import build_tokenizer

    cfg = standin_config(build_tokenizer())
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration._from_config(cfg, dtype=torch.bfloat16)
    n = sum(p.numel() for p in model.parameters())
    vis = sum(p.numel() for p in model.model.visual.parameters())
    print(f"stand-in on meta: {n / 1e9:.3f} B parameters ({n * 2 / 2**30:.1f} GiB in bf16), "
          f"vision tower {vis / 1e6:.0f} M (kept 16-bit when quantizing)")
    print(f"CUDA available: {torch.cuda.is_available()}")
    for name in variants:
        why = check_variant(name) if torch.cuda.is_available() else "no CUDA device on this machine"
        print(f"  {name:12s} {VARIANTS[name]}: {'would run' if why is None else 'skipped: ' + why}")
    return 0


def cpu_smoke(batches: list[int], json_out: str | None) -> int:
    """The speed study end to end on the tiny critic, on the CPU: every code path of the GPU run but the
    CUDA calls, so a GPU's minutes are not spent finding a bug in this script."""
    import gpu_speed
    from tiny_critic import build_tiny_critic

    gpu_speed.DEVICE["name"] = "cpu"
    with tempfile.TemporaryDirectory(prefix="rr-smoke-") as tmp:
        folder = build_tiny_critic(Path(tmp) / "tiny-critic")
        res = {"note": "CPU smoke run of the GPU study's code: figures mean nothing",
               "speed_study": gpu_speed.speed_study(folder, batches, 8, 1),
               "fp8": gpu_speed.fp8_study(folder, 8, 1)}
    print(json.dumps(res, indent=1))
    if json_out:
        Path(json_out).write_text(json.dumps(res, indent=1))
    bad = [k for k, v in res["speed_study"]["eviction"].items() if k == "same_answer" and not v]
    return 1 if bad or res["speed_study"]["decoder_broken"] else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--critic", help="RationalRewards folder (default: env RATIONALREWARDS_CRITIC, else a stand-in)")
    ap.add_argument("--variants", default="",
                    help=f"also the per-variant table, comma-separated, from {', '.join(VARIANTS)} (default: none)")
    ap.add_argument("--batches", default="1,4,16", help="batch sizes of the standard-vs-compiled study")
    ap.add_argument("--no-study", action="store_true", help="skip the speed study (only --variants)")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens timed per critique (fixed)")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep-standin", help="build/reuse the stand-in in this folder instead of a temp dir")
    ap.add_argument("--dry-run", action="store_true", help="plan only; needs no GPU")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="run the speed study's code on the CPU with the tiny test critic (checks the script, "
                         "needs no GPU; its figures mean nothing)")
    args = ap.parse_args()
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown variants {bad}; choose from {', '.join(VARIANTS)}")
    try:
        batches = [int(b) for b in args.batches.split(",") if b.strip()]
    except ValueError:
        ap.error(f"--batches {args.batches!r}: give numbers such as 1,4,16")
    if any(not 1 <= b <= 16 for b in batches):
        ap.error("--batches: each between 1 and 16 (the compiled batch buckets)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.cpu_smoke:
        return cpu_smoke(batches, args.json)
    if args.dry_run:
        from gpu_speed import plan

        if not args.no_study:
            print("speed study:\n  " + "\n  ".join(plan(batches, args.new_tokens)))
        return dry_run(variants)

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: run with --dry-run, or on a GPU machine", file=sys.stderr)
        return 2
    tmp = None
    folder = Path(args.critic or os.environ.get("RATIONALREWARDS_CRITIC", "") or "/nonexistent")
    real = folder.is_dir()
    if not real:
        if args.keep_standin:
            folder = Path(args.keep_standin)
        else:
            tmp = tempfile.TemporaryDirectory(prefix="rr-standin-")
            folder = Path(tmp.name)
        if not (folder / "config.json").exists():
            build_standin(folder)
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "transformers": __import__("transformers").__version__,
               "model": str(folder) if real else "random-weight Qwen3-VL-8B stand-in",
               "date": time.strftime("%Y-%m-%d"), "new_tokens": args.new_tokens, "variants": []}
    def save() -> None:  # after every part: a failure or the time limit later keeps what was measured
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))

    def part(name: str, fn, *fn_args) -> Any:
        """One part of the benchmark; an error is recorded (with its traceback's end) instead of ending the run."""
        t0 = time.perf_counter()
        try:
            out = fn(*fn_args)
        except Exception as e:  # noqa: BLE001 - a benchmark reports, it does not stop
            import traceback

            out = next((a for a in fn_args if isinstance(a, dict)), {})  # what the part had measured
            out.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
            print(f"{name} failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        gc.collect()  # (outside the except block: its traceback held the part's models)
        torch.cuda.empty_cache()
        if isinstance(out, dict):
            out.setdefault("part_wall_s", round(time.perf_counter() - t0, 1))
        return out

    save()
    if not args.no_study:
        from gpu_speed import fp8_study, speed_study

        t0 = time.perf_counter()
        results["speed_study"] = {}
        results["speed_study"] = part("speed study", speed_study, folder, batches, args.new_tokens, args.reps,
                                      results["speed_study"], save)
        save()
        results["fp8"] = part("fp8", fp8_study, folder, args.new_tokens, args.reps)
        print(json.dumps(results["fp8"]), flush=True)
        results["study_wall_s"] = round(time.perf_counter() - t0, 1)
        save()
    for name in variants:
        why = check_variant(name)
        if why:
            results["variants"].append({"variant": name, "skipped": why})
        else:
            results["variants"].append(part(name, run_variant, folder, name, args.new_tokens, args.reps))
        print(json.dumps(results["variants"][-1]), flush=True)
        save()
    print(json.dumps(results, indent=1))
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())
