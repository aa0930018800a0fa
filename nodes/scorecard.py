"""Score Card (critique drawn beside the picture) and Save Image with Critique (PNG metadata) nodes."""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from comfy_api.latest import io

from ..models.images import to_rgb
from ..report.pngmeta import save_png_with_critique
from ..report.scorecard import scorecards_batch
from .common import checks_combos
from .types import CATEGORY, CritiqueBatch, as_critiques


def _to_tensor(pils) -> torch.Tensor:
    arr = np.stack([np.asarray(p.convert("RGB"), dtype=np.float32) / 255.0 for p in pils])
    return torch.from_numpy(arr)


def _match(critiques: tuple, n: int, name: str = "critique") -> list:
    if len(critiques) == n:
        return list(critiques)
    if len(critiques) == 1:
        return list(critiques) * n
    raise ValueError(f"'{name}' holds {len(critiques)} critiques but 'image' has {n} images; connect the critiques "
                     "of this same batch (or a single critique for all)")


class ScoreCardNode(io.ComfyNode):
    """Draw each critique beside its picture."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsScoreCard",
            display_name="RationalRewards Score Card",
            category=CATEGORY,
            description="Draws each image beside its critique: colour-coded score bars per aspect, the overall "
            "score and the short reasons, legible at 512 px. Connect to Preview Image or Save Image.",
            inputs=[
                io.Image.Input("image", tooltip="The critiqued images (a pairwise comparison needs A then B, or a "
                               "batch of 2 per comparison)."),
                CritiqueBatch.Input("critique", tooltip="From Critic, Compare or Best-of-N."),
                io.String.Input("title", default="", tooltip="Optional title printed on each card."),
            ],
            outputs=[io.Image.Output("score_card", display_name="score_card",
                                     tooltip="One card per image, as an IMAGE batch.")],
        )

    @classmethod
    @checks_combos
    def execute(cls, image, critique, title) -> io.NodeOutput:
        critiques = as_critiques(critique, "critique")
        # any size: the critic's limits belong to the critic, a card can show a 1x1 or a 4000x16 picture
        pils = [to_rgb(image[i], f"image[{i}]") for i in range(int(image.shape[0]))]
        pairwise = any(c.kind.startswith("pairwise") for c in critiques)
        if pairwise:
            if len(pils) != 2 * len(critiques) and not (len(pils) == 2 and len(critiques) == 1):
                raise ValueError(f"a comparison card needs 2 images per comparison (A, B); got {len(pils)} images "
                                 f"for {len(critiques)} comparison(s)")
            groups = [[pils[2 * i], pils[2 * i + 1]] for i in range(len(critiques))]
            cards = scorecards_batch(groups, list(critiques), title=title or None)
        else:
            cards = scorecards_batch(pils, _match(critiques, len(pils)), title=title or None)
        return io.NodeOutput(_to_tensor(cards))


class SaveWithCritiqueNode(io.ComfyNode):
    """Save images as PNG with their critique JSON in the metadata."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsSaveImage",
            display_name="RationalRewards Save Image (with critique)",
            category=CATEGORY,
            description="Saves images to the output folder as PNG, with ComfyUI's prompt and workflow and the "
            "critique JSON (chunk 'rationalrewards') in the metadata, so each file carries its critique.",
            is_output_node=True,
            inputs=[
                io.Image.Input("images", tooltip="The images to save."),
                CritiqueBatch.Input("critique", tooltip="Their critiques (one per image, or one for all)."),
                io.String.Input("filename_prefix", default="RationalRewards",
                                tooltip="File name prefix; may include a subfolder (e.g. loops/cat)."),
            ],
            outputs=[],
        )

    @classmethod
    @checks_combos
    def execute(cls, images, critique, filename_prefix) -> io.NodeOutput:
        import folder_paths

        critiques = _match(as_critiques(critique, "critique"), int(images.shape[0]))
        out_dir = folder_paths.get_output_directory()
        h, w = int(images.shape[1]), int(images.shape[2])
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(filename_prefix, out_dir, w, h)
        extra = {}
        if cls.hidden.prompt is not None:
            extra["prompt"] = json.dumps(cls.hidden.prompt)
        for key, value in (cls.hidden.extra_pnginfo or {}).items():
            extra[key] = json.dumps(value)
        saved = []
        for i, c in enumerate(critiques):
            fname = f"{name}_{counter + i:05}_.png"
            # any size ComfyUI's own SaveImage saves: the critic's limits do not apply to saving
            save_png_with_critique(to_rgb(images[i], f"images[{i}]"),
                                   os.path.join(folder, fname), c, extra)
            saved.append({"filename": fname, "subfolder": subfolder, "type": "output"})
        return io.NodeOutput(ui={"images": saved})
