"""What a generate-critique-refine loop carries and hands back: LoopState, LoopResult, history.

LoopState is the loop between two iterations: the Graph Loop nodes pass it from one ComfyUI
execution to the next, run_loop keeps it in a local variable; both advance it with loop.step.
History entries are plain JSON-ready dicts, one per iteration::

    {"iteration", "prompt", "critic_prompt", "seed", "batch_size", "best_index", "overall",
     "overall_per_image", "scores": {aspect: 1-4 or null (N/A or unreadable)}, "critique": {...},
     "decision": {...} | null, "improved", "generate_seconds", "critique_seconds",
     "refine_seconds", "error": str | null, "stop_reason": str | null}
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

#: Why a loop stopped. good_enough: no applicable aspect needs refinement; patience: the overall
#: score did not improve for `patience` iterations; max_iterations; no_change: the prompt stayed the
#: same with a fixed seed, so the next iteration would repeat this one; critic_error /
#: generator_error: a failure ended the loop with the best result so far; cancelled: the user.
STOP_REASONS = ("good_enough", "patience", "max_iterations", "no_change", "critic_error",
                "generator_error", "cancelled")


@dataclass
class LoopState:
    """The loop between iterations. Images are whatever the generator returned (IMAGE tensors or
    PIL lists) and are left out of ``to_dict()``; everything else is JSON-ready."""

    original_prompt: str
    prompt: str
    seed: int
    max_iterations: int
    iteration: int = 0  # iterations finished so far
    history: list[dict[str, Any]] = field(default_factory=list)
    best_images: Any = None
    best_prompt: str | None = None
    best_score: float | None = None
    best_iteration: int | None = None
    best_index: int | None = None
    best_critique: dict[str, Any] | None = None
    final_images: Any = None
    final_prompt: str | None = None
    all_images: list[Any] = field(default_factory=list)
    since_improved: int = 0
    warnings: list[str] = field(default_factory=list)
    stop_reason: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        """True once a stop rule fired (or a failure/cancel ended the loop)."""
        return self.stop_reason is not None

    def copy(self) -> "LoopState":
        """A copy whose lists can be changed without touching this one (ComfyUI may reuse cached
        node outputs, so a step must never modify the state it was given)."""
        new = copy.copy(self)
        new.history = list(self.history)
        new.all_images = list(self.all_images)
        new.warnings = list(self.warnings)
        return new

    def to_dict(self) -> dict[str, Any]:
        """Everything but the images, JSON-ready."""
        return {
            "original_prompt": self.original_prompt,
            "prompt": self.prompt,
            "seed": self.seed,
            "max_iterations": self.max_iterations,
            "iteration": self.iteration,
            "history": self.history,
            "best_prompt": self.best_prompt,
            "best_score": self.best_score,
            "best_iteration": self.best_iteration,
            "best_index": self.best_index,
            "best_critique": self.best_critique,
            "final_prompt": self.final_prompt,
            "since_improved": self.since_improved,
            "warnings": self.warnings,
            "stop_reason": self.stop_reason,
            "error": self.error,
        }


@dataclass
class LoopResult:
    """What a finished loop hands back.

    best_images: the single best image (a batch of one, same type as the generator's output) of
    the iteration with the highest overall score, earlier iterations winning ties; best_index is
    its position in that iteration's batch. final_images / all_images: whole batches as generated.
    best_score is None when no iteration could be scored (then best is the first image).
    """

    best_images: Any
    best_prompt: str | None
    best_score: float | None
    best_iteration: int | None
    best_index: int | None
    final_images: Any
    final_prompt: str | None
    all_images: list[Any]
    history: list[dict[str, Any]]
    iterations_run: int
    stop_reason: str | None
    warnings: list[str]
    error: str | None = None

    @classmethod
    def from_state(cls, state: LoopState) -> "LoopResult":
        """The result view of a (finished or cancelled) LoopState."""
        return cls(
            best_images=state.best_images,
            best_prompt=state.best_prompt,
            best_score=state.best_score,
            best_iteration=state.best_iteration,
            best_index=state.best_index,
            final_images=state.final_images,
            final_prompt=state.final_prompt,
            all_images=list(state.all_images),
            history=list(state.history),
            iterations_run=state.iteration,
            stop_reason=state.stop_reason,
            warnings=list(state.warnings),
            error=state.error,
        )

    def history_json(self, **kwargs: Any) -> str:
        """The history as JSON text (for the node's history output and the CLI's files)."""
        return history_json(self.history, **kwargs)

    def summary(self) -> str:
        """A few lines for a ComfyUI node's text display or the CLI."""
        return summarize(self.history, self.stop_reason, self.best_iteration, self.error)


def history_json(history: list[dict[str, Any]], **kwargs: Any) -> str:
    """JSON text of history entries."""
    kwargs.setdefault("ensure_ascii", False)
    return json.dumps(history, **kwargs)


_STOP_TEXT = {
    "good_enough": "stopped: good enough",
    "patience": "stopped: the score stopped improving",
    "max_iterations": "stopped: reached max iterations",
    "no_change": "stopped: the prompt could not be changed, another run would repeat the last one",
    "critic_error": "stopped: the critic failed",
    "generator_error": "stopped: the generator failed",
    "cancelled": "cancelled",
}


def summarize(history: list[dict[str, Any]], stop_reason: str | None, best_iteration: int | None,
              error: str | None = None) -> str:
    """One line per iteration (score, decision) and a last line saying why the loop stopped."""
    lines = []
    for e in history:
        score = "-" if e.get("overall") is None else f"{e['overall']:.3f}"
        mark = " *best*" if e.get("iteration") == best_iteration else ""
        what = e.get("error") or (e.get("decision") or {}).get("reason", "")
        lines.append(f"#{e.get('iteration', 0) + 1} seed {e.get('seed')} score {score}{mark}: {what}")
    if stop_reason:
        lines.append(_STOP_TEXT.get(stop_reason, stop_reason) + (f" ({error})" if error else ""))
    return "\n".join(lines)
