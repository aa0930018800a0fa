"""The generate-critique-refine loop, shared by the Simple Loop node, the Graph Loop nodes and the CLI.

One loop logic: ``step`` advances a LoopState by one iteration given the images generated for it
(critique -> best tracking -> refine decision -> stop rules). The Graph Loop nodes call ``step`` once
per ComfyUI execution; ``run_loop`` drives a Generator and calls the same ``step``.

Decisions:
- Cancel raises ``LoopInterrupted`` (a CritiqueInterrupted, so callers that already stop on it do)
  carrying ``.result``, the LoopResult so far with stop_reason "cancelled". Raising is what a cancel
  means in ComfyUI (downstream nodes must not run); the CLI can still save ``.result``.
- Batches: every image is critiqued; the iteration's score is its best image's score (earliest on
  ties), that image's critique drives the refine decision and is the one kept as best.
- Failures after the first image exist end the loop with the best result so far (stop_reason
  "critic_error" / "generator_error", ``error`` set, a history entry saying what failed). A generator
  failing before any image exists raises GeneratorError: there is nothing to hand back.
- An unchanged prompt with a fixed seed stops the loop ("no_change"): the next iteration would
  repeat this one exactly (deterministic sampler, seeded critic, critique cache).
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from ..models.backends.base import Callbacks, GenerationSettings
from ..models.errors import CritiqueInterrupted
from ..models.format.scoring import DEFAULT_THRESHOLD, REFINE_RULES, weighted_overall
from .history import LoopResult, LoopState
from .prompt_syntax import plain_text
from .refine import refine_prompt
from .select import rank, select_images

MAX_ITERATIONS = 20
SEED_POLICIES = ("fixed", "increment")


class LoopConfigError(ValueError):
    """A loop option with a value the loop cannot use; the message names the option and the fix."""


class GeneratorError(RuntimeError):
    """The generator failed or returned no image; the message names the generator and iteration."""


class LoopInterrupted(CritiqueInterrupted):
    """The user cancelled the loop; ``result`` holds everything finished before the cancel."""

    def __init__(self, message: str, result: LoopResult):
        super().__init__(message)
        self.result = result


@runtime_checkable
class Generator(Protocol):
    """Makes images from a prompt and a seed: an IMAGE tensor [B,H,W,C], a PIL image or a list of
    them (whatever the critic accepts). An edit generator may expose ``source`` (the image being
    edited); the critic then judges an edit. ``name`` (optional) is used in error messages."""

    def generate(self, prompt: str, seed: int) -> Any: ...


@dataclass(frozen=True)
class LoopConfig:
    """Loop options. ``max_iterations`` is clamped to 1-20 (with a warning in the result)."""

    max_iterations: int = 4
    threshold: float = DEFAULT_THRESHOLD
    rule: str = "paper"
    patience: int = 0  # stop after this many iterations without a better overall score; 0 = off
    seed: int = 0
    seed_policy: str = "fixed"  # "increment": seed + 1 each iteration
    keep_phrases: tuple[str, ...] = ()
    token_limit: int | None = None  # 77 for SD1.5/SDXL CLIP
    overflow: str = "keep"  # or "trim"
    settings: GenerationSettings | None = None  # the critic's generation settings
    aspect_weights: Mapping[str, float] | None = None  # weights of the overall score (best, patience)
    source: Any = None  # the edit's source image; else the generator's ``source`` attribute
    rewrite: Callable | None = None  # refine_prompt's rewrite (e.g. make_critic_rewriter(critic))
    token_counter: Callable[[str], int] | None = None
    critic_sees_plain_prompt: bool = True  # show the critic the prompt without ComfyUI syntax
    keep_critic_resident: bool = True  # run_loop holds critic.resident() (if it has one) for the whole run

    def checked(self) -> tuple["LoopConfig", list[str]]:
        """Validate; return a copy with max_iterations clamped, and the clamping messages."""
        warnings = []
        n = int(self.max_iterations)
        if n < 1:
            warnings.append(f"max_iterations {n} is below 1; running 1 iteration")
        elif n > MAX_ITERATIONS:
            warnings.append(f"max_iterations {n} is above {MAX_ITERATIONS}; clamped to {MAX_ITERATIONS}")
        if self.rule not in REFINE_RULES:
            raise LoopConfigError(f"rule {self.rule!r} is unknown: use one of {', '.join(REFINE_RULES)}")
        if not 1.0 <= float(self.threshold) <= 4.0:
            raise LoopConfigError(f"threshold must be within 1.0-4.0 (the score scale), got {self.threshold}")
        if int(self.patience) < 0:
            raise LoopConfigError(f"patience must be 0 (off) or more, got {self.patience}")
        if self.seed_policy not in SEED_POLICIES:
            raise LoopConfigError(f"seed_policy {self.seed_policy!r} is unknown: use 'fixed' or 'increment'")
        if self.overflow not in ("keep", "trim"):
            raise LoopConfigError(f"overflow must be 'keep' or 'trim', got {self.overflow!r}")
        if self.aspect_weights and any(float(w) < 0 for w in self.aspect_weights.values()):
            raise LoopConfigError("aspect weights must be >= 0 (0 ignores an aspect)")
        keep = (self.keep_phrases,) if isinstance(self.keep_phrases, str) else self.keep_phrases
        return replace(self, max_iterations=min(MAX_ITERATIONS, max(1, n)), keep_phrases=tuple(keep or ())), warnings


@dataclass
class LoopCallbacks:
    """Hooks for a UI. All optional. ``is_interrupted`` is checked between steps and handed to the
    critic (polled per token); on_tokens / on_text / on_item / on_status are passed to the critic as is."""

    on_iteration_start: Callable[[int, str, int], None] | None = None
    on_iteration_end: Callable[[int, dict], None] | None = None
    on_image: Callable[[int, Any], None] | None = None
    is_interrupted: Callable[[], bool] | None = None
    on_tokens: Callable[[int, int], None] | None = None
    on_text: Callable[[int, str], None] | None = None
    on_item: Callable[[int, int], None] | None = None
    on_status: Callable[[str, float | None], None] | None = None

    def interrupted(self) -> bool:
        return bool(self.is_interrupted and self.is_interrupted())

    def critic_callbacks(self) -> Callbacks:
        return Callbacks(on_tokens=self.on_tokens, on_text=self.on_text, on_item=self.on_item,
                         is_interrupted=self.is_interrupted, on_status=self.on_status)


@dataclass(frozen=True)
class StepOutcome:
    """What ``step`` decided: stop, or go on with next_prompt and next_seed."""

    stop: bool
    next_prompt: str
    next_seed: int
    stop_reason: str | None = None


def batch_size(images: Any) -> int:
    """Number of images in an IMAGE batch / PIL image / list (0 for None or an empty batch)."""
    if images is None:
        return 0
    shape = getattr(images, "shape", None)
    if shape is not None and len(shape) in (3, 4):
        return 1 if len(shape) == 3 else int(shape[0])
    if isinstance(images, (list, tuple)):
        return len(images)
    return 1


def select_image(images: Any, index: int) -> Any:
    """Image ``index`` of a batch, as a batch of one of the same type (a lone image as is)."""
    shape = getattr(images, "shape", None)
    if (shape is not None and len(shape) == 4) or isinstance(images, (list, tuple)):
        return select_images(images, [index])
    return images


def start(prompt: str, config: LoopConfig | None = None) -> tuple[LoopState, LoopConfig]:
    """A fresh LoopState for ``prompt`` and the checked config (clamping warnings in the state)."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise LoopConfigError("prompt is empty: enter the prompt to generate and refine")
    config, warnings = (config or LoopConfig()).checked()
    state = LoopState(original_prompt=prompt, prompt=prompt, seed=int(config.seed),
                      max_iterations=config.max_iterations, warnings=warnings)
    return state, config


