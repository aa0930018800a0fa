"""The speed study of benchmarks/gpu_bench.py: standard vs compiled decoding, fp8, recompiles, eviction.

Every critique here runs with the node's defaults (max_new_tokens 2048, greedy) and is cut after a fixed
number of tokens by the interrupt callback (min_new_tokens keeps EOS away until then), so the compiled
path uses the cache length a real critique gets (the 4096-token bucket for a ~2,000-token prompt) while
the benchmark decodes only as many tokens as it times. Per-step time = (time for N tokens - time for
1 token) / (N - 1), medians; the first call of a batch size is timed apart (compiling included).
"""
from __future__ import annotations

import gc
import statistics
import time
from typing import Any

PROMPT = "a red cube on a wooden table, soft window light"
MIXED_SIDES = [256, 512, 1024, 2048, 300, 777]
MIXED_PROMPTS = ["a cat", "a red cube on a wooden table", "OPEN sign over a shop door at night, neon", "a dog",
                 "two people shaking hands in a sunny park"]
MIXED_BATCHES = [1, 3, 4, 1, 4, 3, 1, 3]  # 20 critiques: batch buckets 1 and 4 only
#: "cuda" for the benchmark; "cpu" only for --cpu-smoke (checks this script's logic, its figures mean nothing).
DEVICE = {"name": "cuda"}


def _sync() -> None:
    import torch

    if DEVICE["name"] == "cuda":
        torch.cuda.synchronize()


def _reset_peak() -> None:
    import torch

    if DEVICE["name"] == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def plan(batches: list[int], new_tokens: int) -> list[str]:
    """What the study does, for --dry-run."""
    return [f"bf16 standard vs compiled at batch {', '.join(map(str, batches))}: first call (compiling included) and "
            f"steady per-step time over {new_tokens} tokens, peak VRAM, share of equal greedy answers",
            "compiled: graphs compiled over 20 mixed critiques (256-2048 px, batches 1/3/4) after warm-up",
            "compiled: critique, move the weights to the CPU and back (a ComfyUI eviction), critique again: same "
            "answer, graphs compiled, CUDA-graph skips, first-call time after the reload",
            "fp8 (torchao, compute capability >= 8.9): load VRAM, peak VRAM of one 1024 px critique, per-step time "
            "compiled and standard at batch 1"]


def _pictures(n: int, side: int = 1024, seed: int = 0):
    import torch
    from PIL import Image

    g = torch.Generator().manual_seed(seed)
    return [Image.fromarray((torch.rand(side, side, 3, generator=g) * 255).byte().numpy()) for _ in range(n)]


def _critique(critic, images, prompts, n_tokens: int) -> tuple[float, list[str]]:
    """Seconds for a critique of ``images`` cut after ``n_tokens`` tokens, and the streamed texts."""
    from rationalrewards.models.backends.base import Callbacks, GenerationSettings
    from rationalrewards.models.errors import CritiqueInterrupted

    steps, texts = {"n": 0}, {}
    cb = Callbacks(on_tokens=lambda d, t: steps.__setitem__("n", d), on_text=lambda i, t: texts.__setitem__(i, t),
                   is_interrupted=lambda: steps["n"] >= n_tokens)
    critic.generate_kwargs = {"min_new_tokens": n_tokens}
    critic.cache.clear()
    _sync()
    t = time.perf_counter()
    try:
        critic.critique(images, prompts, settings=GenerationSettings(max_new_tokens=2048, greedy=True), callbacks=cb)
    except CritiqueInterrupted:
        pass
    _sync()
    return time.perf_counter() - t, [texts.get(i, "") for i in range(len(images))]


def _per_step(critic, images, n_tokens: int, reps: int) -> tuple[float, list[str]]:
    full, one, texts = [], [], []
    for _ in range(reps):
        t, texts = _critique(critic, images, PROMPT, n_tokens)
        full.append(t)
        one.append(_critique(critic, images, PROMPT, 1)[0])
    return (statistics.median(full) - statistics.median(one)) / (n_tokens - 1), texts


def _peak_gb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2 ** 30, 2) if DEVICE["name"] == "cuda" else None


