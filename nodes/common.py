"""Inputs and conversions several nodes share: generation settings, prompts, list-input unwrapping,
and the check of combo values against their options."""
from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

from comfy_api.latest import io

from ..models.backends.base import GenerationSettings
from ..models.format.aspects import ASPECT_TITLES
from ..models.format.critique import Comparison, Critique
from .types import float_score


def generation_inputs() -> list:
    """Seed and generation settings (upstream defaults: temperature 0.1, 2048 new tokens)."""
    return [
        io.Int.Input("seed", default=42, min=0, max=0xFFFFFFFF, control_after_generate=False,
                     tooltip="Sampling seed of the critic; the same image, prompt and seed give the same critique "
                     "(and hit the critique cache)."),
        io.Int.Input("max_new_tokens", default=2048, min=64, max=32768, step=64,
                     tooltip="Longest critique in tokens. A critique cut at this limit is flagged (cut_off) and "
                     "its refined prompt is not used; raise it if that happens."),
        io.Float.Input("temperature", default=0.1, min=0.0, max=2.0, step=0.05,
                       tooltip="0.1 as upstream; 0 decodes greedily (deterministic; batches then equal single runs)."),
        io.String.Input("template", default="", optional=True,
                        tooltip="Optional path of your own request template file (see README); empty: the built-in "
                        "one for the kind of critique."),
    ]


def settings_from(seed: int, max_new_tokens: int, temperature: float) -> GenerationSettings:
    return GenerationSettings(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                              greedy=float(temperature) == 0.0, seed=int(seed))


