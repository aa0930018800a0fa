"""Image intake for critics: ComfyUI IMAGE tensors, numpy arrays or PIL images -> RGB PIL images.

Rules (issue: critic backend): alpha is dropped, NaN/Inf rejected, images larger than the pixel
budget are downscaled with their aspect kept (the model was trained at most 802,816 pixels), and
small images are never upscaled here (the processor brings them to the model's minimum itself).
torch is imported lazily so this module works without it.
"""
from __future__ import annotations

import hashlib
import math
from typing import Any, Iterable, Sequence

import numpy as np
from PIL import Image

from .errors import ImageInputError

DEFAULT_MAX_PIXELS = 802_816  # 896 x 896, the SFT cap
MIN_SIDE = 16  # below one vision patch there is nothing to look at
MAX_ASPECT = 150  # Qwen's resize refuses aspect ratios over 200


def _is_torch_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "detach")


def split_batch(images: Any, name: str = "image") -> list[Any]:
    """Split an IMAGE batch [B,H,W,C] (tensor or array), a single PIL image or a list into items."""
    if images is None:
        raise ImageInputError(f"{name} is missing: connect an IMAGE")
    if isinstance(images, Image.Image):
        return [images]
    if _is_torch_tensor(images) or isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [images]
        if images.ndim != 4:
            raise ImageInputError(
                f"{name} has shape {tuple(images.shape)}; expected an IMAGE batch [batch, height, width, channels]"
            )
        if images.shape[0] == 0:
            raise ImageInputError(f"{name} is an empty batch (0 images)")
        return [images[i] for i in range(images.shape[0])]
    if isinstance(images, (list, tuple)):
        out: list[Any] = []
        for x in images:
            out.extend(split_batch(x, name))
        if not out:
            raise ImageInputError(f"{name} is an empty list of images")
        return out
    raise ImageInputError(
        f"{name} must be an IMAGE (tensor [B,H,W,C]) or a PIL image, got {type(images).__name__}"
    )


def _pool_huge(image: Any, max_pixels: int | None) -> Any:
    """Average-pool a float [H,W,C] tensor far above the budget by an integer factor before the uint8
    conversion: converting all 67 M pixels of an 8k image costs seconds; NaN/Inf still propagate."""
    if not max_pixels or image.ndim != 3 or not image.is_floating_point():
        return image
    h, w = int(image.shape[0]), int(image.shape[1])
    factor = int(math.sqrt(h * w / max_pixels)) // 2
    if factor < 2 or min(h, w) // factor < MIN_SIDE:
        return image
    import torch.nn.functional as F

    return F.avg_pool2d(image.permute(2, 0, 1)[None], factor)[0].permute(1, 2, 0).contiguous()


def to_rgb(image: Any, name: str = "image") -> Image.Image:
    """Convert one image (tensor/array [H,W,C] float 0..1 or uint8, or PIL) to an RGB PIL image of any
    size: no critic limits, no resizing (what a save node needs; ``to_pil`` adds the critic's rules)."""
    if isinstance(image, Image.Image):
        pil = image
        if pil.mode != "RGB":
            pil = pil.convert("RGBA").convert("RGB") if "A" in pil.mode or pil.mode == "P" else pil.convert("RGB")
        return pil
    if _is_torch_tensor(image):
        image = image.detach().to("cpu")
        if str(image.dtype) in ("torch.bfloat16", "torch.float16"):
            image = image.float()
        arr = image.numpy()
    elif isinstance(image, np.ndarray):
        arr = image
    else:
        raise ImageInputError(f"{name} must be an IMAGE tensor or PIL image, got {type(image).__name__}")
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ImageInputError(f"{name} has shape {arr.shape}; expected [height, width, channels]")
    c = arr.shape[2]
    if c not in (1, 3, 4):
        raise ImageInputError(
            f"{name} has {c} channels; expected 3 (RGB), 4 (RGBA: alpha is dropped) or 1 (grey). "
            "If this is a latent, decode it with VAE Decode first"
        )
    if arr.dtype == np.uint8:
        u8 = arr
    else:
        arr = arr.astype(np.float32, copy=False)
        if not np.isfinite(arr).all():
            raise ImageInputError(
                f"{name} contains NaN or infinite values; the image upstream is broken "
                "(often a VAE decode in fp16 overflowing: try --fp32-vae or a different VAE)"
            )
        u8 = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if c == 4:
        u8 = u8[:, :, :3]
    elif c == 1:
        u8 = np.repeat(u8, 3, axis=2)
    return Image.fromarray(np.ascontiguousarray(u8), "RGB")


def critic_size_problem(width: int, height: int, name: str = "image") -> str | None:
    """Why the critic cannot read a ``width`` x ``height`` picture (too small, too elongated), else None.
    Needs only the size, so the command line checks files from their header before loading a model."""
    w, h = int(width), int(height)
    if min(w, h) < MIN_SIDE:
        return (f"{name} is {w}x{h} pixels; the critic needs at least {MIN_SIDE}x{MIN_SIDE}. "
                "Check that a real image (not a mask or a 1x1 placeholder) is connected")
    if max(w, h) / min(w, h) > MAX_ASPECT:
        return f"{name} is {w}x{h} pixels, an aspect ratio over {MAX_ASPECT}:1 the critic cannot read; crop it first"
    return None


def to_pil(image: Any, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Convert one image for the critic: ``to_rgb``, then the critic's size limits (ImageInputError), then
    a downscale into the pixel budget with the aspect kept."""
    if _is_torch_tensor(image):
        image = image.detach().to("cpu")
        if str(image.dtype) in ("torch.bfloat16", "torch.float16"):
            image = image.float()
        image = _pool_huge(image, max_pixels)
    pil = to_rgb(image, name)
    w, h = pil.size
    problem = critic_size_problem(w, h, name)
    if problem:
        raise ImageInputError(problem)
    if max_pixels and w * h > max_pixels:
        scale = math.sqrt(max_pixels / (w * h))
        # floor of each side keeps the product within the budget
        nw, nh = max(MIN_SIDE, int(w * scale)), max(MIN_SIDE, int(h * scale))
        factor = int(1 / scale) // 2
        if factor >= 2:  # a cheap box reduction first keeps LANCZOS fast on 8k images
            pil = pil.reduce(factor)
        pil = pil.resize((nw, nh), Image.Resampling.LANCZOS)
    return pil


def to_pil_list(images: Any, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> list[Image.Image]:
    """``split_batch`` then ``to_pil`` on each item, naming the item in errors (``image[2]``)."""
    items = split_batch(images, name)
    if len(items) == 1:
        return [to_pil(items[0], name, max_pixels)]
    return [to_pil(x, f"{name}[{i}]", max_pixels) for i, x in enumerate(items)]


def image_digest(images: Iterable[Image.Image]) -> str:
    """A content hash of RGB images (size + pixels), for the critique cache."""
    h = hashlib.sha256()
    for im in images:
        h.update(f"{im.size[0]}x{im.size[1]}:{im.mode};".encode())
        h.update(im.tobytes())
    return h.hexdigest()


def broadcast(values: Sequence[Any], n: int, name: str, what: str = "images") -> list[Any]:
    """One value for all n items, or exactly n values; else a clear error naming the input."""
    values = list(values)
    if len(values) == 1:
        return values * n
    if len(values) != n:
        raise ImageInputError(
            f"{name} has {len(values)} entries but there are {n} {what}; give one {name} for all of them "
            f"or exactly {n}"
        )
    return values