def step(
    state: LoopState,
    images: Any,
    critic: Any,
    config: LoopConfig,
    *,
    callbacks: LoopCallbacks | None = None,
    generate_seconds: float | None = None,
    source: Any = None,
) -> tuple[LoopState, StepOutcome]:
    """One iteration after generation: critique ``images`` (made from state.prompt, state.seed),
    track the best, decide the next prompt, apply the stop rules. Returns a new state (``state``
    is not modified). Raises CritiqueInterrupted on cancel and GeneratorError for no image."""
    callbacks = callbacks or LoopCallbacks()
    config, _ = config.checked()
    i = state.iteration
    if state.done:
        raise LoopConfigError(f"the loop already stopped ({state.stop_reason}); start a new one")
    n = batch_size(images)
    if n == 0:
        raise GeneratorError(f"no image for iteration {i + 1} (prompt {state.prompt[:60]!r}, seed {state.seed}): "
                             "connect the IMAGE the loop body decodes")
    state = state.copy()
    state.all_images.append(images)
    state.final_images, state.final_prompt = images, state.prompt
    critic_prompt = (plain_text(state.prompt) or state.prompt) if config.critic_sees_plain_prompt else state.prompt
    entry: dict[str, Any] = {
        "iteration": i, "prompt": state.prompt, "critic_prompt": critic_prompt, "seed": state.seed,
        "batch_size": n, "best_index": None, "overall": None, "overall_per_image": [], "scores": {},
        "critique": None, "decision": None, "improved": False,
        "generate_seconds": generate_seconds, "critique_seconds": None, "refine_seconds": None,
        "error": None, "stop_reason": None,
    }
    src = source if source is not None else config.source
    t0 = time.perf_counter()
    try:
        critiques = critic.critique(images, critic_prompt, sources=src, settings=config.settings,
                                    callbacks=callbacks.critic_callbacks())
        if len(critiques) != n:
            raise RuntimeError(f"the critic returned {len(critiques)} critiques for {n} images")
    except CritiqueInterrupted:
        raise
    except Exception as e:  # any critic failure ends the loop with what we have; never continue silently
        entry["critique_seconds"] = time.perf_counter() - t0
        return _stop_on_error(state, entry, 0, "critic_error", f"critic failed on iteration {i + 1}: {_describe(e)}")
    entry["critique_seconds"] = time.perf_counter() - t0
    # Best-of-N's ranking: each image's own weighted overall, earliest first on ties, unscored last.
    best_k = rank(critiques, weights=config.aspect_weights)[0].index
    overalls = [weighted_overall(c, config.aspect_weights) for c in critiques]
    crit = critiques[best_k]
    entry.update(best_index=best_k, overall=overalls[best_k], overall_per_image=overalls,
                 scores={k: a.score for k, a in crit.aspects.items()}, critique=crit.to_dict())
    improved = _track_best(state, images, best_k, overalls[best_k], crit.to_dict(), i)
    entry["improved"] = improved
    t1 = time.perf_counter()
    try:
        decision = refine_prompt(state.prompt, crit, rule=config.rule, threshold=config.threshold,
                                 keep_phrases=config.keep_phrases, token_limit=config.token_limit,
                                 overflow=config.overflow, rewrite=config.rewrite,
                                 token_counter=config.token_counter)
    except CritiqueInterrupted:
        raise
    except Exception as e:  # the rewrite runs the critic: its failures are critic failures
        entry["refine_seconds"] = time.perf_counter() - t1
        return _stop_on_error(state, entry, None, "critic_error",
                              f"prompt rewrite failed on iteration {i + 1}: {_describe(e)}")
    entry["refine_seconds"] = time.perf_counter() - t1
    entry["decision"] = decision.to_dict()
    next_seed = state.seed + 1 if config.seed_policy == "increment" else state.seed
    reason = None
    if decision.needs_refinement is False:
        reason = "good_enough"
    elif config.patience and state.since_improved >= config.patience:
        reason = "patience"
    elif i + 1 >= config.max_iterations:
        reason = "max_iterations"
    elif not decision.changed and config.seed_policy == "fixed":
        reason = "no_change"
    entry["stop_reason"] = reason
    state.history.append(entry)
    state.iteration = i + 1
    if reason:
        state.stop_reason = reason
        return state, StepOutcome(True, decision.next_prompt, next_seed, reason)
    state.prompt, state.seed = decision.next_prompt, next_seed
    return state, StepOutcome(False, decision.next_prompt, next_seed, None)


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


