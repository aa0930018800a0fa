"""Parse RationalRewards answers into Critique / Comparison objects.

The parser is a single pass over lines with a small state machine: it never raises on any text and
never invents a number. Whatever is missing or unreadable is None, and ``problems`` says why, as
``"code: message"`` strings. Codes: empty_answer, cut_off, missing_section, missing_score,
unreadable_score, clamped_score, invalid_not_applicable, duplicate_section, unexpected_aspect,
missing_refined_request, empty_refined_request, cut_off_refined_request, missing_winner, unreadable_winner.

Accepted variants (from upstream templates and code; see the project reference):
Score before or after Justification; with or without ``# User Request Analysis``; trailing spaces
after colons; ``Score:`` with or without ``##``; markdown bold; score values like ``3.5``,
``**3.5**``, ``~3.5``, ``3.5/4``, ``3.5 (minor flaws)``, ``N/A``, ``n/a``, ``N/A (no text)``, out of
range numbers clamped to 1-4; only score lines before ``# Summary:`` count; multi-line, empty or
missing refined requests; an N/A Image Faithfulness section in a text-to-image answer; winners
spelled ``Image A``, ``A``, ``Image B``, ``B``, ``It's a tie``, ``Tie``, ``N/A``; CRLF line ends; a
leading ``<think>...</think>`` block.
"""
from __future__ import annotations

import re
from typing import Any

from .aspects import ASPECT_TITLES, MAY_BE_NOT_APPLICABLE, SCORE_MAX, SCORE_MIN, Kind, get_kind
from .critique import AspectScore, Comparison, Critique, PairAspectScore
from .scoring import needs_refinement, overall_from_scores, pairwise_winner

_H = r"^#{1,4}\s*"
_RE_ANALYSIS = re.compile(_H + r"User Request Analysis\b\s*:?\s*(.*)$", re.I)
_RE_JUDGEMENT = re.compile(_H + r"Detailed Judge?ments?\b\s*:?\s*(.*)$", re.I)
_RE_SUMMARY = re.compile(_H + r"(?:Overall\s+)?Summary\b\s*:?\s*(.*)$", re.I)
_RE_REFINEMENT = re.compile(_H + r"User Request Refinement\b\s*:?\s*(.*)$", re.I)
_RE_COMMENTS = re.compile(r"^(?:#{1,4}\s*)?Refinement Comments?\s*:\s*(.*)$", re.I)
_RE_REFINED = re.compile(r"^(?:#{1,4}\s*)?Refined (?:User )?(?:Request|Prompt|Instruction)\s*:\s*(.*)$", re.I)
_RE_ASPECT = re.compile(
    r"^(?:#{1,4}\s*)?(?:\d{1,2}\s*[.)]\s*)?"
    r"(Text Faithfulness|Image Faithfulness|Physical (?:and|&) Visual Quality|Physical Quality|Visual Quality"
    r"|Text Rendering)\s*:?\s*(.*)$",
    re.I,
)
_RE_SCORE = re.compile(r"^(?:#{1,4}\s*)?Score(?:\s+(?:for\s+)?(?:Image\s+)?\(?([AB])\)?)?\s*:\s*(.*)$", re.I)
_RE_JUST = re.compile(r"^(?:#{1,4}\s*)?(?:Justification|Reasoning|Rationale)\s*:\s*(.*)$", re.I)
_RE_WINNER = re.compile(r"^(?:#{1,4}\s*)?Winner\s*:\s*(.*)$", re.I)
_RE_NUMBER = re.compile(r"^[~≈]?\s*([+-]?\d+(?:\.\d+)?|[+-]?\.\d+)")
_RE_NA = re.compile(r"^(?:n\s*/\s*a|n\.a\.?|not\s+applicable|none)\b", re.I)
_RE_WIN_AB = re.compile(r"^(?:(?:edited|generated)\s+)?(?:image\s*)?([ab])(?![a-z])", re.I)
_RE_WIN_TIE = re.compile(r"\b(?:tie|tied|equal|equally|both|same)\b", re.I)
_STRIP_CHARS = " \t*_`"

_ALIASES = {
    "text faithfulness": "text_faithfulness",
    "image faithfulness": "image_faithfulness",
    "physical and visual quality": "physical_quality",
    "physical & visual quality": "physical_quality",
    "physical quality": "physical_quality",
    "visual quality": "physical_quality",
    "text rendering": "text_rendering",
}


def _clean(line: str) -> str:
    """A line as the classifier sees it: no markdown bold/italics markers, no outer spaces."""
    return line.replace("**", "").replace("__", "").strip()


def _join(lines: list[str]) -> str | None:
    text = "\n".join(lines).strip()
    return text or None


