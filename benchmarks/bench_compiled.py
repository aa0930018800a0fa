#!/usr/bin/env python3
"""CPU benchmark of compiled decoding (speed="compiled") against the standard path, tiny Qwen3-VL.

    python benchmarks/bench_compiled.py [--new-tokens 64] [--reps 3] [--json OUT] [--warm-cache] [--skip-hf-static]

On the tiny random Qwen3-VL of tests/tiny_critic.py (CPU, fp32, torch's C++ compiler backend) it measures:
  (a) first-call time of a compiled shape (compiling included) at batch 1 and batch 4, and the compile
      seconds the decoder reports; with a fresh, empty inductor cache unless --warm-cache;
  (b) steady-state seconds per decode step, standard (transformers generate) vs compiled, at batch 1
      and 4: (time for N new tokens - time for 1 token) / (N - 1), fixed length (min_new_tokens = N),
      greedy, medians of --reps, process CPU seconds with one torch thread (work, not wall time, so
      other jobs on the machine matter less), and whether both paths gave the same text;
  (c) graphs compiled over 20 mixed critiques (prompts, image sizes 256-2048 px, batches 1/3/4) after
      warm-up: dynamo's counter, for our decoder and for transformers' own static cache + compile
      (cache_implementation="static" with a CompileConfig that allows the CPU), which is what the
      compiled path was chosen against.
A tiny model makes the per-step figures a measure of per-token overhead (Python, kernel launches),
which is what compiling removes; an 8B model on a GPU is bound by memory bandwidth instead (see
benchmarks/gpu_bench.py).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

MIXED_SIDES = [256, 512, 1024, 2048, 300, 777]
MIXED_PROMPTS = ["a cat", "a red cube on a wooden table", "OPEN sign over a shop door at night, neon", "a dog",
                 "two people shaking hands in a sunny park"]
MIXED_BATCHES = [1, 3, 4, 1, 4, 3, 1, 3]  # 20 critiques


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--warm-cache", action="store_true", help="reuse torch's inductor cache (default: a fresh one)")
    ap.add_argument("--skip-hf-static", action="store_true", help="skip transformers' static-cache comparison")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tmp = tempfile.TemporaryDirectory(prefix="rr-bench-compiled-")
    if not args.warm_cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp.name) / "inductor")  # before torch is imported

    import torch
    from PIL import Image

    torch.set_num_threads(1)
    from rationalrewards.models.backends.base import GenerationSettings
    from rationalrewards.models.backends.compiled import graphs_compiled
    from rationalrewards.models.backends.local import LocalCritic
    from tiny_critic import build_tiny_critic

    folder = build_tiny_critic(Path(tmp.name) / "tiny-critic")
    std = LocalCritic.from_pretrained(folder, device="cpu", speed="standard", cache_size=0)
    fast = LocalCritic.from_pretrained(folder, device="cpu", speed="compiled", cache_size=0)

    def picture(side, seed=0):
        gg = torch.Generator().manual_seed(seed)
        return Image.fromarray((torch.rand(side, side, 3, generator=gg) * 255).byte().numpy())

    pics = [picture(512, i) for i in range(4)]
    prompt = "a red cube on a wooden table, soft window light"
    res = {"machine": f"{os.cpu_count()}-core CPU, no GPU", "torch": torch.__version__,
           "transformers": __import__("transformers").__version__, "new_tokens": args.new_tokens,
           "reps": args.reps, "image": "512x512", "inductor_cache": "warm" if args.warm_cache else "fresh (empty)"}

    def run(critic, n_new, images, batch, clock=time.process_time):
        critic.batch_size = batch
        critic.generate_kwargs = {**critic.generate_kwargs, "min_new_tokens": n_new}
        t = clock()
        out = critic.critique(images, prompt, settings=GenerationSettings(max_new_tokens=n_new, greedy=True))
        return clock() - t, [c.raw for c in out]

    # (a) first calls: compiling included (wall clock: the C++ compiler runs in other processes)
    for batch in (1, 4):
        wall, _ = run(fast, args.new_tokens, pics[:batch], batch, clock=time.perf_counter)
        res[f"compiled_first_call_batch{batch}_s"] = round(wall, 2)
    res["compile_s_per_shape"] = {f"batch{b}x{n}": s for (b, n), s in fast.decoder.shapes.items()}

    # (b) steady state per decode step
    same = []
    for batch in (1, 4):
        for name, critic in (("standard", std), ("compiled", fast)):
            run(critic, args.new_tokens, pics[:batch], batch)  # warm
            full, one = [], []
            for _ in range(args.reps):
                t_full, texts = run(critic, args.new_tokens, pics[:batch], batch)
                full.append(t_full)
                one.append(run(critic, 1, pics[:batch], batch)[0])
            step = (statistics.median(full) - statistics.median(one)) / (args.new_tokens - 1)
            res[f"{name}_batch{batch}_ms_per_step"] = round(1000 * step, 3)
            res[f"{name}_batch{batch}_tokens_per_cpu_s"] = round(batch / step, 1)
            res.setdefault("_texts", {})[(name, batch)] = texts
        same.append(res["_texts"][("standard", batch)] == res["_texts"][("compiled", batch)])
        res[f"speedup_batch{batch}"] = round(res[f"standard_batch{batch}_ms_per_step"]
                                             / res[f"compiled_batch{batch}_ms_per_step"], 2)
    del res["_texts"]
    res["greedy_equal_standard"] = same

    # (c) graphs compiled over 20 mixed critiques after warm-up
    def mixed(critic, n_new=16):
        before, k = graphs_compiled(), 0
        t = time.perf_counter()
        for batch in MIXED_BATCHES:
            critic.batch_size = batch
            critic.generate_kwargs = {k2: v for k2, v in critic.generate_kwargs.items() if k2 != "min_new_tokens"}
            images = [picture(MIXED_SIDES[(k + j) % len(MIXED_SIDES)], k + j) for j in range(batch)]
            prompts = [MIXED_PROMPTS[(k + j) % len(MIXED_PROMPTS)] for j in range(batch)]
            critic.critique(images, prompts, settings=GenerationSettings(max_new_tokens=n_new, greedy=True))
            k += batch
        return graphs_compiled() - before, round(time.perf_counter() - t, 1)

    res["compiled_graphs_over_20_mixed_after_warmup"], res["compiled_20_mixed_wall_s"] = mixed(fast)
    res["compiled_recompiles_counter"] = fast.decoder.recompiles
    res["compiled_shapes"] = sorted(f"batch{b}x{n}" for b, n in fast.decoder.shapes)

    if not args.skip_hf_static:
        from transformers import CompileConfig

        cc = CompileConfig(fullgraph=False)
        cc._compile_all_devices = True  # transformers compiles only on GPUs unless told
        hf = LocalCritic.from_pretrained(folder, device="cpu", speed="standard", cache_size=0)
        hf.generate_kwargs = {"cache_implementation": "static", "compile_config": cc}
        before = graphs_compiled()
        t = time.perf_counter()
        run(hf, args.new_tokens, pics[:1], 1, clock=time.perf_counter)
        res["hf_static_first_call_batch1_s"] = round(time.perf_counter() - t, 2)
        hf.generate_kwargs = {"cache_implementation": "static", "compile_config": cc}
        full, one = [], []
        for _ in range(args.reps):
            full.append(run(hf, args.new_tokens, pics[:1], 1)[0])
            one.append(run(hf, 1, pics[:1], 1)[0])
        res["hf_static_batch1_ms_per_step"] = round(1000 * (statistics.median(full) - statistics.median(one))
                                                     / (args.new_tokens - 1), 3)
        res["hf_static_graphs_warmup"] = graphs_compiled() - before
        hf.generate_kwargs = {"cache_implementation": "static", "compile_config": cc}
        res["hf_static_graphs_over_20_mixed"], res["hf_static_20_mixed_wall_s"] = mixed(hf)
        hf.close()
    print(json.dumps(res, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
