"""``rationalrewards refine --prompt TEXT --generator DIR|HF_ID --out DIR [...]``.

Generate with a diffusers pipeline, critique, refine the prompt and regenerate, with the one loop
engine (engine.loop.run_loop) the ComfyUI loop nodes use. Written to --out as the run goes, so a
crash or Ctrl-C keeps every finished iteration:

* ``iter_00.png``, ``iter_01.png``, ...: each iteration's image, its critique JSON in the PNG
  (report.pngmeta; read it back with ``read_critique_from_png``)
* ``best.png``: the best-scored image (written at the end)
* ``critiques.json``: the run (settings, stop reason, best) and the loop history, one entry per iteration
* ``report.html``: images, prompts, score bars and decisions

One line per iteration on stdout (overall score, aspect scores, decision); diffusers' step bars and
the critic's token bar on stderr (``--quiet`` hides them). Exit 0 when the loop finished, 1 when a
failure ended it early (the files hold the iterations before it), 2 for bad input.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from ..engine.loop import GeneratorError, LoopCallbacks, LoopConfig, LoopConfigError, run_loop
from ..models.format.scoring import DEFAULT_THRESHOLD, REFINE_RULES
from ..models.images import MIN_SIDE, critic_size_problem
from ..report.html import write_html_report
from ..report.pngmeta import save_png_with_critique
from ..report.scorecard import format_overall
from . import UsageError
from .common import (TokenProgress, add_critic_args, generation_settings, load_critic, load_image, models_dir,
                     prepare_out_dir, write_text_atomic)
from .diffusers_gen import (DEFAULT_GENERATOR, DiffusersGenerator, default_settings, describe_settings,
                            generator_cache_dir, load_pipeline, resolve_device_dtype)

HISTORY_NAME = "critiques.json"


def add_parser(sub) -> None:
    p = sub.add_parser(
        "refine",
        help="generate, critique, refine the prompt and regenerate (diffusers)",
        description="Generate an image with a diffusers pipeline, critique it with RationalRewards, refine the "
        "prompt from the critique and regenerate, until the critic is satisfied or --iterations is reached. "
        "Writes iter_NN.png (critique JSON embedded), best.png, critiques.json and report.html to --out.",
    )
    p.add_argument("--prompt", required=True, help="the prompt (or, with --source, the edit instruction)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the images, critiques.json and report.html")
    p.add_argument("--generator", metavar="DIR|HF_ID",
                   help=f"diffusers pipeline folder or Hugging Face repo id (default {DEFAULT_GENERATOR}; repo ids "
                        "are downloaded into the models folder's diffusers/ on first use)")
    p.add_argument("--source", metavar="IMAGE", help="image to edit: uses an image-to-image/editing pipeline and the edit critic")
    p.add_argument("--iterations", type=int, default=4, metavar="N", help="most generations (1-20, default 4)")
    p.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD, metavar="T",
                   help="refine while an aspect scores below T (1-4, default 3.0)")
    p.add_argument("--rule", choices=REFINE_RULES, default="paper",
                   help="paper: any aspect below T; upstream: text faithfulness or quality below T; always")
    p.add_argument("--seed-policy", choices=("fixed", "increment"), default="fixed",
                   help="fixed: the same seed every iteration (the paper); increment: seed + 1 each time")
    p.add_argument("--steps", type=int, metavar="N", help="inference steps (default: the pipeline's; 4 for sd-turbo)")
    p.add_argument("--guidance", type=float, metavar="G", help="guidance scale (default: the pipeline's; 0 for sd-turbo)")
    p.add_argument("--width", type=int, metavar="W", help="image width (a multiple of 8; default: the pipeline's)")
    p.add_argument("--height", type=int, metavar="H", help="image height (a multiple of 8; default: the pipeline's)")
    p.add_argument("--strength", type=float, metavar="S", help="image-to-image strength with --source (0-1)")
    p.add_argument("--generator-dtype", default="auto", choices=("auto", "fp16", "bf16", "fp32"),
                   help="generator weights dtype (auto: fp16 on cuda, fp32 on cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bars (the per-iteration lines stay)")
    add_critic_args(p, seed_help="seed of the generator and of the critic's sampling (default 42)")
    p.set_defaults(func=run)


def _check_numbers(args) -> None:
    for opt, value in (("--steps", args.steps), ("--width", args.width), ("--height", args.height),
                       ("--iterations", args.iterations)):
        if value is not None and value < 1:
            raise UsageError(f"{opt} {value}: must be at least 1")
    for opt, value in (("--width", args.width), ("--height", args.height)):
        if value is not None and value % 8:
            raise UsageError(f"{opt} {value}: must be a multiple of 8 (diffusion VAEs work in 8-pixel blocks)")
    # The critic must be able to read what is generated (the pipeline's own size when one is not given).
    w = args.width if args.width is not None else max(args.height or MIN_SIDE, MIN_SIDE)
    h = args.height if args.height is not None else max(args.width or MIN_SIDE, MIN_SIDE)
    problem = critic_size_problem(w, h, "the generated image (--width/--height)")
    if problem:
        raise UsageError(problem)
    if args.strength is not None and not 0 < args.strength <= 1:
        raise UsageError(f"--strength {args.strength}: must be within (0, 1]")


def run(args) -> int:
    if not args.prompt.strip():
        raise UsageError("--prompt is empty: give the prompt to generate and refine")
    _check_numbers(args)
    out = prepare_out_dir(args.out)
    source = load_image(args.source, "--source image") if args.source else None
    settings = generation_settings(args)
    device, gen_dtype = resolve_device_dtype(args.device, args.generator_dtype)
    defaults = default_settings(args.generator)
    pipe = load_pipeline(args.generator, edit=source is not None, device=device, dtype=gen_dtype,
                         cache_dir=generator_cache_dir(models_dir()))
    gen = DiffusersGenerator(
        pipe, name=args.generator or DEFAULT_GENERATOR, source=source, strength=args.strength,
        steps=args.steps if args.steps is not None else defaults.get("steps"),
        guidance=args.guidance if args.guidance is not None else defaults.get("guidance"),
        width=args.width, height=args.height, progress=not args.quiet,
    )
    token_limit, token_counter = gen.token_window()
    critic = load_critic(args, edit=source is not None)
    try:
        config = LoopConfig(max_iterations=args.iterations, threshold=args.threshold, rule=args.rule,
                            seed=args.seed, seed_policy=args.seed_policy, settings=settings, source=source,
                            token_limit=token_limit, token_counter=token_counter)
        config.checked()
    except LoopConfigError as e:
        critic.close()
        raise UsageError(str(e)) from None
    print(f"generator: {gen.name}: {describe_settings(gen)} on {device}", file=sys.stderr)
    run_info = {"prompt": args.prompt, "generator": gen.name, "generator_settings": gen.call_kwargs,
                "critic": critic.identity, "seed": args.seed, "iterations": args.iterations,
                "threshold": args.threshold, "rule": args.rule, "source": args.source}
    writer = _RunWriter(out, run_info, config.max_iterations)
    progress = TokenProgress(enabled=None if not args.quiet else False)
    callbacks = LoopCallbacks(on_image=writer.on_image, on_iteration_end=writer.on_iteration_end,
                              on_tokens=progress.on_tokens, on_status=progress.on_status)
    resident = getattr(critic, "resident", None)
    try:
        with (resident() if resident else contextlib.nullcontext()):
            result = run_loop(gen, critic, args.prompt, config, callbacks=callbacks)
    except GeneratorError as e:
        raise UsageError(str(e)) from None
    except LoopConfigError as e:
        raise UsageError(str(e)) from None
    finally:
        progress.close()
        critic.close()
    writer.finish(result)
    return 1 if result.error else 0


class _RunWriter:
    """Writes each iteration's files as soon as it is critiqued, and the summary at the end."""

    def __init__(self, out: Path, run_info: dict[str, Any], n: int):
        self.out, self.run_info, self.n = out, run_info, n
        self.images: dict[int, list[Any]] = {}
        self.entries: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}

    def on_image(self, i: int, images: Any) -> None:
        self.images[i] = list(images) if isinstance(images, (list, tuple)) else [images]

    def _files(self, i: int) -> list[str]:
        k = len(self.images.get(i, []))
        return [f"iter_{i:02d}.png"] if k == 1 else [f"iter_{i:02d}_{j}.png" for j in range(k)]

    def on_iteration_end(self, i: int, entry: dict[str, Any]) -> None:
        files = self._files(i)
        for f, im in zip(files, self.images.get(i, [])):
            if entry.get("critique") is not None:
                save_png_with_critique(im, self.out / f, entry["critique"])
            else:
                im.save(self.out / f, format="PNG")
        best = entry.get("best_index") or 0
        self.entries.append({**entry, "image_file": files[best] if files else None, "image_files": files})
        self._write()
        print(_iteration_line(entry, self.n), flush=True)

    def _write(self) -> None:
        data = {**self.run_info, **self.summary, "history": self.entries}
        write_text_atomic(self.out / HISTORY_NAME, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        rows = [{"iteration": e["iteration"], "image_file": e.get("image_file"), "prompt": e.get("prompt"),
                 "seed": e.get("seed"), "critique": e.get("critique"), "decision": e.get("decision"),
                 "seconds": sum(e.get(k) or 0.0 for k in ("generate_seconds", "critique_seconds", "refine_seconds"))}
                for e in self.entries]
        write_html_report(self.out, rows, title=f"RationalRewards refine: {self.run_info['prompt'][:80]}")

    def finish(self, result: Any) -> None:
        """Record the end of the run (stop reason, best), write best.png and print the summary."""
        # A generator failure after the first iteration ends the loop without an iteration_end call.
        for e in result.history[len(self.entries):]:
            self.entries.append({**e, "image_file": None, "image_files": []})
        best_file = None
        if result.best_images is not None and result.best_iteration is not None:
            best_im = result.best_images[0] if isinstance(result.best_images, (list, tuple)) else result.best_images
            crit = self.entries[result.best_iteration].get("critique") if result.best_iteration < len(self.entries) else None
            best_file = "best.png"
            if crit is not None:
                save_png_with_critique(best_im, self.out / best_file, crit)
            else:
                best_im.save(self.out / best_file, format="PNG")
        self.summary = {"stop_reason": result.stop_reason, "error": result.error, "warnings": list(result.warnings),
                        "best": {"iteration": result.best_iteration, "image_file": best_file,
                                 "prompt": result.best_prompt, "overall": result.best_score}}
        self._write()
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
        if result.error:
            print(f"rationalrewards refine: {result.error}", file=sys.stderr)
        it = "-" if result.best_iteration is None else result.best_iteration + 1
        print(f"best: iteration {it}, overall {format_overall(result.best_score)}, stop: {result.stop_reason}; "
              f"prompt: {result.best_prompt}")
        print(f"wrote {self.out / HISTORY_NAME} and {self.out / 'report.html'}")


def _iteration_line(entry: dict[str, Any], n: int) -> str:
    """``iteration 2/4: overall 0.67 [text_faithfulness 3.0, ...] -> refine: <next prompt>``."""
    scores = ", ".join(f"{k} {'n/a' if v is None else f'{v:.1f}'}" for k, v in (entry.get("scores") or {}).items())
    head = f"iteration {entry['iteration'] + 1}/{n}: overall {format_overall(entry.get('overall'))}"
    if scores:
        head += f" [{scores}]"
    if entry.get("error"):
        return f"{head} -> stopped: {entry['error']}"
    dec = entry.get("decision") or {}
    if entry.get("stop_reason"):
        return f"{head} -> stop ({entry['stop_reason']}): {dec.get('reason', '')}".rstrip(": ")
    return f"{head} -> refine: {dec.get('next_prompt', '')}"
