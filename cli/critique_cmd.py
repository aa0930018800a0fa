"""``rationalrewards critique IMAGE... --prompt TEXT [--source IMAGE] [--critic ...] [--json]``.

Critiques each image against the prompt with the same backend the nodes use (local transformers
model, or a server with ``--critic URL``) and prints the result: per-aspect scores with reasons, the
overall score, the refined prompt and any parsing problems; with ``--json`` the parse JSON schema
(one object for one image, a list for several). Exit 0 whenever critiques were printed, even when
the answers could not be fully parsed (the problems are part of the output).
"""
from __future__ import annotations

import json
import sys

from ..models.format.critique import Critique
from ..report.scorecard import aspect_rows, format_overall, format_score
from . import UsageError
from .common import TokenProgress, add_critic_args, generation_settings, load_critic, load_image, run_critic


def add_parser(sub) -> None:
    p = sub.add_parser(
        "critique",
        help="critique images against their prompt",
        description="Critique one or more images against a prompt with RationalRewards (or an edit against "
        "its source image with --source) and print the per-aspect scores, the overall score and the refined prompt.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files to critique")
    p.add_argument("--prompt", required=True, help="the prompt (or edit instruction) the images were made from")
    p.add_argument("--source", metavar="IMAGE", help="source image of an edit: critiques the images as edits of it")
    p.add_argument("--json", action="store_true", help="print the critique JSON (a list for several images)")
    add_critic_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if not args.prompt.strip():
        raise UsageError("--prompt is empty: give the prompt the images were generated from")
    # Read every input before loading an 8B model: a typo should cost a second, not a minute.
    images = [load_image(f) for f in args.images]
    source = load_image(args.source, "source image") if args.source else None
    settings = generation_settings(args)
    critic = load_critic(args, edit=source is not None)
    progress = TokenProgress()
    try:
        critiques = run_critic(critic.critique, images, args.prompt, sources=source, settings=settings,
                               callbacks=progress.callbacks())
    finally:
        progress.close()
        critic.close()
    if args.json:
        data = [c.to_dict() for c in critiques]
        sys.stdout.write(json.dumps(data[0] if len(data) == 1 else data, ensure_ascii=False, indent=2) + "\n")
    else:
        for i, (name, c) in enumerate(zip(args.images, critiques)):
            if i:
                sys.stdout.write("\n")
            sys.stdout.write(format_critique(c, name))
    return 0


def format_critique(c: Critique, title: str | None = None) -> str:
    """A critique as plain text: aspects with score and reason, overall, refined prompt, problems."""
    lines = [f"== {title}" if title else None, f"kind: {c.kind}"]
    width = max((len(r.title) for r in aspect_rows(c)), default=0)
    for row in aspect_rows(c):
        lines.append(f"  {row.title:<{width}}  {format_score(row.scores[0], row.states[0]):>4}"
                     + (f"  {row.reason}" if row.reason else ""))
    lines.append(f"overall: {format_overall(c.overall)}")
    if c.needs_refinement is not None:
        lines.append(f"needs refinement: {'yes' if c.needs_refinement else 'no'}")
    if c.summary:
        lines.append(f"summary: {c.summary}")
    lines.append(f"refined prompt: {c.refined_request}" if c.refined_request else "refined prompt: (none)")
    if c.problems:
        lines.append(f"problems ({len(c.problems)}):")
        lines.extend(f"  - {p}" for p in c.problems)
    return "\n".join(x for x in lines if x is not None) + "\n"
