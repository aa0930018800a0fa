"""The request kinds RationalRewards was trained on and the aspects each one judges.

Aspect names, their order and the 1-4 scale are part of the trained format: the parser and the
request templates both read them from here, so there is one place that knows them.
"""
from __future__ import annotations

from dataclasses import dataclass

#: Aspect keys (the JSON schema's names) mapped to the literal headings the model writes.
ASPECT_TITLES: dict[str, str] = {
    "text_faithfulness": "Text Faithfulness",
    "image_faithfulness": "Image Faithfulness",
    "physical_quality": "Physical and Visual Quality",
    "text_rendering": "Text Rendering",
}

#: Aspects that may legitimately be marked N/A (no text asked for; no source image in a T2I request).
MAY_BE_NOT_APPLICABLE = frozenset({"text_rendering", "image_faithfulness"})

SCORE_MIN = 1.0
SCORE_MAX = 4.0


@dataclass(frozen=True)
class Kind:
    """One request kind: its CLI/JSON name, how many images it takes and which aspects it judges."""

    name: str
    pairwise: bool
    edit: bool
    image_labels: tuple[str, ...]
    aspects: tuple[str, ...]

    @property
    def n_images(self) -> int:
        return len(self.image_labels)


_T2I_ASPECTS = ("text_faithfulness", "physical_quality", "text_rendering")
_EDIT_ASPECTS = ("text_faithfulness", "image_faithfulness", "physical_quality", "text_rendering")

KINDS: dict[str, Kind] = {
    "t2i": Kind("t2i", False, False, ("Generated Image",), _T2I_ASPECTS),
    "edit": Kind("edit", False, True, ("Source Image", "Edited Image"), _EDIT_ASPECTS),
    "pairwise-t2i": Kind(
        "pairwise-t2i", True, False, ("Generated Image A", "Generated Image B"), _T2I_ASPECTS
    ),
    "pairwise-edit": Kind(
        "pairwise-edit", True, True, ("Source Image", "Edited Image A", "Edited Image B"), _EDIT_ASPECTS
    ),
}


class UnknownKindError(ValueError):
    """Raised for a request kind that is not one of KINDS."""


def get_kind(kind: str | Kind) -> Kind:
    """Return the Kind for a name such as ``"t2i"``; raise UnknownKindError naming the valid ones."""
    if isinstance(kind, Kind):
        return kind
    try:
        return KINDS[kind]
    except (KeyError, TypeError):
        raise UnknownKindError(
            f"unknown critique kind {kind!r}: use one of {', '.join(KINDS)}"
        ) from None
