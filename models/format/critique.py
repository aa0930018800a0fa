"""The typed results every layer passes around: Critique (pointwise) and Comparison (pairwise).

Both are frozen dataclasses with ``to_dict()`` / ``from_dict()``; their dict form is the JSON schema
printed by ``rationalrewards parse`` and stored in PNG metadata, and it is fixed:

pointwise::

    {"kind", "aspects": {name: {"score", "not_applicable", "justification"}}, "overall",
     "analysis", "summary", "refinement_comments", "refined_request", "needs_refinement",
     "problems": [...], "raw"}

pairwise::

    {"kind", "aspects": {name: {"score_a", "score_b", "not_applicable", "justification", "winner"}},
     "overall_a", "overall_b", "winner", "analysis", "summary", "problems": [...], "raw"}

Anything unknown or cut off is ``None`` (JSON null), never a guessed number.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

from .aspects import ASPECT_TITLES, KINDS

WINNERS = ("A", "B", "tie")


class CritiqueFormatError(ValueError):
    """A dict or JSON text that is not a critique/comparison in this pack's schema."""


def _freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class AspectScore:
    """One judged aspect of a pointwise critique. ``score`` is 1.0-4.0 or None (N/A or unreadable)."""

    score: float | None
    not_applicable: bool = False
    justification: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "not_applicable": self.not_applicable, "justification": self.justification}


@dataclass(frozen=True)
class PairAspectScore:
    """One judged aspect of a pairwise comparison; ``winner`` is "A", "B", "tie" or None."""

    score_a: float | None
    score_b: float | None
    not_applicable: bool = False
    justification: str | None = None
    winner: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "score_a": self.score_a,
            "score_b": self.score_b,
            "not_applicable": self.not_applicable,
            "justification": self.justification,
            "winner": self.winner,
        }


@dataclass(frozen=True)
class Critique:
    """A parsed pointwise critique of one image (text-to-image or edit)."""

    kind: str
    aspects: Mapping[str, AspectScore]
    overall: float | None
    analysis: str | None = None
    summary: str | None = None
    refinement_comments: str | None = None
    refined_request: str | None = None
    needs_refinement: bool | None = None
    problems: tuple[str, ...] = ()
    raw: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "aspects", _freeze(self.aspects))
        object.__setattr__(self, "problems", tuple(self.problems))

    @property
    def ok(self) -> bool:
        """True when every expected part was read without a problem."""
        return not self.problems

    def score(self, aspect: str) -> float | None:
        """The 1-4 score of ``aspect`` or None when it is N/A, missing or not judged."""
        a = self.aspects.get(aspect)
        return None if a is None else a.score

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "aspects": {k: v.to_dict() for k, v in self.aspects.items()},
            "overall": self.overall,
            "analysis": self.analysis,
            "summary": self.summary,
            "refinement_comments": self.refinement_comments,
            "refined_request": self.refined_request,
            "needs_refinement": self.needs_refinement,
            "problems": list(self.problems),
            "raw": self.raw,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Critique":
        """Rebuild a Critique from ``to_dict()`` output; CritiqueFormatError when it is not one."""
        _require_mapping(data, "critique")
        kind = data.get("kind")
        if kind not in KINDS or KINDS[kind].pairwise:
            raise CritiqueFormatError(
                f"not a pointwise critique: kind is {kind!r}, expected 't2i' or 'edit'"
            )
        aspects = {}
        for name, a in _aspect_items(data):
            aspects[name] = AspectScore(
                score=_opt_score(a.get("score"), name),
                not_applicable=bool(a.get("not_applicable", False)),
                justification=_opt_str(a.get("justification")),
            )
        return cls(
            kind=kind,
            aspects=aspects,
            overall=_opt_float(data.get("overall"), "overall"),
            analysis=_opt_str(data.get("analysis")),
            summary=_opt_str(data.get("summary")),
            refinement_comments=_opt_str(data.get("refinement_comments")),
            refined_request=_opt_str(data.get("refined_request")),
            needs_refinement=_opt_bool(data.get("needs_refinement")),
            problems=tuple(str(p) for p in data.get("problems") or ()),
            raw=str(data.get("raw") or ""),
        )


