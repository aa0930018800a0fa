#!/usr/bin/env python3
"""CPU benchmark of the in-process critic with the tiny random Qwen3-VL (tests/tiny_critic.py).

    python benchmarks/bench_local.py [--reps 5] [--new-tokens 64] [--size 512] [--critic DIR] [--json OUT]

Measures, on the same inputs, greedy decoding with a fixed answer length (min_new_tokens = max_new_tokens,
so both sides generate exactly the same number of tokens):
  (a) LocalCritic.critique (image intake, request building, cache key, batching, stopping criteria,
      decoding, parsing; cache off) against a bare ``processor`` + ``model.generate`` + ``decode``;
      also with streaming callbacks (on_text/on_tokens/is_interrupted) on;
  (b) a batch of 4 images in one generate call (batch_size 4) against 4 single calls (batch_size 1);
  (c) peak resident memory (ru_maxrss) after import, after loading, after the runs.
Runs are interleaved and the median is reported. With --threads 1 (default) the clock is the process's CPU
time, which stays meaningful when other jobs share the cores; --threads N measures wall time.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--size", type=int, default=512, help="image side in pixels (square)")
    ap.add_argument("--critic", help="critic folder (default: build the tiny one in a temp dir)")
    ap.add_argument("--json", help="write the figures here as JSON")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: CPU seconds then measure work, even on a shared machine)")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from PIL import Image

    torch.set_num_threads(args.threads)

    from rationalrewards.models.backends.base import Callbacks, GenerationSettings
    from rationalrewards.models.backends.local import LocalCritic
    from rationalrewards.models.format.requests import build_request

    rss = {"after_import_mb": peak_rss_mb()}
    tmp = tempfile.TemporaryDirectory()
    folder = args.critic
    if folder is None:
        from tiny_critic import build_tiny_critic

        folder = build_tiny_critic(Path(tmp.name) / "tiny-critic")
    torch.manual_seed(0)
    critic = LocalCritic.from_pretrained(folder, device="cpu", cache_size=0)
    rss["after_load_mb"] = peak_rss_mb()
    n_new = args.new_tokens
    critic.generate_kwargs = {"min_new_tokens": n_new}
    settings = GenerationSettings(max_new_tokens=n_new, greedy=True)
    g = torch.Generator().manual_seed(1)
    pils = [Image.fromarray((torch.rand(args.size, args.size, 3, generator=g) * 255).byte().numpy()) for _ in range(4)]
    prompt = "a red cube on a wooden table, soft window light"
    model, processor = critic.model, critic.processor

    def bare(pil):
        """What a user would write by hand: the same request messages, the processor, generate, decode."""
        msgs = build_request("t2i", prompt, [pil]).messages
        text = processor.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        enc = processor(text=[text], images=[pil], return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                                 temperature=1.0, top_p=1.0, top_k=50)
        return processor.tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

    def backend(pil, callbacks=None):
        return critic.critique(pil, prompt, settings=settings, callbacks=callbacks)[0].raw

    streamed = Callbacks(on_text=lambda i, t: None, on_tokens=lambda d, t: None, is_interrupted=lambda: False)

    clock = time.process_time if args.threads == 1 else time.perf_counter

    def timed(fn):
        t0 = clock()
        fn()
        return clock() - t0

    # Also time model.generate itself, so the work around it (the backend's own cost) is measured apart
    # from the model's, which dominates and carries most of the noise of a shared machine ...
    inner = {"s": 0.0}
    real_generate = model.generate

    def timed_generate(*a, **k):
        t0 = clock()
        try:
            return real_generate(*a, **k)
        finally:
            inner["s"] += clock() - t0

    model.generate = timed_generate
    # ... except the backend's per-token hook (interrupt poll, progress, streaming), which runs inside it
    from rationalrewards.models.backends import local as local_mod

    real_watch = local_mod._Watch.__call__

    def timed_watch(self, *a, **k):
        t0 = clock()
        try:
            return real_watch(self, *a, **k)
        finally:
            inner["s"] -= clock() - t0  # counted as the backend's, not the model's

    local_mod._Watch.__call__ = timed_watch

    def timed_split(fn):
        inner["s"] = 0.0
        total = timed(fn)
        return total, total - inner["s"]

    # warm-up (first calls allocate and initialise kernels)
    assert bare(pils[0]) == backend(pils[0]), "backend and bare generate disagree under greedy decoding"
    runs = {"bare": lambda pil: bare(pil), "backend": lambda pil: backend(pil),
            "backend_streaming": lambda pil: backend(pil, streamed)}
    times = {k: [] for k in runs}
    outside = {k: [] for k in runs}
    order = list(runs)
    for rep in range(args.reps):
        for pil in pils[:2]:
            for k in order:  # rotate the order: no path always runs first or last
                total, out = timed_split(lambda: runs[k](pil))
                times[k].append(total)
                outside[k].append(out)
            order = order[1:] + order[:1]
    med = {k: statistics.median(v) for k, v in times.items()}
    omed = {k: statistics.median(v) for k, v in outside.items()}

    batch = {"batch4": [], "single4": []}
    for _ in range(max(2, args.reps // 2)):
        critic.batch_size = 4
        batch["batch4"].append(timed(lambda: critic.critique(pils, prompt, settings=settings)))
        critic.batch_size = 1
        batch["single4"].append(timed(lambda: critic.critique(pils, prompt, settings=settings)))
    bmed = {k: statistics.median(v) for k, v in batch.items()}
    rss["after_runs_mb"] = peak_rss_mb()

    enc = critic.encode([build_request("t2i", prompt, [pils[0]]).messages])
    fig = {
        "machine": f"{os.cpu_count()}-core CPU, no GPU, load average {os.getloadavg()[0]:.1f} at the end",
        "torch": torch.__version__, "transformers": __import__("transformers").__version__,
        "prompt_tokens": int(enc["input_ids"].shape[1]), "new_tokens": n_new, "image": f"{args.size}x{args.size}",
        "reps": args.reps, "threads": args.threads,
        "clock": "process CPU seconds" if args.threads == 1 else "wall seconds",
        "bare_generate_s": round(med["bare"], 4), "backend_critique_s": round(med["backend"], 4),
        "backend_overhead_pct": round(100 * (med["backend"] / med["bare"] - 1), 2),
        "outside_generate_s": {k: round(v, 4) for k, v in omed.items()},
        "backend_own_cost_pct": round(100 * (omed["backend"] - omed["bare"]) / med["bare"], 2),
        "streaming_own_cost_pct": round(100 * (omed["backend_streaming"] - omed["bare"]) / med["bare"], 2),
        "backend_streaming_s": round(med["backend_streaming"], 4),
        "streaming_overhead_pct": round(100 * (med["backend_streaming"] / med["bare"] - 1), 2),
        "batch4_s": round(bmed["batch4"], 4), "single4_s": round(bmed["single4"], 4),
        "batch_speedup": round(bmed["single4"] / bmed["batch4"], 2),
        "peak_rss": {k: round(v, 1) for k, v in rss.items()},
        "model_params": sum(p.numel() for p in model.parameters()),
    }
    print(json.dumps(fig, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=1))
    critic.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
