"""Prompt Refiner node: critique + prompt -> the prompt to use next, whether it changed, and why."""
from __future__ import annotations

from comfy_api.latest import io

from ..engine.refine import DEFAULT_REWRITE_INSTRUCTION, make_critic_rewriter, refine_prompt
from ..engine.select import rank
from ..models.format.scoring import REFINE_RULES
from .common import checks_combos, settings_from
from .host import node_callbacks, run_interruptible, show_text
from .types import CATEGORY, Critic, CritiqueBatch, as_critic, as_critiques


def keep_phrase_list(text: str) -> list[str]:
    """Must-keep phrases: one per line or comma-separated."""
    parts = [p.strip() for line in (text or "").splitlines() for p in line.split(",")]
    return [p for p in parts if p]


class PromptRefinerNode(io.ComfyNode):
    """Decide the next prompt from a critique."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="RationalRewardsPromptRefiner",
            display_name="RationalRewards Prompt Refiner",
            category=CATEGORY,
            description="Turns a critique into the prompt to use next. By the paper's rule it refines only when "
            "some aspect scored below the threshold, taking the critic's refined prompt (or a rewrite by the "
            "critic itself), and keeps your ComfyUI prompt syntax: (weights:1.2), embedding:name, <lora:...> tags "
            "and must-keep phrases. For a batch it uses the best-scored image's critique.",
            inputs=[
                io.String.Input("prompt", multiline=True, default="",
                                tooltip="The prompt the critiqued image was generated from."),
                CritiqueBatch.Input("critique", tooltip="From the Critic node (for a batch, the best-scored "
                                    "image's critique is used)."),
                io.Combo.Input("rule", options=list(REFINE_RULES), default="paper",
                               tooltip="paper: refine when any applicable aspect < threshold. upstream: refine "
                               "unless Text Faithfulness and Physical Quality are both >= threshold. always: "
                               "always take the refined prompt."),
                io.Float.Input("threshold", default=3.0, min=1.0, max=4.0, step=0.1,
                               tooltip="Score (1-4) an aspect must reach to count as good; 3.0 in the paper."),
                io.Combo.Input("source", options=["refined_request", "critic_rewrite"], default="refined_request",
                               tooltip="refined_request: the critic's own refined prompt. critic_rewrite: ask the "
                               "connected critic (text only) to rewrite the prompt with the instruction below."),
                io.String.Input("keep_phrases", multiline=True, default="",
                                tooltip="Phrases that must stay in the prompt (one per line or comma-separated); "
                                "put back when the refined text dropped them."),
                io.Combo.Input("token_window", options=["off", "77 (SD1.5/SDXL CLIP)"], default="off",
                               tooltip="Warn when the result exceeds the 77-token window of SD1.5/SDXL text "
                               "encoders (an estimate of CLIP's tokenizer)."),
                io.Combo.Input("overflow", options=["keep", "trim"], default="keep",
                               tooltip="With the token window on: keep the long prompt (warn only) or trim it at a "
                               "word boundary to fit."),
                Critic.Input("critic", optional=True,
                             tooltip="Only for source = critic_rewrite: the critic whose language model rewrites."),
                io.String.Input("rewrite_instruction", multiline=True, default=DEFAULT_REWRITE_INSTRUCTION,
                                optional=True, tooltip="Instruction for critic_rewrite (the system message)."),
            ],
            outputs=[
                io.String.Output("next_prompt", display_name="prompt", tooltip="The prompt to use next."),
                io.Boolean.Output("changed", display_name="changed", tooltip="True when the prompt was refined."),
                io.String.Output("reason", display_name="reason", tooltip="Why: the decision, with the scores."),
            ],
            hidden=[io.Hidden.unique_id],
        )

    @classmethod
    @checks_combos
    def execute(cls, prompt, critique, rule, threshold, source, keep_phrases, token_window, overflow,
                critic=None, rewrite_instruction=None) -> io.NodeOutput:
        critiques = as_critiques(critique, "critique", pairwise=False)
        chosen = critiques[0] if len(critiques) == 1 else rank(list(critiques), k=1)[0].critique
        rewrite = None
        if source == "critic_rewrite":
            if critic is None:
                raise ValueError("source is critic_rewrite but no critic is connected: connect the 'critic' input "
                                 "or choose source = refined_request")
            backend = as_critic(critic)
            rewrite = make_critic_rewriter(backend, rewrite_instruction or DEFAULT_REWRITE_INSTRUCTION,
                                           settings_from(42, 512, 0.0), node_callbacks(cls.hidden.unique_id, 1))
        decision = run_interruptible(lambda: refine_prompt(
            prompt, chosen, rule=rule, threshold=threshold, keep_phrases=keep_phrase_list(keep_phrases),
            token_limit=77 if token_window != "off" else None, overflow=overflow, rewrite=rewrite))
        text = decision.reason + "".join(f"\nwarning: {w}" for w in decision.warnings)
        return io.NodeOutput(decision.next_prompt, decision.changed, text, ui=show_text(cls.hidden.unique_id, text))
