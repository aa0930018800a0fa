"""Critic (one critique per image) and Compare (A/B judgement) nodes."""
from __future__ import annotations

from comfy_api.latest import io

from .common import (aspect_float, cat_images, checks_combos, face_summary, first, generation_inputs,
                     score_summary, settings_from, template_arg)
from .host import node_callbacks, run_interruptible, show_text
from .types import CATEGORY, Critic, CritiqueBatch, as_critic, float_score

ASPECT_OUTPUTS = ("text_faithfulness", "image_faithfulness", "physical_quality", "text_rendering")


class CriticNode(io.ComfyNode):
    """Critique every image of a batch against its prompt."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsCritic",
            display_name="RationalRewards Critic",
            category=CATEGORY,
            description="Critiques each image of an IMAGE batch against its prompt: per-aspect reasons and 1-4 "
            "scores, an overall score, and a refined prompt that fixes what it found. With a source image it "
            "judges an edit (use the Edit critic). Streams the critique onto the node while it writes.",
            is_input_list=True,
            inputs=[
                Critic.Input("critic", tooltip="From RationalRewards Model Loader or Remote Critic."),
                io.Image.Input("image", tooltip="The generated (or edited) images; every image of the batch is "
                               "critiqued on its own."),
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The prompt the images were made from: one for all, or a list with one per "
                                "image (from a list output)."),
                io.Image.Input("source_image", optional=True,
                               tooltip="For image edits: the source image (one for all, or one per edited image). "
                               "Connecting it makes this an edit critique."),
                *generation_inputs(),
            ],
            outputs=[
                CritiqueBatch.Output("critique", display_name="critique",
                                     tooltip="All critiques of the batch, for Prompt Refiner, Best-of-N, Score Card."),
                io.String.Output("critique_text", display_name="critique_text", is_output_list=True,
                                 tooltip="The critic's full answer, one per image."),
                io.String.Output("refined_prompt", display_name="refined_prompt", is_output_list=True,
                                 tooltip="The critic's refined prompt, one per image (the original prompt when the "
                                 "answer had none or was cut off)."),
                io.Float.Output("overall", display_name="overall", is_output_list=True,
                                tooltip="Overall score 0-1 per image (upstream formula); -1 when it could not be read."),
                *[io.Float.Output(n, display_name=n, is_output_list=True,
                                  tooltip=f"{n.replace('_', ' ')} score 1-4 per image; 0 = N/A (not judged), "
                                  "-1 = could not be read.") for n in ASPECT_OUTPUTS],
                io.Boolean.Output("needs_refinement", display_name="needs_refinement", is_output_list=True,
                                  tooltip="Per image: some applicable aspect scored below 3.0 (the paper's rule). "
                                  "False when the critique could not be read."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, critic, image, prompt, seed, max_new_tokens, temperature, source_image=None,
                template=None) -> io.NodeOutput:
        backend = as_critic(first(critic))
        images = cat_images(image)
        sources = cat_images(source_image) if source_image is not None else None
        prompts = [p for p in (prompt if isinstance(prompt, list) else [prompt])]
        settings = settings_from(first(seed), first(max_new_tokens), first(temperature))
        n = len(images) if images is not None else 0
        callbacks = node_callbacks(cls.hidden.unique_id, n)
        critiques = run_interruptible(lambda: backend.critique(
            images, prompts if len(prompts) > 1 else prompts[0], sources=sources, settings=settings,
            callbacks=callbacks, template=template_arg(template)))
        per_prompt = prompts if len(prompts) > 1 else prompts * len(critiques)
        refined = [c.refined_request or p.strip() for c, p in zip(critiques, per_prompt)]
        return io.NodeOutput(
            tuple(critiques),
            [c.raw for c in critiques],
            refined,
            [float_score(c.overall) for c in critiques],
            *[[aspect_float(c, name) for c in critiques] for name in ASPECT_OUTPUTS],
            [bool(c.needs_refinement) for c in critiques],
            ui=show_text(cls.hidden.unique_id, face_summary(critiques)),
        )


class CompareNode(io.ComfyNode):
    """Judge image A against image B for the same prompt."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsCompare",
            display_name="RationalRewards Compare A/B",
            category=CATEGORY,
            description="Pairwise judgement: scores image A and image B on every aspect, names a winner per aspect "
            "and overall (by the sums of the aspect scores). Batches are compared pair by pair. With a source "
            "image it compares two edits.",
            inputs=[
                Critic.Input("critic", tooltip="From RationalRewards Model Loader or Remote Critic."),
                io.Image.Input("image_a", tooltip="Candidate A (a batch is compared pair by pair with B)."),
                io.Image.Input("image_b", tooltip="Candidate B."),
                io.String.Input("prompt", multiline=True, default="", tooltip="The prompt both images were made from."),
                io.Image.Input("source_image", optional=True,
                               tooltip="For image edits: the source image both candidates edited."),
                *generation_inputs(),
            ],
            outputs=[
                CritiqueBatch.Output("comparison", display_name="comparison",
                                     tooltip="The comparisons (for Score Card or saving)."),
                io.String.Output("winner", display_name="winner",
                                 tooltip="Overall winner of the first pair: A, B, tie, or unknown."),
                io.Float.Output("overall_a", display_name="overall_a", tooltip="A's overall 0-1 (-1 unknown)."),
                io.Float.Output("overall_b", display_name="overall_b", tooltip="B's overall 0-1 (-1 unknown)."),
                io.String.Output("scores", display_name="scores",
                                 tooltip="Per-aspect scores of A and B and the winners, as text."),
                io.String.Output("text", display_name="text", tooltip="The critic's full answer(s)."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, critic, image_a, image_b, prompt, seed, max_new_tokens, temperature, source_image=None,
                template=None) -> io.NodeOutput:
        backend = as_critic(critic)
        settings = settings_from(seed, max_new_tokens, temperature)
        n = max(int(image_a.shape[0]), int(image_b.shape[0])) if hasattr(image_a, "shape") else 1
        callbacks = node_callbacks(cls.hidden.unique_id, n)
        results = run_interruptible(lambda: backend.compare(
            image_a, image_b, prompt, sources=source_image, settings=settings, callbacks=callbacks,
            template=template_arg(template)))
        first_r = results[0]
        table = "\n\n".join(score_summary(r) for r in results)
        return io.NodeOutput(
            tuple(results), first_r.winner or "unknown", float_score(first_r.overall_a),
            float_score(first_r.overall_b), table, "\n\n".join(r.raw for r in results),
            ui=show_text(cls.hidden.unique_id, face_summary(results)),
        )
