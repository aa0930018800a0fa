"""Critique JSON in PNG metadata, so a saved image carries its own critique.

The critique is stored as one iTXt chunk (UTF-8, uncompressed, readable by any PNG tool) under the
key ``"rationalrewards"``: the JSON of one critique dict (``to_dict()``) or a list of them. Other
chunks (ComfyUI's ``prompt`` and ``workflow``) are left alone, so ComfyUI can still load the
workflow from the file.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ..models.format.critique import Comparison, Critique, CritiqueFormatError, result_from_dict

PNG_KEY = "rationalrewards"


class CritiqueMetadataError(CritiqueFormatError):
    """A PNG that carries no (or no valid) critique metadata; the message names the file."""


def _as_dicts(critique_or_list: Any) -> dict | list[dict]:
    def one(c: Any, where: str) -> dict:
        if isinstance(c, (Critique, Comparison)):
            return c.to_dict()
        if isinstance(c, Mapping):
            return result_from_dict(c).to_dict()  # validates, and normalises the schema
        raise CritiqueMetadataError(
            f"{where} is a {type(c).__name__}, not a Critique/Comparison (or its dict form): "
            "wire a critique output here"
        )

    if isinstance(critique_or_list, (list, tuple)):
        if not critique_or_list:
            raise CritiqueMetadataError("critique list is empty: nothing to store in the PNG")
        return [one(c, f"critique[{i}]") for i, c in enumerate(critique_or_list)]
    return one(critique_or_list, "critique")


def add_critique_to_pnginfo(pnginfo: PngInfo | None, critique_or_list: Any) -> PngInfo:
    """Add (or replace) the ``rationalrewards`` chunk holding the critique JSON; returns the PngInfo.

    ``critique_or_list`` is a Critique/Comparison, its dict form, or a list of them (stored as a
    JSON list). A chunk of the same key already in ``pnginfo`` is replaced, never duplicated.
    """
    info = pnginfo if pnginfo is not None else PngInfo()
    text = json.dumps(_as_dicts(critique_or_list), ensure_ascii=False)
    prefix = PNG_KEY.encode("latin-1") + b"\0"
    info.chunks = [ch for ch in info.chunks if not (ch[0] in (b"tEXt", b"iTXt", b"zTXt")
                                                    and ch[1].startswith(prefix))]
    info.add_itxt(PNG_KEY, text, zip=False)
    return info


def save_png_with_critique(
    image: Image.Image,
    path: str | os.PathLike,
    critique: Any,
    extra: Mapping[str, Any] | None = None,
    *,
    compress_level: int = 4,
) -> str:
    """Save ``image`` as PNG at ``path`` with the critique JSON (and ``extra`` text chunks) in it.

    ``extra`` maps chunk keys to text, e.g. ComfyUI's ``{"prompt": ..., "workflow": ...}``; a value
    that is not a string is stored as its JSON (as ComfyUI does). Returns the path written.
    """
    if not isinstance(image, Image.Image):
        raise TypeError(f"image must be a PIL image, got {type(image).__name__}")
    info = PngInfo()
    for key, value in dict(extra or {}).items():
        if key == PNG_KEY:
            raise CritiqueMetadataError(f"extra may not use the key {PNG_KEY!r}: that chunk holds the critique")
        info.add_text(key, value if isinstance(value, str) else json.dumps(value))
    add_critique_to_pnginfo(info, critique)
    path = os.fspath(path)
    image.save(path, format="PNG", pnginfo=info, compress_level=compress_level)
    return path


def read_critique_json(source: str | os.PathLike | Image.Image) -> str:
    """The raw JSON text of the ``rationalrewards`` chunk of a PNG (path or opened image)."""
    if isinstance(source, Image.Image):
        return _chunk_text(source, getattr(source, "filename", "") or "image")
    name = os.fspath(source)
    try:
        with Image.open(name) as im:
            return _chunk_text(im, name)
    except (Image.UnidentifiedImageError, SyntaxError) as e:
        raise CritiqueMetadataError(f"{name} is not a readable image: {e}") from None


def _chunk_text(im: Image.Image, name: str) -> str:
    if im.format != "PNG":
        raise CritiqueMetadataError(
            f"{name} is a {im.format or 'non-PNG'} file; critiques are stored only in PNG metadata"
        )
    im.load()  # text chunks after the image data are read only once the image is loaded
    text = getattr(im, "text", {}).get(PNG_KEY)
    if text is None:
        raise CritiqueMetadataError(
            f"{name} has no {PNG_KEY!r} metadata: it was saved without a critique "
            "(save it with the Score Card's save option or save_png_with_critique)"
        )
    return str(text)


def read_critique_from_png(source: str | os.PathLike | Image.Image) -> list[Critique | Comparison]:
    """The critiques stored in a PNG, always as a list (one entry when one critique was stored).

    Raises CritiqueMetadataError when the file is no PNG, has no critique chunk, or the chunk is not
    valid critique JSON.
    """
    text = read_critique_json(source)
    name = getattr(source, "filename", None) or (source if not isinstance(source, Image.Image) else "image")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise CritiqueMetadataError(f"{name}: the {PNG_KEY!r} metadata is not valid JSON: {e}") from None
    items: Sequence[Any] = data if isinstance(data, list) else [data]
    try:
        return [result_from_dict(d) for d in items]
    except CritiqueFormatError as e:
        raise CritiqueMetadataError(f"{name}: the {PNG_KEY!r} metadata is not a critique: {e}") from None
