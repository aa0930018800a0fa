"""Benchmark: a 16-image batch through the remote critic, concurrency 8 vs 1.

The server is tests/chat_server.py on 127.0.0.1, in its own process (as a vLLM server would be),
answering every request after a fixed latency (default 100 ms, standing in for the server's time
per critique). What is measured is the client: PNG encoding, HTTP, threads, parsing. The cache is
disabled so every run sends every request.

    python benchmarks/bench_remote.py [--images 16] [--latency 0.1] [--size 256] [--repeats 3]

With 100 ms of server latency the client's own CPU work (PNG encoding above all) decides how much
concurrency can hide; the script prints that cost so the figure can be read against the machine.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from rationalrewards.models.backends.base import GenerationSettings  # noqa: E402
from rationalrewards.models.backends.remote import RemoteCritic, png_base64  # noqa: E402


def make_images(n: int, size: int) -> list[Image.Image]:
    """Smooth gradients with a little noise: compresses like a real picture, not like noise."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    out = []
    for i in range(n):
        rgb = np.stack([x, y, (x + y + i / n) % 1.0], axis=2) * 230 + rng.normal(0, 6, (size, size, 3))
        out.append(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"))
    return out


def run(url: str, model: str, images, concurrency: int, repeats: int) -> list[float]:
    """Seconds per batch critique, ``repeats`` times."""
    times = []
    for _ in range(repeats):
        critic = RemoteCritic(url, model, max_concurrency=concurrency, cache_size=0)
        t0 = time.perf_counter()
        result = critic.critique(images, "a colourful gradient", settings=GenerationSettings())
        times.append(time.perf_counter() - t0)
        assert len(result) == len(images) and all(c.overall is not None for c in result)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--latency", type=float, default=0.1, help="server seconds per request")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    images = make_images(args.images, args.size)
    server = Path(__file__).resolve().parent.parent / "tests" / "chat_server.py"
    proc = subprocess.Popen([sys.executable, str(server), "--port", "0", "--latency", str(args.latency)],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        model = "rationalrewards"
        run(url, model, images[:2], 2, 1)  # warm-up: imports, template load
        seq = run(url, model, images, 1, args.repeats)
        par = run(url, model, images, 8, args.repeats)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    t0 = time.perf_counter()
    for im in images:
        png_base64(im)
    encode_ms = (time.perf_counter() - t0) / len(images) * 1000
    s, p = statistics.median(seq), statistics.median(par)
    floor = args.images * args.latency
    print(f"{args.images} images {args.size}x{args.size}, server latency {args.latency * 1000:.0f} ms, "
          f"median of {args.repeats}")
    print(f"concurrency 1: {s:.3f} s  ({s / args.images * 1000:.0f} ms/image; latency floor {floor:.2f} s)")
    print(f"concurrency 8: {p:.3f} s  ({p / args.images * 1000:.0f} ms/image; latency floor "
          f"{-(-args.images // 8) * args.latency:.2f} s)")
    print(f"PNG+base64 encoding alone: {encode_ms:.0f} ms/image (client CPU, single thread)")
    print(f"speed-up: {s / p:.1f}x (target >= 4x)")


if __name__ == "__main__":
    main()
