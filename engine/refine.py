"""The refine policy: (prompt, Critique) -> Decision(next_prompt, changed, reason, warnings).

Pure: it decides with the rules of models/format/scoring.py, takes the new text from the critic's
refined request (or from a ``rewrite`` callable, e.g. the critic's own text-only generation with a
user-editable instruction), puts back the ComfyUI syntax and must-keep phrases the rewrite dropped
(prompt_syntax.restore_syntax) and checks the CLIP token window. The reason is written for a
ComfyUI user: it says what was decided and why, with the numbers.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ..models.format.aspects import ASPECT_TITLES
from ..models.format.critique import Critique
from ..models.format.requests import build_text_request
from ..models.format.scoring import DEFAULT_THRESHOLD, REFINE_RULES, needs_refinement
from .prompt_syntax import fit_token_window, plain_text, restore_syntax

#: Instruction (system message) for rewriting a prompt with the critic's language model. Users may
#: replace it; the prompt and the critique are given in the user message (build_rewrite_messages).
DEFAULT_REWRITE_INSTRUCTION = (
    "You improve prompts for an image generator. You are given the current prompt and a critique of "
    "the image it produced. Write one improved prompt that keeps everything the current prompt asks "
    "for, fixes the weaknesses the critique names by describing the wanted result explicitly, and "
    "adds nothing the user did not ask for. Keep the style of the current prompt and keep it short "
    "(at most about 60 words). Answer with the improved prompt only: no explanation, no quotes, no "
    "heading."
)

_RE_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.S | re.I)
_RE_LABEL = re.compile(r"^\s*(?:#+\s*)?(?:\*\*)?(?:refined|improved|new|rewritten)?\s*(?:prompt|request)"
                       r"\s*(?:\*\*)?\s*:\s*(?:\*\*)?\s*", re.I)


class RefineOptionError(ValueError):
    """A refine option with a value the policy cannot use; the message names the option."""


@dataclass(frozen=True)
class Decision:
    """What the refiner decided. ``needs_refinement`` is the rule's verdict (None: unreadable)."""

    next_prompt: str
    changed: bool
    reason: str
    warnings: tuple[str, ...] = ()
    needs_refinement: bool | None = None
    rule: str = "paper"
    threshold: float = DEFAULT_THRESHOLD

    def to_dict(self) -> dict[str, Any]:
        return {
            "next_prompt": self.next_prompt,
            "changed": self.changed,
            "reason": self.reason,
            "warnings": list(self.warnings),
            "needs_refinement": self.needs_refinement,
            "rule": self.rule,
            "threshold": self.threshold,
        }


def _fmt(x: float) -> str:
    return f"{x:.1f}" if abs(x * 10 - round(x * 10)) < 1e-9 else f"{x:.2f}"


def _rule_aspects(critique: Critique, rule: str) -> list[str]:
    if rule == "upstream":
        return ["text_faithfulness", "physical_quality"]
    return [n for n, a in critique.aspects.items() if not a.not_applicable]


def _verdict_text(critique: Critique, rule: str, threshold: float, verdict: bool | None) -> str:
    """The why of a verdict: the low aspects, or the confirmation that all are high enough."""
    t = _fmt(threshold)
    suffix = " (upstream rule: only Text Faithfulness and Physical and Visual Quality count)" if rule == "upstream" else ""
    if rule == "always":
        return "rule 'always'"
    names = _rule_aspects(critique, rule)
    if verdict:
        low = [f"{ASPECT_TITLES[n]} {_fmt(critique.score(n))} < {t}" for n in names
               if critique.score(n) is not None and critique.score(n) < threshold]
        return ", ".join(low) + suffix
    if verdict is False:
        what = "all aspects" if rule == "paper" else "Text Faithfulness and Physical and Visual Quality"
        return f"{what} >= {t}" + suffix
    missing = [ASPECT_TITLES.get(n, n) for n in names
               if critique.aspects.get(n) is None or (critique.score(n) is None and not critique.aspects[n].not_applicable)]
    problems = critique.problems[0] if critique.problems else ""
    detail = f"no score for {', '.join(missing)}" if missing else "no aspect could be scored"
    return f"the critique could not be read ({detail}{'; ' + problems if problems else ''})"


def clean_rewrite(text: str | None) -> str:
    """Tidy a language model's rewrite: drop a <think> block, a "Refined prompt:" label, quotes."""
    if not text:
        return ""
    s = _RE_THINK.sub("", text).strip()
    s = _RE_LABEL.sub("", s, count=1).strip()
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'`":
        s = s[1:-1].strip()
    return s


