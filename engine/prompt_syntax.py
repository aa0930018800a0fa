"""ComfyUI prompt syntax a refined prompt must keep, and the CLIP 77-token window.

The critic rewrites prompts in plain language; it neither knows nor keeps what ComfyUI users write
into prompts for the encoder: weights ``(word:1.2)``, ``(word)``, ``((word))``, A1111-style
``[word]``, textual inversions ``embedding:name`` and ``<lora:name:0.8>`` tags (read by LoRA-tag
loader nodes). This module finds those in the original prompt and puts them back into a refined one,
together with a user list of must-keep phrases, and checks the result against the 77-token window
of the SD1.5 / SDXL CLIP text encoders.

Token counts are estimates: no tokenizer files or network are available to the pack, so
``estimate_clip_tokens`` approximates CLIP's BPE (lower-cased; letter runs, single digits and
punctuation runs; long words split). On the prompts in tests/test_prompt_syntax.py it is within a
couple of tokens of the real tokenizer; callers with a real tokenizer (ComfyUI's CLIP) can pass
their own counter.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable

#: Tokens in one CLIP window, including the start and end tokens (75 are left for the prompt).
CLIP_WINDOW = 77
_SPECIAL_TOKENS = 2

_RE_TAG = re.compile(r"<(?:lora|lyco|lycoris|hypernet|hypernetwork|loha|lokr):[^<>]+>", re.I)
_RE_EMBEDDING = re.compile(r"(?<![\w:])embedding:[\w.\-/\\]+", re.I)
_RE_WEIGHT = re.compile(r"^(.*?)\s*:\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$", re.S)
_RE_CLIP_PIECES = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\W\d_]+|\d|[^\s\w]+|_+", re.I)
_TRAILING_FILLER = {"a", "an", "and", "at", "by", "for", "in", "of", "on", "or", "the", "to", "with", "while"}


@dataclass(frozen=True)
class WeightedGroup:
    """A parenthesised / bracketed group: ``literal`` as written, ``text`` without brackets/weight."""

    literal: str
    text: str
    weight: float | None


@dataclass(frozen=True)
class PromptSyntax:
    """The syntax found in a prompt, each item as written, in order of appearance."""

    groups: tuple[WeightedGroup, ...] = ()
    embeddings: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.groups or self.embeddings or self.tags)


def _group_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of the outermost balanced ``(...)`` / ``[...]`` groups; ``\\(`` is a literal."""
    spans = []
    stack: list[str] = []
    start = 0
    pairs = {"(": ")", "[": "]"}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch in pairs:
            if not stack:
                start = i
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
            if not stack:
                spans.append((start, i + 1))
        elif ch in ")]":
            stack = []  # unbalanced closer: forget the open group, ComfyUI reads it as text
        i += 1
    return spans


def _unwrap(literal: str) -> tuple[str, float | None]:
    """Strip every bracket layer of a group; return the inner text and the explicit weight if any."""
    inner = literal
    weight = None
    while len(inner) >= 2 and inner[0] in "([" and inner[-1] == {"(": ")", "[": "]"}[inner[0]]:
        inner = inner[1:-1].strip()
        m = _RE_WEIGHT.match(inner)
        if m and weight is None:
            inner, weight = m.group(1).strip(), float(m.group(2))
    return inner, weight


def extract_syntax(prompt: str) -> PromptSyntax:
    """Find weight groups, embeddings and LoRA-style tags in ``prompt``."""
    tags = tuple(m.group(0) for m in _RE_TAG.finditer(prompt))
    masked = _RE_TAG.sub(lambda m: " " * len(m.group(0)), prompt)
    groups = []
    for s, e in _group_spans(masked):
        literal = prompt[s:e]
        text, weight = _unwrap(literal)
        if text:
            groups.append(WeightedGroup(literal, text, weight))
    # Embeddings inside a group travel with their group; only bare ones are listed separately.
    outside = masked
    for s, e in reversed(_group_spans(masked)):
        outside = outside[:s] + " " * (e - s) + outside[e:]
    embeddings = tuple(m.group(0) for m in _RE_EMBEDDING.finditer(outside))
    return PromptSyntax(tuple(groups), embeddings, tags)


def plain_text(prompt: str) -> str:
    """The prompt as words only: tags and embeddings removed, groups unwrapped, escapes resolved.

    This is what the critic is shown (it judges the picture against the request, not the encoder
    syntax) and what the token estimate counts.
    """
    text = _RE_TAG.sub(" ", prompt)
    text = _RE_EMBEDDING.sub(" ", text)
    for s, e in reversed(_group_spans(text)):
        inner, _ = _unwrap(text[s:e])
        text = text[:s] + plain_text(inner) + text[e:]
    text = text.replace("\\(", "(").replace("\\)", ")").replace("\\[", "[").replace("\\]", "]")
    return _tidy(text)