def first(value: Any) -> Any:
    """A widget value from an is_input_list node arrives as a one-item list."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def cat_images(images: Any) -> Any:
    """An IMAGE input of an is_input_list node: one batch tensor, or several to concatenate."""
    import torch

    if isinstance(images, list):
        images = [i for i in images if i is not None]
        if not images:
            return None
        if len(images) == 1:
            return images[0]
        try:
            return torch.cat(list(images), dim=0)
        except RuntimeError:
            return [im for batch in images for im in batch]  # sizes differ: keep each image on its own
    return images


def template_arg(template: Any) -> str | None:
    t = first(template)
    return t.strip() if isinstance(t, str) and t.strip() else None


def score_summary(c: Critique | Comparison) -> str:
    """One short block for the node face: per-aspect scores, overall, problems."""
    lines = []
    if isinstance(c, Comparison):
        for name, a in c.aspects.items():
            sa = "N/A" if a.not_applicable else _num(a.score_a)
            sb = "N/A" if a.not_applicable else _num(a.score_b)
            lines.append(f"{ASPECT_TITLES[name]}: A {sa} | B {sb}" + (f" -> {a.winner}" if a.winner else ""))
        lines.append(f"overall: A {_pct(c.overall_a)} | B {_pct(c.overall_b)} -> winner {c.winner or 'unknown'}")
    else:
        for name, a in c.aspects.items():
            lines.append(f"{ASPECT_TITLES[name]}: {'N/A' if a.not_applicable else _num(a.score)}")
        lines.append(f"overall: {_pct(c.overall)}"
                     + ("" if c.needs_refinement is None else
                        ("  (needs refinement)" if c.needs_refinement else "  (good)")))
    if c.problems:
        lines.append(f"{len(c.problems)} problem(s): " + "; ".join(p.split(':', 1)[0] for p in c.problems))
    return "\n".join(lines)


#: Short aspect names for the node face (the full titles wrap at a node's default width).
FACE_NAMES = {"text_faithfulness": "text faithfulness", "image_faithfulness": "source kept",
              "physical_quality": "quality", "text_rendering": "text rendering"}


def face_summary(results: "list[Critique | Comparison] | tuple") -> str:
    """What the node shows when it finishes, readable at the node's default size (about three lines): the
    overall score and verdict first, then the aspect scores. A batch gets one line per image under a line
    naming the aspects, so four images still fit."""
    if len(results) == 1:
        c = results[0]
        lines = [_headline(c), " · ".join(f"{FACE_NAMES[n]} {s}" for n, s in _aspect_scores(c))]
        if c.problems:
            codes = dict.fromkeys(p.split(":", 1)[0] for p in c.problems)  # each kind once, in order
            lines.append(f"{len(c.problems)} problem(s): " + ", ".join(codes))
        return "\n".join(lines)
    names = [FACE_NAMES[n] for n, _ in _aspect_scores(results[0])]
    lines = ["scores: " + " / ".join(names)]
    for i, c in enumerate(results):
        extra = f" · {len(c.problems)} problem(s)" if c.problems else ""
        lines.append(f"image {i + 1}: {_headline(c)} · " + " / ".join(s for _, s in _aspect_scores(c)) + extra)
    return "\n".join(lines)


def _headline(c: "Critique | Comparison") -> str:
    if isinstance(c, Comparison):
        return f"winner {c.winner or 'unknown'} (overall A {_pct(c.overall_a)}, B {_pct(c.overall_b)})"
    verdict = "" if c.needs_refinement is None else (" · needs refinement" if c.needs_refinement else " · good")
    return f"overall {_pct(c.overall)}{verdict}"


def _aspect_scores(c: "Critique | Comparison") -> list[tuple[str, str]]:
    if isinstance(c, Comparison):
        return [(n, f"{_na(a.not_applicable, a.score_a)}/{_na(a.not_applicable, a.score_b)}")
                for n, a in c.aspects.items()]
    return [(n, _na(a.not_applicable, a.score)) for n, a in c.aspects.items()]


def _na(not_applicable: bool, v: float | None) -> str:
    return "N/A" if not_applicable else _num(v)


def _num(v: float | None) -> str:
    return "?" if v is None else f"{v:g}"


def _pct(v: float | None) -> str:
    return "?" if v is None else f"{v:.2f}"


def aspect_float(c: Critique, name: str) -> float:
    a = c.aspects.get(name)
    if a is None:  # e.g. image_faithfulness of a text-to-image critique
        return float_score(None, True)
    return float_score(a.score, a.not_applicable)


#: Longest list of choices written into an error message (sampler lists run to ~40 names).
MAX_LISTED_CHOICES = 25


def checks_combos(execute: Callable) -> Callable:
    """Decorator for a node's ``execute``: every Combo input must hold one of its schema's options.

    ComfyUI 0.33 refuses such a prompt before the node runs; 0.3.64 does not check V3 combos at all,
    so an edited or API workflow could run ``device = "cuda:9"`` as the CPU or an unknown refiner
    source as the default. Driven by ``define_schema()``, so new inputs and new options are covered
    without touching this code. Inputs the node checks itself in ``validate_inputs`` are skipped, as
    ComfyUI skips them. Use under ``@classmethod``.
    """
    signature = inspect.signature(execute)

    @functools.wraps(execute)
    def checked(cls, *args, **kwargs):
        check_combo_values(cls, signature.bind_partial(cls, *args, **kwargs).arguments)
        return execute(cls, *args, **kwargs)

    return checked


def check_combo_values(node: type, values: dict[str, Any]) -> None:
    """Raise ValueError naming the input and its choices for the first combo value not in its options."""
    schema = node.define_schema()
    own = self_validated_inputs(node)
    for spec in schema.inputs or []:
        options = getattr(spec, "options", None)
        if not isinstance(spec, io.Combo.Input) or options is None or spec.id in own or spec.id not in values:
            continue
        value = values[spec.id]
        listed = isinstance(value, list) and (schema.is_input_list or getattr(spec, "multiselect", False))
        for v in (value if listed else [value]):
            if v is not None and v not in options:
                raise ValueError(invalid_choice_message(spec.id, v, options))


def invalid_choice_message(name: str, value: Any, options: list) -> str:
    """'<input>' = <value> is not one of its choices: a, b, c. (The one wording every node uses.)"""
    shown = ", ".join(str(o) for o in options[:MAX_LISTED_CHOICES])
    if len(options) > MAX_LISTED_CHOICES:
        shown += f", ... ({len(options)} choices in all)"
    return (f"'{name}' = {value!r} is not one of its choices: {shown}. Pick one of them on the node (an edited "
            "or API workflow may carry a value this version of the node does not have)")


def self_validated_inputs(node: type) -> set[str]:
    """Inputs the node's own ``validate_inputs`` takes by name (ComfyUI then skips its checks of them)."""
    fn = getattr(node, "validate_inputs", None)
    base = getattr(io.ComfyNode, "validate_inputs", None)
    if fn is None or getattr(fn, "__func__", fn) is getattr(base, "__func__", base):
        return set()
    return set(inspect.getfullargspec(fn).args) - {"cls", "self"}