def refine_prompt(
    prompt: str,
    critique: Critique,
    *,
    rule: str = "paper",
    threshold: float = DEFAULT_THRESHOLD,
    keep_phrases=(),
    token_limit: int | None = None,
    overflow: str = "keep",
    rewrite: Callable[[str, Critique], str] | None = None,
    token_counter: Callable[[str], int] | None = None,
) -> Decision:
    """Decide the next prompt from ``critique`` of the image made with ``prompt``.

    rule: "paper" (refine when any applicable aspect < threshold), "upstream" (refine unless Text
    Faithfulness and Physical and Visual Quality are both >= threshold) or "always".
    New text: ``rewrite(plain_prompt, critique)`` when given (it sees the prompt without ComfyUI
    syntax), else ``critique.refined_request``. Missing or empty text keeps ``prompt``. The syntax of
    ``prompt`` and ``keep_phrases`` are put back into the new text; with ``token_limit`` (77 for
    SD1.5/SDXL) the result is checked against that CLIP window and, with ``overflow="trim"``,
    trimmed to fit (``token_counter`` replaces the built-in estimate). A kept prompt is checked
    but never trimmed. ``rewrite`` exceptions propagate (the loop treats them as critic failures).
    """
    if rule not in REFINE_RULES:
        raise RefineOptionError(f"refine rule {rule!r} is unknown: use one of {', '.join(REFINE_RULES)}")
    if not 1.0 <= float(threshold) <= 4.0:
        raise RefineOptionError(f"threshold must be within 1.0-4.0 (the score scale), got {threshold}")
    if overflow not in ("keep", "trim"):
        raise RefineOptionError(f"overflow must be 'keep' or 'trim', got {overflow!r}")
    if not isinstance(critique, Critique):
        raise RefineOptionError(
            f"critique must be a RationalRewards Critique (from the Critic), got {type(critique).__name__}; "
            "a Comparison (pairwise) has no refined request"
        )
    keep_phrases = tuple(str(k).strip() for k in keep_phrases if str(k).strip())
    verdict = needs_refinement(critique, rule, threshold)
    why = _verdict_text(critique, rule, threshold, verdict)
    common = dict(needs_refinement=verdict, rule=rule, threshold=float(threshold))

    def kept(reason: str) -> Decision:
        warnings: list[str] = []
        if token_limit:
            _, warnings = fit_token_window(prompt, token_limit, "keep", keep_phrases, token_counter)
        return Decision(prompt, False, reason, tuple(warnings), **common)

    if verdict is None:
        return kept(f"kept: {why}, so the prompt stays")
    if verdict is False:
        return kept(f"kept: {why}")
    if rewrite is not None:
        source = "the rewrite"
        new_text = clean_rewrite(rewrite(plain_text(prompt) or prompt, critique))
    else:
        source = "the critic's refined request"
        new_text = (critique.refined_request or "").strip()
    if not new_text:
        empty = any(p.startswith("empty_refined_request") for p in critique.problems)
        if rewrite is None and critique.refined_request is None and not empty:
            cause = "the critic wrote no refined request (was the answer cut off by max_new_tokens?)"
        else:
            cause = f"{source} is empty"
        return kept(f"kept: {why}, but {cause}; the original prompt stands")
    next_prompt, notes = restore_syntax(prompt, new_text, keep_phrases)
    warnings = list(notes)
    if token_limit:
        next_prompt, window = fit_token_window(next_prompt, token_limit, overflow, keep_phrases, token_counter)
        warnings.extend(window)
    if _same(next_prompt, prompt):
        return Decision(prompt, False, f"kept: {why}, but {source} equals the current prompt",
                        tuple(warnings), **common)
    return Decision(next_prompt, True, f"refined: {why}", tuple(warnings), **common)


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).lower() == " ".join(b.split()).lower()


def _critique_text(critique: Critique) -> str:
    lines = []
    for name, a in critique.aspects.items():
        title = ASPECT_TITLES.get(name, name)
        score = "N/A" if a.not_applicable else ("not scored" if a.score is None else f"{_fmt(a.score)}/4")
        just = f": {a.justification.strip()}" if a.justification else ""
        lines.append(f"- {title} ({score}){just}")
    if critique.summary:
        lines.append(f"Summary: {critique.summary.strip()}")
    if critique.refinement_comments:
        lines.append(f"Suggested changes: {critique.refinement_comments.strip()}")
    if critique.refined_request:
        lines.append(f"The critic's own rewrite: {critique.refined_request.strip()}")
    return "\n".join(lines)


def build_rewrite_messages(instruction: str | None, prompt: str, critique: Critique) -> list[dict[str, Any]]:
    """Text-only chat asking the critic's language model to rewrite ``prompt`` after ``critique``.

    ``instruction`` is the system message (DEFAULT_REWRITE_INSTRUCTION when empty); the user
    message holds the prompt (without ComfyUI syntax) and the critique's scores and reasons.
    """
    system = instruction if instruction and instruction.strip() else DEFAULT_REWRITE_INSTRUCTION
    user = (
        f"Current prompt:\n{plain_text(prompt) or prompt}\n\n"
        f"Critique of the image it produced (scores 1-4, 4 is best):\n{_critique_text(critique)}\n\n"
        "Write the improved prompt."
    )
    return build_text_request(system, user)


def make_critic_rewriter(critic: Any, instruction: str | None = None, settings: Any = None,
                         callbacks: Any = None) -> Callable[[str, Critique], str]:
    """A ``rewrite`` callable that asks ``critic`` (a CriticBackend: ``generate_text``) for the prompt."""

    def rewrite(prompt: str, critique: Critique) -> str:
        return critic.generate_text(build_rewrite_messages(instruction, prompt, critique), settings, callbacks).text

    return rewrite