def _tidy(text: str) -> str:
    """Collapse spaces and the empty comma slots left where syntax was removed."""
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\s*,(?:\s*,)+", ",", text)
    text = re.sub(r"\s+,", ",", text)
    return text.strip().strip(",").strip()


def _contains(haystack: str, needle: str) -> bool:
    """Case-insensitive whole-word containment (word edges only where the needle has a word char)."""
    pat = re.escape(needle.strip())
    if not pat:
        return True
    left = r"(?<!\w)" if re.match(r"\w", needle.strip()) else ""
    right = r"(?!\w)" if re.search(r"\w$", needle.strip()) else ""
    return re.search(left + pat + right, haystack, re.I) is not None


def _append(text: str, item: str) -> str:
    text = text.rstrip()
    if not text:
        return item
    sep = " " if text.endswith(",") else ", "
    return text + sep + item


def restore_syntax(original: str, refined: str, keep_phrases=()) -> tuple[str, list[str]]:
    """Put back into ``refined`` the syntax of ``original`` and the must-keep phrases it dropped.

    Weight groups: kept when the refined text already has the group; if its bare words still
    appear (outside any group), that first occurrence is wrapped again with the original weight;
    otherwise the group is appended. Embeddings, LoRA-style tags and must-keep phrases (compared
    case-insensitively) are appended when missing; tags go last, as tag loaders expect.
    Returns the new text and one note per item put back.
    """
    syntax = extract_syntax(original)
    refined_syntax = extract_syntax(refined)
    text = refined.strip()
    notes: list[str] = []
    # Tags are taken out and re-added at the end, so appended words never land after them.
    present_tags = {_tag_name(t) for t in refined_syntax.tags}
    tags = list(refined_syntax.tags)
    text = _tidy(_RE_TAG.sub(" ", text))
    for g in syntax.groups:
        if g.literal in text:
            continue
        if any(rg.text.lower() == g.text.lower() for rg in extract_syntax(text).groups):
            continue  # the refined text weights these words itself; respect it
        span = _free_occurrence(text, g.text)
        if span is not None:
            text = text[:span[0]] + g.literal + text[span[1]:]
            notes.append(f"re-applied weight {g.literal}")
        else:
            text = _append(text, g.literal)
            notes.append(f"put back {g.literal}")
    for emb in syntax.embeddings:
        if not _contains(text, emb):
            text = _append(text, emb)
            notes.append(f"put back {emb}")
    for phrase in keep_phrases:
        phrase = str(phrase).strip()
        if phrase and not _contains(text, phrase):
            text = _append(text, phrase)
            notes.append(f"put back must-keep phrase {phrase!r}")
    for tag in syntax.tags:
        if _tag_name(tag) not in present_tags:
            tags.append(tag)
            present_tags.add(_tag_name(tag))
            notes.append(f"put back {tag}")
    for tag in tags:
        text = _append(text, tag)
    return text, notes


def _tag_name(tag: str) -> str:
    """``<lora:Name:0.8>`` -> ``lora:name`` (a changed strength is still the same LoRA)."""
    parts = tag.strip("<>").split(":")
    return ":".join(parts[:2]).lower()


def _free_occurrence(text: str, words: str) -> tuple[int, int] | None:
    """Span of the first case-insensitive whole-word match of ``words`` not inside a group."""
    spans = _group_spans(text)
    pat = re.compile(r"(?<!\w)" + re.escape(words) + r"(?!\w)", re.I)
    for m in pat.finditer(text):
        if not any(s <= m.start() < e for s, e in spans):
            return m.start(), m.end()
    return None


# -- CLIP token window ------------------------------------------------------------------------------

