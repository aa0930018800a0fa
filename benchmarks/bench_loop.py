"""The loop's own overhead, and how often the critic is loaded per loop run.

    python benchmarks/bench_loop.py [--iterations 10] [--runs 5] [--sizes 64,512]
                                    [--generate-ms 20] [--critic-ms 30] [--tiny-critic]

Stand-ins take realistic-but-small time: the generator sleeps 20 ms and returns an IMAGE tensor of
the given size; the critic is a CriticBackend whose ``_generate`` sleeps 30 ms and answers a scripted
RationalRewards critique, so image intake, request building, caching, parsing, refining and the
history all run for real. Overhead = total time - time inside generator.generate - time inside the
critic's _generate, as a fraction of the total (target: under 3%). It is split into the engine's
own part (outside generator.generate and critic.critique) and the rest, the critic's image intake
(tensor -> PIL, NaN check, hashing for the cache), request building and parsing.

``--tiny-critic`` also runs the real LocalCritic on a tiny random Qwen3-VL (tests/tiny_critic.py)
with a placement that offloads on release, and counts loads per loop run (1 = loaded once).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from rationalrewards.engine import LoopConfig, run_loop
from rationalrewards.models.backends.base import CriticBackend, Generation, GenerationSettings

ANSWER = """# User Request Analysis
The request asks for {prompt}.
# Detailed Judgement
1. Text Faithfulness:
## Justification: Most elements are present but the hat is missing and the sofa colour is off.
## Score: {tf}
2. Physical and Visual Quality:
## Justification: Plausible lighting and anatomy, minor blur at the edges.
## Score: 3.0
3. Text Rendering:
## Justification: No text is requested.
## Score: N/A
# Summary: A decent image that misses one requested element.

# User Request Refinement:
## Refinement Comments: Name the hat explicitly and its colour.
## Refined Request: {prompt}, wearing a small red hat, version {k}
"""


class SleepyGenerator:
    name = "SleepyGenerator"

    def __init__(self, size: int, seconds: float = 0.020):
        self.size, self.seconds, self.inside = size, seconds, 0.0

    def generate(self, prompt, seed):
        t = time.perf_counter()
        time.sleep(self.seconds)
        g = torch.Generator().manual_seed(seed)
        img = torch.rand((1, self.size, self.size, 3), generator=g)
        self.inside += time.perf_counter() - t
        return img


class SleepyCritic(CriticBackend):
    """Scripted answers after a 30 ms sleep; counts loads (first use) and time inside _generate."""

    def __init__(self, seconds: float = 0.030):
        super().__init__()
        self.seconds, self.inside, self.loads, self.k = seconds, 0.0, 0, 0
        self.in_critique = 0.0  # all of critique(): image intake, requests, cache, _generate, parsing
        self._loaded = False

    def critique(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return super().critique(*args, **kwargs)
        finally:
            self.in_critique += time.perf_counter() - t

    @property
    def identity(self):
        return "sleepy"

    def _generate(self, messages, settings, callbacks):
        t = time.perf_counter()
        if not self._loaded:
            self._loaded, self.loads = True, self.loads + 1
        time.sleep(self.seconds)
        out = []
        for m in messages:
            text = m[-1]["content"][0]["text"]
            prompt = text.split("User Instruction: ", 1)[1].split("\n", 1)[0]
            self.k += 1
            out.append(Generation(ANSWER.format(prompt=prompt[:60], tf=2.5, k=self.k)))
        self.inside += time.perf_counter() - t
        return out


def bench_overhead(size: int, iterations: int, runs: int, gen_s: float = 0.020, critic_s: float = 0.030) -> dict:
    fractions, per_iter, loads, engine, engine_ms = [], [], [], [], []
    for _ in range(runs):
        gen, critic = SleepyGenerator(size, gen_s), SleepyCritic(critic_s)
        t = time.perf_counter()
        r = run_loop(gen, critic, "a cat on a sofa", LoopConfig(max_iterations=iterations, rule="always"))
        total = time.perf_counter() - t
        assert r.iterations_run == iterations, r.stop_reason
        own = total - gen.inside - critic.inside
        fractions.append(own / total)
        per_iter.append(own / iterations * 1000)
        loads.append(critic.loads)
        mine = total - gen.inside - critic.in_critique  # the engine alone: step, refine, history, callbacks
        engine.append(mine / total)
        engine_ms.append(mine / iterations * 1000)
    return {"size": size, "fraction": statistics.median(fractions), "ms_per_iteration": statistics.median(per_iter),
            "engine_fraction": statistics.median(engine), "engine_ms": statistics.median(engine_ms),
            "loads": max(loads)}


def bench_tiny_critic(iterations: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_critic import build_tiny_critic

    from rationalrewards.models.backends.local import LocalCritic
    from rationalrewards.models.backends.local_options import DevicePlacement

    class CountingPlacement(DevicePlacement):
        def __init__(self):
            super().__init__("cpu")
            self.loads, self.on_device = 0, False

        def prepare(self, model):
            if not self.on_device:
                self.loads, self.on_device = self.loads + 1, True
            return super().prepare(model)

        def release(self, model):
            self.on_device = False

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_critic(Path(tmp) / "tiny")
        placement = CountingPlacement()
        critic = LocalCritic.from_pretrained(folder, device="cpu", memory=placement)
        cfg = LoopConfig(max_iterations=iterations, seed_policy="increment",
                         settings=GenerationSettings(max_new_tokens=16, greedy=True))
        t = time.perf_counter()
        r = run_loop(SleepyGenerator(64), critic, "a cat on a sofa", cfg)
        seconds = time.perf_counter() - t
        critic.close()
    return {"iterations": r.iterations_run, "loads": placement.loads, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="64,512")
    ap.add_argument("--generate-ms", type=float, default=20.0)
    ap.add_argument("--critic-ms", type=float, default=30.0)
    ap.add_argument("--tiny-critic", action="store_true")
    a = ap.parse_args()
    print("| image | outside the two model calls, per iteration | share of total | of which the engine "
          "(step, refine, history) | engine share | critic loads per run |")
    print("|---|---|---|---|---|---|")
    for size in (int(s) for s in a.sizes.split(",")):
        r = bench_overhead(size, a.iterations, a.runs, a.generate_ms / 1000, a.critic_ms / 1000)
        print(f"| {size}x{size} | {r['ms_per_iteration']:.2f} ms | {r['fraction'] * 100:.2f}% | "
              f"{r['engine_ms']:.2f} ms | {r['engine_fraction'] * 100:.2f}% | {r['loads']} |")
    if a.tiny_critic:
        t = bench_tiny_critic(3)
        print(f"\ntiny LocalCritic: {t['iterations']} iterations, {t['loads']} load(s) of the model onto its device, "
              f"{t['seconds']:.1f} s")


if __name__ == "__main__":
    main()