class _Block:
    """The lines of one aspect section."""

    __slots__ = ("aspect", "title", "lines")

    def __init__(self, aspect: str, title: str, first: str):
        self.aspect = aspect
        self.title = title
        self.lines = [first] if first else []


class _Sections:
    __slots__ = ("analysis", "blocks", "summary", "comments", "refined", "has_summary", "has_refined",
                 "has_comments")

    def __init__(self) -> None:
        self.analysis: list[str] = []
        self.blocks: list[_Block] = []
        self.summary: list[str] = []
        self.comments: list[str] = []
        self.refined: list[str] = []
        self.has_summary = self.has_refined = self.has_comments = False


def _split_sections(text: str) -> _Sections:
    s = _Sections()
    state = "analysis"
    for raw in text.split("\n"):
        c = _clean(raw)
        if state == "refined":
            # The refined request runs to the end; a new top-level heading ends it.
            if c.startswith("#") and (_RE_SUMMARY.match(c) or _RE_ANALYSIS.match(c) or _RE_JUDGEMENT.match(c)
                                      or _RE_REFINEMENT.match(c)):
                state = "tail"
            else:
                s.refined.append(raw.rstrip())
            continue
        if state == "tail":
            continue
        if not c:
            _append(s, state, "")
            continue
        if ":" not in c and c[0] != "#" and not c[0].isdigit() and c[0] not in "TtIiPpVv":
            _append(s, state, raw.rstrip())  # plain prose: no heading or field can start here
            continue
        m = _RE_REFINED.match(c)
        if m:
            s.has_refined = True
            state = "refined"
            s.refined.append(m.group(1).strip())
            continue
        m = _RE_COMMENTS.match(c)
        if m:
            s.has_comments = True
            state = "comments"
            s.comments.append(m.group(1).strip())
            continue
        if c.startswith("#"):
            m = _RE_REFINEMENT.match(c)
            if m:
                state = "refinement"
                continue
            m = _RE_SUMMARY.match(c)
            if m:
                s.has_summary = True
                state = "summary"
                s.summary.append(m.group(1).strip())
                continue
        if state in ("analysis", "judgement"):
            if c.startswith("#"):
                m = _RE_ANALYSIS.match(c)
                if m:
                    state = "analysis"
                    if m.group(1).strip():
                        s.analysis.append(m.group(1).strip())
                    continue
                m = _RE_JUDGEMENT.match(c)
                if m:
                    state = "judgement"
                    continue
            m = _RE_ASPECT.match(c)
            if m and not _RE_SCORE.match(c):
                rest = m.group(2).strip()
                # "Text Faithfulness is poor because..." is prose, not a heading: a heading is the
                # aspect name alone or followed by a colon.
                if not rest or c[m.end(1):].lstrip().startswith(":"):
                    title = m.group(1)
                    s.blocks.append(_Block(_ALIASES[title.lower().replace("  ", " ")], title, rest))
                    state = "judgement"
                    continue
        _append(s, state, raw.rstrip())
    return s


def _append(s: _Sections, state: str, line: str) -> None:
    if state == "analysis":
        s.analysis.append(line)
    elif state == "judgement":
        if s.blocks:
            s.blocks[-1].lines.append(line)
    elif state == "summary":
        s.summary.append(line)
    elif state == "comments":
        s.comments.append(line)


def _parse_score(value: str, title: str, problems: list[str]) -> tuple[float | None, bool, bool]:
    """(score, not_applicable, readable) from a score value such as '3.5/4' or 'N/A (no text)'."""
    v = value.strip(_STRIP_CHARS + "[]()")
    if not v:
        return None, False, False
    if _RE_NA.match(v):
        return None, True, True
    m = _RE_NUMBER.match(v)
    if not m:
        problems.append(f"unreadable_score: the score of {title} is {_quote(value)}, not a number or N/A")
        return None, False, True
    x = float(m.group(1))
    if x < SCORE_MIN or x > SCORE_MAX:
        clamped = min(SCORE_MAX, max(SCORE_MIN, x))
        problems.append(f"clamped_score: the score of {title} was {m.group(1)}, outside 1-4; clamped to {clamped}")
        x = clamped
    return x, False, True


def _quote(value: str, limit: int = 40) -> str:
    v = value.strip()
    return repr(v if len(v) <= limit else v[:limit] + "...")


class _Fields:
    __slots__ = ("justification", "scores", "winner", "has_score")

    def __init__(self) -> None:
        self.justification: str | None = None
        self.scores: dict[str, tuple[float | None, bool]] = {}
        self.winner: str | None = None
        self.has_score: set[str] = set()