def estimate_clip_tokens(text: str) -> int:
    """Estimated CLIP BPE tokens of ``text`` without the start/end tokens.

    Heuristic (no tokenizer files are available): the text is lower-cased and split as CLIP's
    pre-tokenizer does (letter runs, single digits, punctuation runs); a letter run of up to 10
    ASCII letters counts 1 token (CLIP's vocabulary holds most such words), a longer one 1 per 8
    letters, rounded up; non-ASCII letters count 1 per character; a punctuation run 1 per 3 chars;
    plus 1 per 25 for the words CLIP splits that this cannot know.
    Use it on ``plain_text`` of a prompt: ComfyUI parses weights and embeddings out before CLIP.
    """
    n = 0
    for piece in _RE_CLIP_PIECES.findall(text.lower()):
        if piece[0].isalpha() and piece.isascii():
            n += 1 if len(piece) <= 10 else math.ceil(len(piece) / 8)
        elif piece[0].isalpha():
            n += len(piece)
        elif piece[0].isdigit() or piece[0] == "'":
            n += 1
        else:
            n += math.ceil(len(piece) / 3)
    # Measured against the real tokenizer the count above runs ~4% low (rare short words such as
    # names split into pieces); one extra token per 25 keeps estimates near the window honest.
    return n + n // 25


def prompt_tokens(prompt: str, counter: Callable[[str], int] | None = None) -> int:
    """Tokens of a prompt as the encoder sees it: plain words, plus 1 per embedding.

    LoRA tags are not counted (tag loader nodes remove them before encoding); an embedding counts
    as 1, its minimum (a textual inversion holds 1 to 75 vectors, unknown here).
    """
    count = counter or estimate_clip_tokens
    return count(plain_text(prompt)) + len(extract_syntax(prompt).embeddings)


def fit_token_window(
    prompt: str,
    token_limit: int = CLIP_WINDOW,
    overflow: str = "keep",
    keep_phrases=(),
    counter: Callable[[str], int] | None = None,
) -> tuple[str, list[str]]:
    """Check ``prompt`` against a ``token_limit``-token window (start/end tokens included).

    ``overflow="keep"`` only warns; ``"trim"`` drops trailing comma-separated parts, then trailing
    words of the last part, until it fits. Parts holding a must-keep phrase, an embedding or a tag
    are never dropped. Returns the (possibly trimmed) prompt and warnings.
    """
    if overflow not in ("keep", "trim"):
        raise ValueError(f"overflow must be 'keep' or 'trim', got {overflow!r}")
    if int(token_limit) <= _SPECIAL_TOKENS:
        raise ValueError(f"token_limit must be more than {_SPECIAL_TOKENS} (77 for SD1.5/SDXL), got {token_limit}")
    room = int(token_limit) - _SPECIAL_TOKENS
    how = "counted" if counter else "estimated without the tokenizer, may be off by a few"
    before = prompt_tokens(prompt, counter)
    if before <= room:
        return prompt, []
    if overflow == "keep":
        return prompt, [
            f"the prompt is about {before} CLIP tokens ({how}), over the {room} that fit the "
            f"{token_limit}-token window of SD1.5/SDXL text encoders; ComfyUI encodes the rest as a "
            "separate chunk, which weakens it. Shorten the prompt or set overflow to 'trim'"
        ]
    trimmed = _trim(prompt, room, keep_phrases, counter)
    after = prompt_tokens(trimmed, counter)
    warnings = [f"trimmed the prompt from about {before} to about {after} CLIP tokens ({how}) to fit the "
                f"{token_limit}-token window"]
    if after > room:
        warnings.append(
            f"the prompt is still about {after} tokens: what is left is must-keep phrases, embeddings "
            "and tags, which trimming does not remove"
        )
    return trimmed, warnings


def _split_top_level(text: str, sep: str) -> list[str]:
    """Split at ``sep`` characters outside groups and tags."""
    masked = _RE_TAG.sub(lambda m: "x" * len(m.group(0)), text)
    for s, e in _group_spans(masked):
        masked = masked[:s] + "x" * (e - s) + masked[e:]
    parts, last = [], 0
    for i, ch in enumerate(masked):
        if ch == sep:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def _trim(prompt: str, room: int, keep_phrases, counter) -> str:
    parts = [p.strip() for p in _split_top_level(prompt, ",") if p.strip()]

    def protected(part: str) -> bool:
        syn = extract_syntax(part)
        return bool(syn.tags or syn.embeddings) or any(_contains(part, k) for k in keep_phrases if str(k).strip())

    def fits() -> bool:
        return prompt_tokens(", ".join(parts), counter) <= room

    while not fits():
        droppable = [i for i, p in enumerate(parts) if not protected(p)]
        if not droppable:
            break
        last = droppable[-1]
        if len(droppable) > 1:
            del parts[last]
            continue
        words = [w for w in _split_top_level(parts[last], " ") if w]
        words.pop()
        while words and words[-1].lower().strip(".;:") in _TRAILING_FILLER:
            words.pop()
        if words:
            parts[last] = " ".join(words).rstrip(" ;:")
        else:
            del parts[last]
    return ", ".join(parts)
