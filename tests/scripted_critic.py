"""A test double of the critic backend interface: answers with scripted RationalRewards texts so
that the real request building, cache and parser run, without a model."""
from __future__ import annotations

from rationalrewards.models.backends.base import CriticBackend, Generation

from data_answers import EDIT_FULL, PAIR_EDIT, PAIR_T2I, T2I_FULL


def t2i_answer(tf: float, pq: float, refined: str = "a refined prompt") -> str:
    return (T2I_FULL.replace("## Score: 2.5", f"## Score: {tf}").replace("## Score: 3.5", f"## Score: {pq}")
            .replace("A photo of a red cube on a rustic wooden table with visible wood grain.", refined))


class ScriptedCritic(CriticBackend):
    """Answers each chat with the next scripted text (or a default by kind); records every chat."""

    def __init__(self, answers=None, cache_size=0, fail_after=None):
        super().__init__(cache_size)
        self.answers = list(answers or [])
        self.chats = []
        self.fail_after = fail_after

    @property
    def identity(self) -> str:
        return "scripted"

    def _generate(self, messages, settings, callbacks):
        out = []
        for i, chat in enumerate(messages):
            callbacks.check_interrupt()
            if self.fail_after is not None and len(self.chats) >= self.fail_after:
                raise RuntimeError("scripted critic failure")
            self.chats.append(chat)
            n_images = sum(1 for m in chat for p in (m["content"] if isinstance(m["content"], list) else [])
                           if p.get("type") == "image")
            text = self.answers.pop(0) if self.answers else _default(chat, n_images)
            if callbacks.on_text:
                callbacks.on_text(i, text)
            if callbacks.on_item:
                callbacks.on_item(i + 1, len(messages))
            out.append(Generation(text=text, truncated=False, n_tokens=len(text.split())))
        return out


def _default(chat, n_images):
    text = " ".join(p.get("text", "") for m in chat for p in (m["content"] if isinstance(m["content"], list) else []))
    if "Image A" in text:
        return PAIR_EDIT if n_images == 3 else PAIR_T2I
    return EDIT_FULL if n_images == 2 else T2I_FULL
