"""``rationalrewards score DIR --prompts FILE.jsonl --out scores.jsonl [--critic ...] [--concurrency N]``.

Scores a folder of images for dataset curation. The prompts file has one JSON object per line::

    {"image": "cat_001.png", "prompt": "a cat on a red sofa"}
    {"image": "edits/cat_001.png", "prompt": "make the sofa blue", "source": "cat_001.png"}

``image`` (and the optional ``source``, which makes it an edit critique) are paths relative to DIR;
blank lines are skipped. Each scored image becomes one line of --out, appended and flushed as soon as
its batch is done::

    {"image": "cat_001.png", "prompt": "...", "overall": 0.75, "critique": {<the parse JSON schema>}}

(plus ``"source"`` for edits). Resumable: pairs (image, prompt) already in --out are skipped, so an
interrupted run continues where it stopped. --out (writable) and the prompts file are checked whole
(JSON, keys, each image's header: it exists, is an image, the critic can read its size) before any
model loads; an image that fails to decode later stops the run with exit code 2 and keeps every line
written before it. ``--concurrency N``: requests in flight against a URL critic, images
per generate batch for a local one (default 4).
"""
from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..report.scorecard import format_overall
from . import UsageError
from .common import (TokenProgress, add_critic_args, check_image_file, generation_settings, iter_images, load_critic,
                     load_image, prepare_out_file, run_critic)


@dataclass(frozen=True)
class Item:
    """One line of the prompts file."""

    line: int
    image: str
    prompt: str
    source: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.image, self.prompt


def add_parser(sub) -> None:
    p = sub.add_parser(
        "score",
        help="score a folder of images (dataset curation), resumable",
        description="Critique every image listed in a prompts file (JSON lines: {\"image\": NAME, \"prompt\": TEXT, "
        "optional \"source\": NAME for edits}, paths relative to DIR) and append one JSON line per image to --out. "
        "Images already in --out are skipped.",
    )
    p.add_argument("folder", metavar="DIR", help="folder holding the images")
    p.add_argument("--prompts", required=True, metavar="FILE.jsonl", help="prompts file, one JSON object per line")
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="scores file to append to (created if missing)")
    p.add_argument("--concurrency", type=int, default=4, metavar="N",
                   help="requests in flight for a URL critic / images per batch for a local critic (default 4)")
    add_critic_args(p)
    p.set_defaults(func=run)


def read_prompts(path: Path, folder: Path) -> list[Item]:
    """Every item of the prompts file, checked: JSON object, "image" and "prompt" strings, files exist."""
    if not path.is_file():
        raise UsageError(f"--prompts {path}: {'is a folder' if path.is_dir() else 'no such file'}")
    items = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"--prompts {path}: cannot read it as UTF-8 text ({e})") from None
    for n, text in enumerate(lines, 1):
        if not text.strip():
            continue
        where = f"{path} line {n}"
        try:
            obj = json.loads(text)
        except ValueError as e:
            raise UsageError(f"{where}: not JSON ({e.args[0] if e.args else e}); each line must be an object like "
                             '{"image": "a.png", "prompt": "..."}') from None
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str) or not isinstance(obj.get("prompt"), str):
            raise UsageError(f'{where}: needs "image" and "prompt" strings, like {{"image": "a.png", "prompt": "..."}}')
        if not obj["prompt"].strip():
            raise UsageError(f"{where}: the prompt is empty")
        source = obj.get("source")
        if source is not None and not isinstance(source, str):
            raise UsageError(f'{where}: "source" must be an image name (string)')
        for what, name in (("image", obj["image"]), ("source", source)):
            if name is not None:  # header only: exists, is an image, a size the critic reads
                check_image_file(folder / name, f"{where}: {what}")
        items.append(Item(n, obj["image"], obj["prompt"], source))
    return items


