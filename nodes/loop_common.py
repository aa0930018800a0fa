"""What the Simple Loop and the Graph Loop End share: the refiner settings inputs, the seven outputs,
and turning a LoopResult into those outputs and the text shown on the node."""
from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import io, ui

from ..engine.history import LoopResult
from ..engine.loop import MAX_ITERATIONS
from ..models.format.scoring import REFINE_RULES
from .refine import keep_phrase_list
from .types import UNKNOWN

LOOP_CATEGORY = "RationalRewards/loops"
TOKEN_WINDOWS = ["off", "77 (SD1.5/SDXL CLIP)"]


def max_iterations_input() -> Any:
    # The widget accepts 0 and values above 20 on purpose: the loop clamps them to 1-20 and says so on
    # the node, rather than ComfyUI refusing the whole prompt with a validation error.
    return io.Int.Input("max_iterations", default=3, min=0, max=1000,
                        tooltip=f"Most generate-critique-refine iterations (1-{MAX_ITERATIONS}; values outside are "
                        "clamped, with a message on the node). The loop stops earlier when the critic finds nothing "
                        "to refine or the score stops improving.")


def seed_policy_input() -> Any:
    return io.Combo.Input("seed_policy", options=["fixed", "increment"], default="fixed",
                          tooltip="fixed: every iteration samples with the same seed, so only the prompt changes. "
                          "increment: seed + 1 per iteration (a new composition each time).")


def refine_inputs() -> list:
    """Refiner settings: the same meaning as on the Prompt Refiner node, plus the patience stop rule."""
    return [
        io.Combo.Input("rule", options=list(REFINE_RULES), default="paper",
                       tooltip="paper: refine while any applicable aspect < threshold (stop when all reach it). "
                       "upstream: only Text Faithfulness and Physical Quality count. always: refine every time "
                       "(runs to max_iterations or patience)."),
        io.Float.Input("threshold", default=3.0, min=1.0, max=4.0, step=0.1,
                       tooltip="Score (1-4) an aspect must reach to count as good; 3.0 in the paper."),
        io.Int.Input("patience", default=0, min=0, max=20,
                     tooltip="Stop after this many iterations without a better overall score; 0 = off."),
        io.String.Input("keep_phrases", multiline=True, default="",
                        tooltip="Phrases that must stay in every refined prompt (one per line or comma-separated)."),
        io.Combo.Input("token_window", options=TOKEN_WINDOWS, default="off",
                       tooltip="Check refined prompts against the 77-token window of SD1.5/SDXL text encoders."),
        io.Combo.Input("overflow", options=["keep", "trim"], default="keep",
                       tooltip="With the token window on: keep a long prompt (warn only) or trim it to fit."),
    ]


def refine_config(rule: str, threshold: float, patience: int, keep_phrases: str, token_window: str,
                  overflow: str) -> dict:
    """LoopConfig keyword arguments for the refiner settings inputs."""
    return dict(rule=rule, threshold=float(threshold), patience=int(patience),
                keep_phrases=tuple(keep_phrase_list(keep_phrases)),
                token_limit=77 if token_window != "off" else None, overflow=overflow)


def loop_outputs() -> list:
    return [
        io.Image.Output("best_image", display_name="best_image",
                        tooltip="The best-scored image of all iterations (earlier wins ties)."),
        io.Image.Output("final_image", display_name="final_image", tooltip="The last iteration's images."),
        io.Image.Output("all_images", display_name="all_images",
                        tooltip="Every iteration's images as one batch, in order."),
        io.String.Output("best_prompt", display_name="best_prompt", tooltip="The prompt that made the best image."),
        io.String.Output("history", display_name="history",
                         tooltip="JSON: why the loop stopped, warnings, errors, and one entry per iteration (prompt, "
                         "seed, scores, critique, decision, seconds)."),
        io.Int.Output("iterations", display_name="iterations", tooltip="How many iterations ran."),
        io.Float.Output("best_score", display_name="best_score",
                        tooltip="Overall score (0-1) of the best image; -1 when no iteration could be scored."),
    ]


def image_batch(images: list) -> Any:
    """Every iteration's IMAGE as one batch; images of another size are resized to the first's."""
    import torch

    images = [i for i in images if i is not None]
    if not images:
        return None
    h, w = images[0].shape[1:3]
    channels = min(int(im.shape[-1]) for im in images)  # RGB and RGBA mixed: keep RGB
    same = []
    for im in images:
        if im.shape[1:3] != (h, w):  # a body that changes size between iterations
            im = torch.nn.functional.interpolate(im.movedim(-1, 1), size=(h, w), mode="bilinear",
                                                 align_corners=False).movedim(1, -1)
        same.append(im[..., :channels])
    return torch.cat(same, dim=0)


def history_text(result: LoopResult) -> str:
    """The history output: a JSON object with the run's outcome and its per-iteration entries."""
    return json.dumps({
        "stop_reason": result.stop_reason, "error": result.error, "warnings": result.warnings,
        "best_iteration": result.best_iteration, "best_score": result.best_score,
        "best_prompt": result.best_prompt, "iterations_run": result.iterations_run, "history": result.history,
    }, ensure_ascii=False, default=str)


def node_text(result: LoopResult) -> str:
    """What the node shows when the loop is over: warnings, one line per iteration, why it stopped."""
    lines = [f"warning: {w}" for w in result.warnings]
    lines.append(result.summary())
    if result.error:
        lines.append(f"error: {result.error} (the outputs hold the best result so far)")
    return "\n".join(lines)


def result_outputs(result: LoopResult) -> tuple:
    """The seven output values of a finished loop."""
    best_score = UNKNOWN if result.best_score is None else float(result.best_score)
    return (result.best_images, result.final_images, image_batch(result.all_images), result.best_prompt or "",
            history_text(result), int(result.iterations_run), best_score)


def result_ui(text: str) -> Any:
    return ui.PreviewText(text)