def _track_best(state: LoopState, images: Any, k: int, score: float | None, critique: dict | None, i: int) -> bool:
    """Keep image k of this iteration as best when strictly better (earlier wins ties); an unscored
    image is kept only while nothing else is. Returns whether the score improved."""
    improved = score is not None and (state.best_score is None or score > state.best_score)
    first = state.best_images is None
    if improved or first:
        state.best_images = select_image(images, k)
        state.best_prompt, state.best_score = state.prompt, score
        state.best_iteration, state.best_index, state.best_critique = i, k, critique
    # The first iteration has nothing to improve on: it never counts against patience, even unscored.
    state.since_improved = 0 if improved or first else state.since_improved + 1
    return improved


def _stop_on_error(state: LoopState, entry: dict, k: int | None, reason: str, message: str):
    if k is not None and state.final_images is not None and state.best_images is None:
        _track_best(state, state.final_images, k, None, None, entry["iteration"])
    entry["error"], entry["stop_reason"] = message, reason
    state.history.append(entry)
    state.iteration = entry["iteration"] + 1
    state.stop_reason, state.error = reason, message
    return state, StepOutcome(True, state.prompt, state.seed, reason)


def run_loop(
    generator: Generator,
    critic: Any,
    prompt: str,
    config: LoopConfig | None = None,
    *,
    callbacks: LoopCallbacks | None = None,
) -> LoopResult:
    """Generate, critique and refine until a stop rule fires; return the best result and history.

    ``critic`` is a loaded CriticBackend (anything with its ``critique`` method); it is never loaded
    or closed here, and it is held in ``critic.resident()`` (when it has one) for the whole run. Raises LoopInterrupted on cancel (partial result attached),
    GeneratorError when the generator fails before the first image, LoopConfigError for bad options.
    """
    callbacks = callbacks or LoopCallbacks()
    state, config = start(prompt, config)
    resident = getattr(critic, "resident", None) if config.keep_critic_resident else None
    # One residency block for the run: the critic is placed on its device once, not once per
    # iteration (a LocalCritic otherwise offers its model back to the memory manager after each call).
    with resident() if callable(resident) else contextlib.nullcontext():
        state = _run(generator, critic, state, config, callbacks)
    return LoopResult.from_state(state)


