"""Best-of-N: rank critiques by each image's own absolute score and pick the matching batch rows.

Ranking never looks at the rest of the batch: an image's score is its weighted overall
(``models.format.scoring.weighted_overall``), so adding a worse image to the batch cannot change
anyone else's score or their order. Unparseable critiques (score None) rank after every scored one.

The row pickers work on ComfyUI's batch types without importing ComfyUI: IMAGE ``[B,H,W,C]``,
LATENT ``{"samples": [B,...], "noise_mask"?, "batch_index"?}`` and MASK ``[B,H,W]``. torch is
imported only when a tensor is actually given, so this module loads without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..models.format.aspects import ASPECT_TITLES
from ..models.format.critique import Comparison, Critique
from ..models.format.scoring import weighted_overall


class SelectionError(ValueError):
    """Best-of-N input that cannot be ranked or selected; the message names the input and the fix."""


@dataclass(frozen=True)
class RankedItem:
    """One ranked image: its position in the input batch, its absolute 0-1 score and its critique.

    ``score`` is None when the critique could not be scored (unparseable or incomplete); such items
    are ``unscored`` and always rank last.
    """

    index: int
    score: float | None
    critique: Critique

    @property
    def unscored(self) -> bool:
        """True when the critique had no usable score (it ranks last)."""
        return self.score is None


def _check_weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, w in dict(weights or {}).items():
        if name not in ASPECT_TITLES:
            raise SelectionError(
                f"aspect weight for unknown aspect {name!r}: use one of {', '.join(ASPECT_TITLES)}"
            )
        try:
            w = float(w)
        except (TypeError, ValueError):
            raise SelectionError(f"aspect weight for {name!r} must be a number, got {w!r}") from None
        if not w >= 0.0:  # also rejects NaN
            raise SelectionError(f"aspect weight for {name!r} must be >= 0, got {w}")
        out[name] = w
    if out and all(w == 0.0 for w in out.values()) and set(out) == set(ASPECT_TITLES):
        raise SelectionError("all aspect weights are 0: give at least one aspect a positive weight")
    return out


def score_of(critique: Critique, weights: Mapping[str, float] | None = None) -> float | None:
    """The absolute 0-1 score Best-of-N ranks by (weighted overall; None when unscorable)."""
    return weighted_overall(critique, _check_weights(weights))


def rank(
    critiques: Sequence[Critique],
    *,
    weights: Mapping[str, float] | None = None,
    k: int = 1,
) -> list[RankedItem]:
    """Rank pointwise critiques best first and return the top ``k`` (all of them when k >= len).

    Each score is the critique's own weighted overall (missing weight = 1.0, weight 0 ignores an
    aspect), never relative to the batch. Unscorable critiques come last; ties keep the earlier
    index first. Raises SelectionError for an empty list, k < 1, a Comparison or any other object,
    or bad weights.
    """
    if isinstance(critiques, (Critique, Comparison)):
        critiques = [critiques]
    critiques = list(critiques)
    if not critiques:
        raise SelectionError("critiques is empty: connect one critique per image of the batch")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise SelectionError(f"k must be a whole number >= 1 (how many images to keep), got {k!r}")
    w = _check_weights(weights)
    items = []
    for i, c in enumerate(critiques):
        if isinstance(c, Comparison):
            raise SelectionError(
                f"critiques[{i}] is a pairwise Comparison; Best-of-N ranks pointwise critiques "
                "(use the Critic node, not Compare)"
            )
        if not isinstance(c, Critique):
            raise SelectionError(
                f"critiques[{i}] is a {type(c).__name__}, not a Critique: wire a critique output here"
            )
        items.append(RankedItem(i, weighted_overall(c, w), c))
    # sorted() is stable, so equal scores keep their input order; unscored sort after all scored.
    items.sort(key=lambda it: (it.score is None, -(it.score or 0.0)))
    return items[:k]


# -- batch row selection ---------------------------------------------------------------------------

def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "index_select")


def _batch_size(x: Any, name: str) -> int:
    shape = getattr(x, "shape", None)
    if shape is None:
        if isinstance(x, (list, tuple)):
            return len(x)
        raise SelectionError(f"{name} must be a tensor or array with a batch dimension, got {type(x).__name__}")
    if len(shape) == 0:
        raise SelectionError(f"{name} is a scalar; expected a batch with the images along dimension 0")
    return int(shape[0])


def _check_indices(indices: Sequence[int], batch: int, name: str) -> list[int]:
    out = []
    for i in indices:
        if isinstance(i, bool) or not isinstance(i, int) and not hasattr(i, "__index__"):
            raise SelectionError(f"index {i!r} for {name} is not a whole number")
        i = int(i)
        if not 0 <= i < batch:
            raise SelectionError(f"index {i} is out of range for {name} with batch size {batch}")
        out.append(i)
    if not out:
        raise SelectionError(f"no indices given to select from {name}")
    return out


def take_rows(x: Any, indices: Sequence[int], name: str = "batch") -> Any:
    """Rows ``indices`` of ``x`` along dimension 0, like ``torch.index_select(x, 0, indices)``.

    Works for torch tensors (same device and dtype), numpy arrays and Python lists.
    """
    idx = _check_indices(indices, _batch_size(x, name), name)
    if _is_torch_tensor(x):
        import torch  # lazily: only when a tensor was given

        return torch.index_select(x, 0, torch.tensor(idx, dtype=torch.long, device=x.device))
    if isinstance(x, (list, tuple)):
        return type(x)(x[i] for i in idx)
    return x[idx]


def _check_batch(x: Any, expected: int | None, name: str) -> int:
    batch = _batch_size(x, name)
    if expected is not None and batch != expected:
        raise SelectionError(
            f"{name} has a batch of {batch} but the images have {expected}: connect the "
            f"{name} that belongs to the same images (or leave it unconnected)"
        )
    return batch


def select_images(images: Any, indices: Sequence[int]) -> Any:
    """The IMAGE rows ``indices`` ([B,H,W,C] -> [len(indices),H,W,C])."""
    return take_rows(images, indices, "images")


def select_latent(latent: Mapping[str, Any], indices: Sequence[int], batch_size: int | None = None) -> dict:
    """A LATENT dict holding only rows ``indices``.

    ``samples`` is selected; ``noise_mask`` too unless its batch is 1 (then it applies to every
    sample and is passed unchanged); ``batch_index`` (a list) is selected alike; other keys are
    copied. With ``batch_size`` (the images' batch) a LATENT of another batch is a SelectionError.
    """
    if not isinstance(latent, Mapping) or "samples" not in latent:
        raise SelectionError(
            f"latent must be a LATENT dict with 'samples', got {type(latent).__name__}: "
            "connect the LATENT the images were decoded from"
        )
    batch = _check_batch(latent["samples"], batch_size, "latent")
    out = dict(latent)
    out["samples"] = take_rows(latent["samples"], indices, "latent")
    mask = latent.get("noise_mask")
    if mask is not None and _batch_size(mask, "latent noise_mask") != 1:
        _check_batch(mask, batch, "latent noise_mask")
        out["noise_mask"] = take_rows(mask, indices, "latent noise_mask")
    bi = latent.get("batch_index")
    if bi is not None:
        _check_batch(list(bi), batch, "latent batch_index")
        out["batch_index"] = [bi[i] for i in _check_indices(indices, batch, "latent batch_index")]
    return out


def select_mask(mask: Any, indices: Sequence[int], batch_size: int | None = None) -> Any:
    """The MASK rows ``indices`` ([B,H,W]); a single mask ([H,W] or batch 1) is shared, so unchanged.

    With ``batch_size`` (the images' batch) a MASK of another batch (other than 1) is a
    SelectionError.
    """
    shape = getattr(mask, "shape", None)
    if shape is None:
        raise SelectionError(f"mask must be a MASK tensor [batch, height, width], got {type(mask).__name__}")
    if len(shape) == 2 or shape[0] == 1:
        return mask
    _check_batch(mask, batch_size, "mask")
    return take_rows(mask, indices, "mask")