def read_done(out: Path) -> set[tuple[str, str]]:
    """The (image, prompt) pairs already in ``out``. A last line cut off by a crash is removed (it
    is re-scored); any other line that is not a score line stops the run with the file untouched."""
    if not out.exists():
        return set()
    data = out.read_bytes()
    done = set()
    lines = data.split(b"\n")
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
            done.add((obj["image"], obj["prompt"]))
        except (ValueError, KeyError, TypeError):
            if n == len(lines):  # the unterminated last line: a write the previous run did not finish
                with open(out, "r+b") as fh:
                    fh.truncate(len(data) - len(raw))
                print(f"note: {out} ended with an unfinished line (an interrupted run); it will be scored again",
                      file=sys.stderr)
                break
            raise UsageError(f"--out {out} line {n}: not a score line of this command; give a new file or fix it") from None
    else:
        if data and not data.endswith(b"\n"):
            with open(out, "ab") as fh:
                fh.write(b"\n")
    return done


def run(args) -> int:
    folder = Path(args.folder).expanduser()
    if not folder.is_dir():
        raise UsageError(f"{folder}: {'is a file, not a folder' if folder.exists() else 'no such folder'} of images")
    if args.concurrency < 1:
        raise UsageError(f"--concurrency {args.concurrency}: must be at least 1")
    out = prepare_out_file(args.out)  # before anything slow: a run must be able to keep its results
    items = read_prompts(Path(args.prompts).expanduser(), folder)
    listed = {(folder / it.image).resolve() for it in items} | {(folder / it.source).resolve() for it in items if it.source}
    unlisted = [f.name for f in iter_images(folder) if f.resolve() not in listed]
    if unlisted:
        print(f"note: {len(unlisted)} image(s) in {folder} have no line in {args.prompts} and are not scored "
              f"(e.g. {', '.join(unlisted[:3])})", file=sys.stderr)
    settings = generation_settings(args)
    done = read_done(out)
    todo = [it for it in items if it.key not in done]
    print(f"scoring {len(todo)} of {len(items)} image(s); {len(items) - len(todo)} already in {out}", file=sys.stderr)
    if not todo:
        return 0
    critic = load_critic(args, edit=all(it.source for it in todo), concurrency=args.concurrency)
    bar = _progress(len(todo))
    scored: list[float | None] = []
    try:
        with open(out, "a", encoding="utf-8") as fh:
            for start in range(0, len(todo), args.concurrency):
                batch = todo[start:start + args.concurrency]
                for it, c in zip(batch, _critique_batch(critic, folder, batch, settings)):
                    row: dict[str, Any] = {"image": it.image, "prompt": it.prompt}
                    if it.source:
                        row["source"] = it.source
                    row.update(overall=c.overall, critique=c.to_dict())
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                    scored.append(c.overall)
                fh.flush()
                os.fsync(fh.fileno())  # a crash loses at most the batch in flight
                if bar is not None:
                    bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
        critic.close()
    readable = [s for s in scored if s is not None]
    mean = sum(readable) / len(readable) if readable else None
    print(f"scored {len(scored)} image(s) into {out}; mean overall {format_overall(mean)}; "
          f"{len(scored) - len(readable)} critique(s) without an overall score")
    return 0


def _critique_batch(critic, folder: Path, batch: list[Item], settings) -> list[Any]:
    """Critiques of ``batch`` in its order: one critic call for the text-to-image items, one for the edits
    (each call runs its images concurrently / batched)."""
    images = [load_image(folder / it.image, f"line {it.line}: image") for it in batch]
    results: list[Any] = [None] * len(batch)
    status = TokenProgress(enabled=False).callbacks()  # the critic's notes (a one-time compile) on stderr
    t2i = [k for k, it in enumerate(batch) if not it.source]
    edit = [k for k, it in enumerate(batch) if it.source]
    if t2i:
        cs = run_critic(critic.critique, [images[k] for k in t2i], [batch[k].prompt for k in t2i], settings=settings,
                        callbacks=status)
        for k, c in zip(t2i, cs):
            results[k] = c
    if edit:
        sources = [load_image(folder / batch[k].source, f"line {batch[k].line}: source") for k in edit]
        cs = run_critic(critic.critique, [images[k] for k in edit], [batch[k].prompt for k in edit],
                        sources=sources, settings=settings, callbacks=status)
        for k, c in zip(edit, cs):
            results[k] = c
    return results


def _progress(total: int):
    if not sys.stderr.isatty():
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="scoring", unit="img", file=sys.stderr)
