#!/usr/bin/env python3
"""Draw docs/icon.png, the pack's icon in the Comfy Registry and ComfyUI-Manager (pyproject's
[tool.comfy] Icon): a score card of four aspect bars (1-4) and an arrow up, for critique-and-refine.

The registry asks for a square image of at most 400 x 400 px (SVG, PNG, JPG or GIF). Pillow only:

    python tools/make_icon.py            # writes docs/icon.png
"""
from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent.parent / "docs" / "icon.png"
SIZE = 400
SCALE = 4  # drawn 4x larger, then downsampled: smooth edges without an antialiasing renderer

BACKGROUND = (28, 32, 58)
TRACK = (52, 58, 96)
#: (score out of 4, colour): the aspect bars, red to green as on the Score Card.
BARS = [(2.0, (229, 115, 84)), (3.0, (240, 190, 80)), (2.5, (236, 160, 70)), (4.0, (104, 200, 120))]
ARROW = (236, 240, 255)


def draw(size: int = SIZE) -> Image.Image:
    """The icon as an RGBA image of ``size`` x ``size`` pixels (transparent outside the rounded square)."""
    s = size * SCALE
    img = Image.new("RGBA", (s, s), (0, 0, 0, 0))
    d = ImageDraw.Draw(img)
    u = s / 100  # drawing units: the square is 100 x 100
    d.rounded_rectangle([0, 0, s - 1, s - 1], radius=18 * u, fill=BACKGROUND)
    left, right, top, bar_h, gap = 14 * u, 62 * u, 20 * u, 10 * u, 6 * u
    for i, (score, colour) in enumerate(BARS):
        y = top + i * (bar_h + gap)
        d.rounded_rectangle([left, y, right, y + bar_h], radius=bar_h / 2, fill=TRACK)
        d.rounded_rectangle([left, y, left + (right - left) * score / 4, y + bar_h], radius=bar_h / 2, fill=colour)
    # the arrow up: refine and try again
    cx, shaft_w = 78 * u, 7 * u
    d.rectangle([cx - shaft_w / 2, 40 * u, cx + shaft_w / 2, 80 * u], fill=ARROW)
    d.polygon([(cx - 12 * u, 42 * u), (cx + 12 * u, 42 * u), (cx, 20 * u)], fill=ARROW)
    return img.resize((size, size), Image.LANCZOS)


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    draw().save(out, optimize=True)
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
