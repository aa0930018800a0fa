"""Socket types shared by the pack's nodes, and conversion of what arrives on them."""
from __future__ import annotations

import json
from typing import Any

from comfy_api.latest import io

from ..models.backends.base import CriticBackend
from ..models.format.critique import Comparison, Critique, CritiqueFormatError, result_from_dict

#: A loaded critic: the local (transformers) or the remote (HTTP) backend; every node taking a
#: critic accepts either.
Critic = io.Custom("RATIONALREWARDS_CRITIC")
#: The critiques of one IMAGE batch, one per image, in batch order (a tuple of Critique/Comparison).
CritiqueBatch = io.Custom("RATIONALREWARDS_CRITIQUE")

CATEGORY = "RationalRewards"

#: How an N/A or unreadable score appears on a FLOAT socket (documented in the README).
NOT_APPLICABLE = 0.0
UNKNOWN = -1.0


def as_critic(value: Any, name: str = "critic") -> CriticBackend:
    if isinstance(value, CriticBackend):
        return value
    raise TypeError(
        f"'{name}' must come from a RationalRewards Model Loader or Remote Critic node, "
        f"got {type(value).__name__}"
    )


def as_critiques(value: Any, name: str = "critique", pairwise: bool | None = None) -> tuple:
    """Normalise a critique input: our tuple, one Critique/Comparison, a dict or JSON text of one or a list."""
    if isinstance(value, (Critique, Comparison)):
        items = (value,)
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (Critique, Comparison)) for v in value):
        items = tuple(value)
    elif isinstance(value, (str, dict, list)):
        try:
            data = json.loads(value) if isinstance(value, str) else value
            data = data if isinstance(data, list) else [data]
            items = tuple(result_from_dict(d) for d in data)
        except (ValueError, CritiqueFormatError) as e:
            raise TypeError(
                f"'{name}' must be a critique from a RationalRewards Critic node (or its JSON); "
                f"the text given is not one: {e}"
            ) from None
        if not items:
            raise TypeError(f"'{name}' is an empty list of critiques")
    else:
        raise TypeError(
            f"'{name}' must be a critique from a RationalRewards Critic node, got {type(value).__name__}"
        )
    if pairwise is not None:
        for c in items:
            if isinstance(c, Comparison) != pairwise:
                want = "a Compare node's comparison" if pairwise else "a Critic node's critique"
                raise TypeError(f"'{name}' must be {want}, got a {c.kind} result")
    return items


def float_score(value: float | None, not_applicable: bool = False) -> float:
    """A score for a FLOAT socket: the number, NOT_APPLICABLE (0.0) for N/A, UNKNOWN (-1.0) if unread."""
    if value is not None:
        return float(value)
    return NOT_APPLICABLE if not_applicable else UNKNOWN