def _reserved_gb() -> float | None:
    import torch

    return round(torch.cuda.memory_reserved() / 2 ** 30, 2) if DEVICE["name"] == "cuda" else None


def _twin(critic, speed: str):
    """The same loaded model behind a critic of the other speed (no second 17 GB load)."""
    from dataclasses import replace

    from rationalrewards.models.backends.local import LocalCritic

    return LocalCritic(critic.model, critic.processor, path=critic.path, options=replace(critic.options, speed=speed),
                       memory=critic.memory, batch_size=critic.batch_size, cache_size=0)


def speed_study(folder, batches: list[int], new_tokens: int, reps: int, res: dict | None = None,
                progress=None) -> dict[str, Any]:
    """bf16: standard vs compiled per batch size, mixed-critique recompiles, the eviction case. ``res`` is
    filled as the study goes and ``progress()`` called after each part of it (what was measured survives an
    error or the time limit later in the study)."""
    progress = progress or (lambda: None)
    from rationalrewards.models.backends.compiled import graphs_compiled
    from rationalrewards.models.backends.local import LocalCritic

    res = {} if res is None else res
    res.update({"new_tokens_timed": new_tokens, "reps": reps, "max_new_tokens": 2048, "image": "1024x1024"})
    t0 = time.perf_counter()
    std = LocalCritic.from_pretrained(folder, device=DEVICE["name"], speed="standard", cache_size=0)
    res["load_s"] = round(time.perf_counter() - t0, 1)
    res["vram_after_load_gb"] = _peak_gb()
    fast = _twin(std, "compiled")
    pics = _pictures(max(batches))
    equal, rows = 0, 0
    for b in batches:
        fast.batch_size = std.batch_size = b
        row: dict[str, Any] = {"batch": b}
        texts = {}
        for name, critic in (("compiled", fast), ("standard", std)):
            _reset_peak()
            first, _ = _critique(critic, pics[:b], PROMPT, new_tokens)  # compiled: compiling included
            step, texts[name] = _per_step(critic, pics[:b], new_tokens, reps)
            row.update({f"{name}_first_call_s": round(first, 1), f"{name}_ms_per_step": round(1000 * step, 2),
                        f"{name}_tokens_per_s": round(b / step, 1), f"{name}_peak_vram_gb": _peak_gb()})
        row["speedup"] = round(row["standard_ms_per_step"] / row["compiled_ms_per_step"], 2)
        row["greedy_equal"] = sum(a == s for a, s in zip(texts["compiled"], texts["standard"]))
        equal, rows = equal + row["greedy_equal"], rows + b
        res.setdefault("batches", []).append(row)
        print(row, flush=True)
        progress()
    res["greedy_equal_share"] = f"{equal}/{rows}"
    res["compile_s_per_shape"] = {f"batch{b}x{n}": s for (b, n), s in fast.decoder.shapes.items()}

    from torch._dynamo.utils import counters

    # static caches are kept per shape, so CUDA graphs should not re-record from critique to critique: count
    # the cache addresses the batches decode with (one per shape is the goal), the CUDA-graph skips, and
    # watch the reserved memory (it must not grow from critique to critique)
    before, skips, k = graphs_compiled(), counters["inductor"]["cudagraph_skips"], 0
    reserved = _reserved_gb()
    addresses = _watch_cache_addresses(fast)
    t = time.perf_counter()
    for b in MIXED_BATCHES:
        fast.batch_size = b
        images = [_pictures(1, MIXED_SIDES[(k + j) % len(MIXED_SIDES)], k + j)[0] for j in range(b)]
        _critique(fast, images, [MIXED_PROMPTS[(k + j) % len(MIXED_PROMPTS)] for j in range(b)], 16)
        k += b
    res["mixed_20_critiques"] = {"graphs_compiled": graphs_compiled() - before, "decoder_recompiles":
                                 fast.decoder.recompiles, "wall_s": round(time.perf_counter() - t, 1),
                                 "cudagraph_skips": counters["inductor"]["cudagraph_skips"] - skips,
                                 "reserved_gb_before_after": [reserved, _reserved_gb()],
                                 "cache_addresses_used": len(set(addresses)), "kept_caches": fast.decoder.kept_caches(),
                                 "shapes": sorted(f"batch{b}x{n}" for b, n in fast.decoder.shapes)}
    print(res["mixed_20_critiques"], flush=True)
    progress()
    res["eviction"] = _eviction(fast, pics[:1], new_tokens)
    print(res["eviction"], flush=True)
    progress()
    res["decoder_broken"] = fast.decoder.broken
    std.close()
    del std, fast
    gc.collect()
    _reset_peak()
    return res


