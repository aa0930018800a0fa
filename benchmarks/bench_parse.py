"""Parse throughput: critiques parsed per CPU second of this process (target: over 2,000/s).

CPU time (time.process_time) rather than wall time, so other jobs sharing the cores do not
distort the figure; the parser is single-threaded, so one CPU second is one second of one core.

    python benchmarks/bench_parse.py [--seconds 3]
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))

from data_answers import EDIT_FULL, PAIR_T2I, T2I_FULL  # noqa: E402

from rationalrewards.models.format import parse_comparison, parse_critique  # noqa: E402


def bench(fn, text, kind, seconds):
    n = 0
    t0 = time.process_time()
    while time.process_time() - t0 < seconds:
        for _ in range(100):
            fn(text, kind)
        n += 100
    return n / (time.process_time() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    rows = [
        ("t2i critique (%d chars)" % len(T2I_FULL), bench(parse_critique, T2I_FULL, "t2i", a.seconds)),
        ("edit critique (%d chars)" % len(EDIT_FULL), bench(parse_critique, EDIT_FULL, "edit", a.seconds)),
        ("pairwise t2i (%d chars)" % len(PAIR_T2I), bench(parse_comparison, PAIR_T2I, "pairwise-t2i", a.seconds)),
    ]
    for name, rate in rows:
        print(f"{name:32s} {rate:10.0f} /s")


if __name__ == "__main__":
    main()