def _parse_block(block: _Block, pairwise: bool, problems: list[str]) -> _Fields:
    f = _Fields()
    just: list[str] = []
    in_just = False
    lines = block.lines
    i = 0
    while i < len(lines):
        raw = lines[i]
        c = _clean(raw)
        i += 1
        if ":" not in c:  # every field line ("Score:", "Justification:", "Winner:") has a colon
            if in_just or not just:
                if c or just:
                    just.append(raw.strip())
            continue
        m = _RE_SCORE.match(c)
        if m:
            in_just = False
            slot = (m.group(1) or "").upper() or ("A" if pairwise and "A" not in f.has_score else "")
            if not pairwise:
                slot = ""
            value = m.group(2)
            if not value.strip(_STRIP_CHARS):
                # "## Score:" with the value on the next non-empty line
                j = i
                while j < len(lines) and not lines[j].strip():
                    j += 1
                if j < len(lines) and (_RE_NUMBER.match(_clean(lines[j])) or _RE_NA.match(_clean(lines[j]))):
                    value = _clean(lines[j])
                    i = j + 1
            if slot in f.has_score:
                continue  # a repeated score line: the first one counts
            f.has_score.add(slot)
            label = f"{block.title}" + (f" (image {slot})" if slot else "")
            score, na, readable = _parse_score(value, label, problems)
            if readable:
                f.scores[slot] = (score, na)
            else:
                problems.append(f"missing_score: {label} has a Score line without a value")
            continue
        m = _RE_JUST.match(c)
        if m:
            in_just = True
            just.append(m.group(1).strip())
            continue
        m = _RE_WINNER.match(c)
        if m:
            in_just = False
            if f.winner is None:
                f.winner = m.group(1).strip()
            continue
        if in_just or not just:
            if c or just:
                just.append(raw.strip())
    f.justification = _join(just)
    return f


def _winner(value: str | None) -> tuple[str | None, bool]:
    """Normalise a winner spelling; (winner, readable)."""
    if value is None:
        return None, False
    v = value.strip(_STRIP_CHARS + "[]().").strip()
    if not v:
        return None, False
    if _RE_NA.match(v):
        return None, True
    if _RE_WIN_TIE.search(v):
        return "tie", True
    m = _RE_WIN_AB.match(v)
    if m:
        return m.group(1).upper(), True
    return None, False


def _prepare(text: Any) -> str:
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    end = text.rfind("</think>")
    if end != -1:
        text = text[end + len("</think>"):]
    return text


def _drop_partial_line(text: str) -> str:
    """A cut-off answer's last line may stop mid-number ("3." of "3.5"): do not read it."""
    if text.endswith("\n"):
        return text
    cut = text.rfind("\n")
    return text[:cut + 1] if cut != -1 else ""


def _collect_blocks(sections: _Sections, kind: Kind, problems: list[str]) -> dict[str, _Block]:
    found: dict[str, _Block] = {}
    for b in sections.blocks:
        if b.aspect in found:
            problems.append(f"duplicate_section: {ASPECT_TITLES[b.aspect]} appears twice; the first one counts")
            continue
        found[b.aspect] = b
    return found


def _check_na(aspect: str, title: str, na: bool, problems: list[str]) -> bool:
    if na and aspect not in MAY_BE_NOT_APPLICABLE:
        problems.append(f"invalid_not_applicable: {title} is marked N/A, but only Text Rendering may be N/A")
        return False
    return True


def _begin(text: Any, kind: Kind, truncated: bool, what: str):
    """What both parsers do first: keep the raw text, normalise it, note a cut-off or empty answer,
    split it into sections and aspect blocks."""
    raw = text if isinstance(text, str) else ("" if text is None else str(text))
    body = _prepare(text)
    problems: list[str] = []
    if truncated:
        problems.append(f"cut_off: the answer stopped at the token limit; raise max_new_tokens to get a full {what}")
        body = _drop_partial_line(body)
    if not body.strip():
        problems.append("empty_answer: the critic returned no text")
    sections = _split_sections(body)
    return raw, body, problems, sections, _collect_blocks(sections, kind, problems)