@dataclass(frozen=True)
class Comparison:
    """A parsed pairwise judgement of images A and B (text-to-image or edit)."""

    kind: str
    aspects: Mapping[str, PairAspectScore]
    overall_a: float | None
    overall_b: float | None
    winner: str | None
    analysis: str | None = None
    summary: str | None = None
    problems: tuple[str, ...] = ()
    raw: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "aspects", _freeze(self.aspects))
        object.__setattr__(self, "problems", tuple(self.problems))

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "aspects": {k: v.to_dict() for k, v in self.aspects.items()},
            "overall_a": self.overall_a,
            "overall_b": self.overall_b,
            "winner": self.winner,
            "analysis": self.analysis,
            "summary": self.summary,
            "problems": list(self.problems),
            "raw": self.raw,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, **kwargs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Comparison":
        _require_mapping(data, "comparison")
        kind = data.get("kind")
        if kind not in KINDS or not KINDS[kind].pairwise:
            raise CritiqueFormatError(
                f"not a pairwise comparison: kind is {kind!r}, expected 'pairwise-t2i' or 'pairwise-edit'"
            )
        aspects = {}
        for name, a in _aspect_items(data):
            aspects[name] = PairAspectScore(
                score_a=_opt_score(a.get("score_a"), name),
                score_b=_opt_score(a.get("score_b"), name),
                not_applicable=bool(a.get("not_applicable", False)),
                justification=_opt_str(a.get("justification")),
                winner=_opt_winner(a.get("winner")),
            )
        return cls(
            kind=kind,
            aspects=aspects,
            overall_a=_opt_float(data.get("overall_a"), "overall_a"),
            overall_b=_opt_float(data.get("overall_b"), "overall_b"),
            winner=_opt_winner(data.get("winner")),
            analysis=_opt_str(data.get("analysis")),
            summary=_opt_str(data.get("summary")),
            problems=tuple(str(p) for p in data.get("problems") or ()),
            raw=str(data.get("raw") or ""),
        )


def result_from_dict(data: Mapping[str, Any]) -> Critique | Comparison:
    """Rebuild whichever of Critique / Comparison ``data`` describes (by its "kind")."""
    _require_mapping(data, "critique")
    kind = data.get("kind")
    if kind in KINDS and KINDS[kind].pairwise:
        return Comparison.from_dict(data)
    return Critique.from_dict(data)


def result_from_json(text: str) -> Critique | Comparison:
    """Parse JSON text written by ``to_json()`` (e.g. from PNG metadata or a file)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as e:
        raise CritiqueFormatError(f"critique JSON is not valid JSON: {e}") from None
    return result_from_dict(data)


# -- validation helpers -----------------------------------------------------------------------------

def _require_mapping(data: Any, what: str) -> None:
    if not isinstance(data, Mapping):
        raise CritiqueFormatError(
            f"expected a {what} dict (from to_dict() or the parse JSON), got {type(data).__name__}"
        )


def _aspect_items(data: Mapping[str, Any]):
    aspects = data.get("aspects")
    if not isinstance(aspects, Mapping):
        raise CritiqueFormatError("critique dict has no 'aspects' mapping")
    for name, a in aspects.items():
        if name not in ASPECT_TITLES:
            raise CritiqueFormatError(
                f"unknown aspect {name!r}: expected one of {', '.join(ASPECT_TITLES)}"
            )
        if not isinstance(a, Mapping):
            raise CritiqueFormatError(f"aspect {name!r} is not a dict")
        yield name, a


def _opt_float(v: Any, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise CritiqueFormatError(f"{name} must be a number or null, got {v!r}")
    return float(v)


def _opt_score(v: Any, name: str) -> float | None:
    f = _opt_float(v, name)
    if f is not None and not 1.0 <= f <= 4.0:
        raise CritiqueFormatError(f"score of {name} must be within 1-4 or null, got {f}")
    return f


def _opt_str(v: Any) -> str | None:
    return None if v is None else str(v)


def _opt_bool(v: Any) -> bool | None:
    return None if v is None else bool(v)


def _opt_winner(v: Any) -> str | None:
    if v is None:
        return None
    if v not in WINNERS:
        raise CritiqueFormatError(f"winner must be 'A', 'B', 'tie' or null, got {v!r}")
    return v