def _run(generator: Any, critic: Any, state: LoopState, config: LoopConfig, callbacks: LoopCallbacks) -> LoopState:
    source = config.source if config.source is not None else getattr(generator, "source", None)
    name = getattr(generator, "name", None) or type(generator).__name__
    while not state.done:
        i = state.iteration
        _check_cancel(state, callbacks, f"before iteration {i + 1}")
        if callbacks.on_iteration_start:
            callbacks.on_iteration_start(i, state.prompt, state.seed)
        t0 = time.perf_counter()
        try:
            images = generator.generate(state.prompt, state.seed)
            if batch_size(images) == 0:
                raise GeneratorError(f"generator {name} returned no image for iteration {i + 1} "
                                     f"(seed {state.seed}); check that it decodes and returns an IMAGE")
        except CritiqueInterrupted:
            _check_cancel(state, callbacks, f"while generating iteration {i + 1}", force=True)
        except Exception as e:
            err = e if isinstance(e, GeneratorError) else GeneratorError(
                f"generator {name} failed on iteration {i + 1}: {_describe(e)}")
            if state.best_images is None:
                raise err from (None if err is e else e)
            state = state.copy()
            entry = {"iteration": i, "prompt": state.prompt, "seed": state.seed, "generate_seconds": time.perf_counter() - t0}
            state, _ = _stop_on_error(state, entry, None, "generator_error", str(err))
            break
        gen_s = time.perf_counter() - t0
        if callbacks.on_image:
            callbacks.on_image(i, images)
        _check_cancel(state, callbacks, f"after generating iteration {i + 1}")
        try:
            state, _ = step(state, images, critic, config, callbacks=callbacks, generate_seconds=gen_s, source=source)
        except CritiqueInterrupted:
            _check_cancel(state, callbacks, f"while critiquing iteration {i + 1}", force=True)
        if callbacks.on_iteration_end:
            callbacks.on_iteration_end(i, state.history[-1])
    return state


def _check_cancel(state: LoopState, callbacks: LoopCallbacks, where: str, force: bool = False) -> None:
    if force or callbacks.interrupted():
        state = state.copy()
        state.stop_reason = "cancelled"
        state.warnings.append(f"cancelled {where}")
        raise LoopInterrupted(f"loop cancelled {where}", LoopResult.from_state(state))