def _watch_cache_addresses(fast) -> list[int]:
    """The address of the static cache each batch of ``fast`` decodes with, from now on."""
    seen: list[int] = []
    real = fast.decoder._decode

    def watched(seqs, unfinished, next_pos, keys, *rest):
        seen.append(keys[0].data_ptr())
        return real(seqs, unfinished, next_pos, keys, *rest)

    fast.decoder._decode = watched
    return seen


def _eviction(fast, images, new_tokens: int) -> dict[str, Any]:
    """What ComfyUI does to a critic it frees for a diffusion model: weights to the CPU, cache emptied, and
    back on the next use (new addresses: CUDA graphs re-record; nothing may recompile)."""
    from torch._dynamo.utils import counters

    from rationalrewards.models.backends.compiled import graphs_compiled

    fast.batch_size = 1
    _, before_texts = _critique(fast, images, PROMPT, new_tokens)
    steady, _ = _critique(fast, images, PROMPT, new_tokens)
    graphs, skips = graphs_compiled(), counters["inductor"]["cudagraph_skips"]
    t = time.perf_counter()
    fast.model.to("cpu")
    fast.decoder.drop_cache()  # what ComfyUI's ON_DETACH callback does when it unloads the critic
    _reset_peak()
    if DEVICE["name"] == "cpu":  # same device: new storage at new addresses, as after a round trip
        for p in fast.model.parameters():
            p.data = p.data.clone()
    fast.model.to(DEVICE["name"])
    _sync()
    reload_s = time.perf_counter() - t
    first, after_texts = _critique(fast, images, PROMPT, new_tokens)
    return {"same_answer": after_texts == before_texts, "graphs_compiled": graphs_compiled() - graphs,
            "cudagraph_skips": counters["inductor"]["cudagraph_skips"] - skips, "move_out_and_back_s": round(reload_s, 1),
            "steady_critique_s": round(steady, 2), "first_critique_after_reload_s": round(first, 2)}


def fp8_study(folder, new_tokens: int, reps: int) -> dict[str, Any]:
    """fp8 weights (torchao float8): memory and per-step time, compiled and standard, batch 1."""
    from rationalrewards.models.backends.local import LocalCritic
    from rationalrewards.models.backends.local_options import resolve_options
    from rationalrewards.models.errors import OptionError

    try:
        resolve_options(DEVICE["name"], quantization="fp8")
    except OptionError as e:
        return {"skipped": str(e)}
    _reset_peak()
    t0 = time.perf_counter()
    fast = LocalCritic.from_pretrained(folder, device=DEVICE["name"], quantization="fp8", speed="compiled", cache_size=0)
    res: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 1), "vram_after_load_gb": _peak_gb(),
                           "model_gb": round(fast.model_size_bytes() / 2 ** 30, 2), "speed": fast.speed}
    fast.batch_size = 1
    pics = _pictures(1)
    _reset_peak()
    res["compiled_first_call_s"] = round(_critique(fast, pics, PROMPT, new_tokens)[0], 1)
    step, fast_texts = _per_step(fast, pics, new_tokens, reps)
    res.update(compiled_ms_per_step=round(1000 * step, 2), peak_vram_1024px_critique_gb=_peak_gb())
    std = _twin(fast, "standard")
    _critique(std, pics, PROMPT, new_tokens)
    step, std_texts = _per_step(std, pics, new_tokens, reps)
    res.update(standard_ms_per_step=round(1000 * step, 2), greedy_equal=fast_texts == std_texts,
               decoder_broken=fast.decoder.broken)
    fast.close()
    del fast, std
    gc.collect()
    _reset_peak()
    return res
