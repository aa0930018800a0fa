"""Best-of-N node: keep the best k images of a batch by their own absolute critique scores."""
from __future__ import annotations

import json

from comfy_api.latest import io

from ..engine.select import rank, select_images, select_latent, select_mask
from .common import checks_combos, generation_inputs, settings_from, template_arg
from .host import node_callbacks, run_interruptible, show_text
from .types import CATEGORY, Critic, CritiqueBatch, as_critic, as_critiques, float_score


def parse_weights(text: str) -> dict[str, float]:
    """Aspect weights from text like ``text_faithfulness=2, text_rendering=0``."""
    weights: dict[str, float] = {}
    for part in (text or "").replace("\n", ",").split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise ValueError(f"aspect_weights: '{part.strip()}' is not name=number (e.g. text_faithfulness=2)")
        k, v = part.split("=", 1)
        try:
            weights[k.strip()] = float(v)
        except ValueError:
            raise ValueError(f"aspect_weights: '{v.strip()}' is not a number") from None
    return weights


class BestOfNNode(io.ComfyNode):
    """Pick the best k images of a batch."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsBestOfN",
            display_name="RationalRewards Best-of-N",
            category=CATEGORY,
            description="Keeps the best k images of a batch, best first. Each image is ranked by its own absolute "
            "critique score (never relative to the rest of the batch), optionally with aspect weights. Matching "
            "LATENT and MASK rows are passed through. Give it the Critic's critiques, or a critic to make them.",
            inputs=[
                io.Image.Input("images", tooltip="The candidate images (one batch)."),
                io.Int.Input("k", default=1, min=1, max=64, tooltip="How many of the best images to keep."),
                io.String.Input("aspect_weights", default="",
                                tooltip="Optional weights, e.g. 'text_faithfulness=2, text_rendering=0' (missing = 1; "
                                "0 ignores an aspect)."),
                CritiqueBatch.Input("critique", optional=True,
                                    tooltip="The Critic node's critiques of these images (same batch order)."),
                Critic.Input("critic", optional=True, tooltip="Or a critic to critique the images here."),
                io.String.Input("prompt", multiline=True, default="", optional=True,
                                tooltip="With a critic: the prompt the images were made from."),
                io.Latent.Input("latent", optional=True, tooltip="Optional LATENT of the same batch: rows follow."),
                io.Mask.Input("mask", optional=True, tooltip="Optional MASK of the same batch: rows follow."),
                *generation_inputs(),
            ],
            outputs=[
                io.Image.Output("best_images", display_name="images", tooltip="The best k images, best first."),
                io.String.Output("indices", display_name="indices",
                                 tooltip="Their positions in the input batch (0-based), comma-separated."),
                io.Float.Output("scores", display_name="scores", is_output_list=True,
                                tooltip="Their scores 0-1, best first (-1 when a critique could not be scored)."),
                io.Latent.Output("best_latent", display_name="latent", tooltip="Matching LATENT rows (if given)."),
                io.Mask.Output("best_mask", display_name="mask", tooltip="Matching MASK rows (if given)."),
                CritiqueBatch.Output("best_critique", display_name="critique", tooltip="The kept images' critiques."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, images, k, aspect_weights, seed, max_new_tokens, temperature, critique=None, critic=None,
                prompt=None, latent=None, mask=None, template=None) -> io.NodeOutput:
        n = int(images.shape[0])
        if critique is not None:
            critiques = as_critiques(critique, "critique", pairwise=False)
        elif critic is not None:
            backend = as_critic(critic)
            critiques = run_interruptible(lambda: backend.critique(
                images, prompt or "", settings=settings_from(seed, max_new_tokens, temperature),
                callbacks=node_callbacks(cls.hidden.unique_id, n), template=template_arg(template)))
        else:
            raise ValueError("Best-of-N needs the images' critiques: connect 'critique' from a Critic node, or a "
                             "'critic' (with the prompt) to critique them here")
        if len(critiques) != n:
            raise ValueError(f"'critique' holds {len(critiques)} critiques but 'images' has {n} images; connect the "
                             "critiques of this same batch")
        ranked = rank(list(critiques), weights=parse_weights(aspect_weights), k=int(k))
        idx = [r.index for r in ranked]
        out_latent = select_latent(latent, idx, n) if latent is not None else None
        out_mask = select_mask(mask, idx, n) if mask is not None else None
        lines = [f"#{j + 1}: image {r.index} score {'?' if r.score is None else f'{r.score:.3f}'}"
                 for j, r in enumerate(ranked)]
        return io.NodeOutput(
            select_images(images, idx), ",".join(map(str, idx)), [float_score(r.score) for r in ranked],
            out_latent, out_mask, tuple(r.critique for r in ranked),
            ui=show_text(cls.hidden.unique_id, "\n".join(lines) + "\n" + json.dumps({"indices": idx})),
        )