def parse_critique(text: Any, kind: str | Kind = "t2i", *, truncated: bool = False,
                   threshold: float = 3.0) -> Critique:
    """Parse a pointwise answer (kind "t2i" or "edit"). Never raises on any text."""
    kind = get_kind(kind)
    if kind.pairwise:
        raise ValueError(f"parse_critique takes a pointwise kind, not {kind.name}; use parse_comparison")
    raw, body, problems, sections, blocks = _begin(text, kind, truncated, "critique")
    aspects: dict[str, AspectScore] = {}
    for name in kind.aspects:
        title = ASPECT_TITLES[name]
        b = blocks.get(name)
        if b is None:
            if body.strip():
                problems.append(f"missing_section: no {title} section")
            aspects[name] = AspectScore(None, False, None)
            continue
        f = _parse_block(b, False, problems)
        score, na = f.scores.get("", (None, False))
        if "" not in f.has_score:
            problems.append(f"missing_score: {title} has no Score line")
        if not _check_na(name, title, na, problems):
            na = False
        aspects[name] = AspectScore(score, na, f.justification)
    for name, b in blocks.items():
        if name not in kind.aspects:
            f = _parse_block(b, False, [])
            score, _na = f.scores.get("", (None, False))
            if score is not None:
                problems.append(
                    f"unexpected_aspect: a {kind.name} critique should not score {ASPECT_TITLES[name]}; ignored"
                )
    if not sections.has_summary and body.strip():
        problems.append("missing_section: no # Summary")
    refined = _join(sections.refined) if sections.has_refined else None
    if truncated and sections.has_refined:
        # No end-of-answer token: the refined request was still being written. A partial prompt
        # is worse than the original, so it is not used.
        refined = None
        problems.append("cut_off_refined_request: the Refined Request was cut off; the original prompt stands")
    elif not sections.has_refined:
        if body.strip():
            problems.append("missing_refined_request: no ## Refined Request; the original prompt stands")
    elif refined is None:
        problems.append("empty_refined_request: the Refined Request is empty; the original prompt stands")
    partial = Critique(kind.name, aspects, None)
    return Critique(
        kind=kind.name,
        aspects=aspects,
        overall=overall_from_scores((a.score, a.not_applicable) for a in aspects.values()),
        analysis=_join(sections.analysis),
        summary=_join(sections.summary),
        refinement_comments=_join(sections.comments),
        refined_request=refined,
        needs_refinement=needs_refinement(partial, "paper", threshold),
        problems=tuple(problems),
        raw=raw,
    )


def parse_comparison(text: Any, kind: str | Kind = "pairwise-t2i", *, truncated: bool = False) -> Comparison:
    """Parse a pairwise answer (kind "pairwise-t2i" or "pairwise-edit"). Never raises on any text."""
    kind = get_kind(kind)
    if not kind.pairwise:
        raise ValueError(f"parse_comparison takes a pairwise kind, not {kind.name}; use parse_critique")
    raw, body, problems, sections, blocks = _begin(text, kind, truncated, "comparison")
    aspects: dict[str, PairAspectScore] = {}
    for name in kind.aspects:
        title = ASPECT_TITLES[name]
        b = blocks.get(name)
        if b is None:
            if body.strip():
                problems.append(f"missing_section: no {title} section")
            aspects[name] = PairAspectScore(None, None)
            continue
        f = _parse_block(b, True, problems)
        sa, na_a = f.scores.get("A", (None, False))
        sb, na_b = f.scores.get("B", (None, False))
        for slot in ("A", "B"):
            if slot not in f.has_score:
                problems.append(f"missing_score: {title} has no Score {slot} line")
        na = na_a and na_b
        if (na_a or na_b) and not na:
            problems.append(f"invalid_not_applicable: {title} is N/A for only one image")
        if not _check_na(name, title, na_a or na_b, problems):
            na = False
        winner, readable = _winner(f.winner)
        if f.winner is None:
            if not na:
                problems.append(f"missing_winner: {title} names no winner")
        elif not readable:
            problems.append(f"unreadable_winner: the winner of {title} is {_quote(f.winner)}")
        aspects[name] = PairAspectScore(sa, sb, na, f.justification, winner)
    if not sections.has_summary and body.strip():
        problems.append("missing_section: no # Summary")
    vals = list(aspects.values())
    return Comparison(
        kind=kind.name,
        aspects=aspects,
        overall_a=overall_from_scores((a.score_a, a.not_applicable) for a in vals),
        overall_b=overall_from_scores((a.score_b, a.not_applicable) for a in vals),
        winner=pairwise_winner([None if a.not_applicable else a.score_a for a in vals],
                               [None if a.not_applicable else a.score_b for a in vals])
        if all(a.not_applicable or (a.score_a is not None and a.score_b is not None) for a in vals) else None,
        analysis=_join(sections.analysis),
        summary=_join(sections.summary),
        problems=tuple(problems),
        raw=raw,
    )


def parse(text: Any, kind: str | Kind, *, truncated: bool = False) -> Critique | Comparison:
    """Parse an answer of any kind."""
    k = get_kind(kind)
    if k.pairwise:
        return parse_comparison(text, k, truncated=truncated)
    return parse_critique(text, k, truncated=truncated)
