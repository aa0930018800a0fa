"""Template thumbnails: what each workflow makes or does, drawn with PIL (no model, no downloaded picture).

ComfyUI's Browse Templates dialog shows ``workflows/<name>.jpg`` on the workflow's card, a few hundred
pixels wide, so every picture is 512 x 512 with large type: a title, then the workflow's result in
miniature (a scored picture, a before/after with the scores, a ranked batch, an A/B verdict). The pictures
inside are one drawn scene (a fox in a snowy forest at dawn beside a sign, the prompt the workflows use), in
the flawed and the fixed version the critic's scores stand for.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PIL import Image, ImageDraw, ImageFilter

from rationalrewards.report.scorecard import GREEN, get_font, score_colour

SIZE = 512
BG, INK, MUTED = (27, 29, 35), (245, 246, 248), (165, 172, 184)
ACCENT = (120, 110, 230)


# ------------------------------------------------------------------------------------------ the scene
def scene(good: bool = True, size: int = 240, sky: str = "dawn", sign: str | None = None) -> Image.Image:
    """A fox in a snowy forest at dawn beside a wooden sign. ``good=False`` draws what a critic faults: a
    misspelt sign, a washed-out palette and a blurred fox. ``sky="sunset"`` is the edited version."""
    s = 4  # draw large, then shrink: smooth edges
    w = h = size * s
    img = Image.new("RGB", (w, h))
    d = ImageDraw.Draw(img)
    top, bottom = ((70, 110, 170), (240, 180, 170)) if sky == "dawn" else ((120, 40, 90), (255, 150, 60))
    for y in range(h):
        t = y / h
        d.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    if sky == "sunset":
        d.ellipse([w * .58, h * .38, w * .86, h * .66], fill=(255, 200, 90))
    for x0, scale in ((.02, .9), (.16, 1.1), (.72, 1.0), (.86, .8)):  # pines
        cx, base = w * (x0 + .07), h * .74
        for k in range(3):
            half = w * .07 * scale * (1 - k * .22)
            y1 = base - h * .12 * scale * k
            d.polygon([(cx - half, y1), (cx + half, y1), (cx, y1 - h * .2 * scale)], fill=(34, 78, 62))
    d.rectangle([0, h * .72, w, h], fill=(236, 240, 247))  # snow
    d.ellipse([-w * .2, h * .66, w * .7, h * .86], fill=(244, 246, 251))
    # the sign
    d.rectangle([w * .60, h * .56, w * .625, h * .80], fill=(110, 70, 40))
    d.rectangle([w * .47, h * .47, w * .90, h * .60], fill=(160, 108, 62), outline=(90, 55, 30), width=s * 3)
    text = sign or ("WINTER" if good else "WNITR")
    font = get_font(int(h * .085))
    tw = d.textlength(text, font=font)
    d.text(((w * .685) - tw / 2, h * .485), text, fill=(250, 240, 220), font=font)
    # the fox (body, head, ears, tail, white chest)
    fox = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    f = ImageDraw.Draw(fox)
    orange = (226, 110, 40) if good else (200, 140, 110)
    f.ellipse([w * .12, h * .58, w * .38, h * .80], fill=orange)  # body
    f.ellipse([w * .02, h * .68, w * .22, h * .78], fill=orange)  # tail
    f.ellipse([w * .02, h * .70, w * .08, h * .76], fill=(250, 250, 250))  # tail tip
    f.ellipse([w * .25, h * .46, w * .42, h * .62], fill=orange)  # head
    f.polygon([(w * .27, h * .50), (w * .29, h * .40), (w * .32, h * .48)], fill=orange)  # ears
    f.polygon([(w * .35, h * .48), (w * .39, h * .40), (w * .40, h * .51)], fill=orange)
    f.polygon([(w * .36, h * .57), (w * .46, h * .58), (w * .38, h * .62)], fill=orange)  # snout
    f.ellipse([w * .27, h * .60, w * .35, h * .72], fill=(250, 246, 240))  # chest
    f.ellipse([w * .355, h * .515, w * .37, h * .53], fill=(30, 20, 20))  # eye
    if not good:
        fox = fox.filter(ImageFilter.GaussianBlur(s * 6))
    img.paste(fox, (0, 0), fox)
    if not good:  # washed out
        img = Image.blend(img, Image.new("RGB", img.size, (200, 200, 200)), 0.35)
    return img.resize((size, size), Image.LANCZOS)


# ------------------------------------------------------------------------------------------ drawing kit
def _canvas(title: str, subtitle: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    """The card's frame. The Templates dialog lays its "Node graph" badge over the picture's top-left corner,
    so the top band carries nothing but the accent, the subtitle sits under the badge and the title at the
    bottom (the dialog prints the file name under the card too)."""
    img = Image.new("RGB", (SIZE, SIZE), BG)
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, SIZE, 6], fill=ACCENT)
    d.text((22, 72), subtitle, fill=MUTED, font=get_font(23))
    d.rectangle([0, SIZE - 58, SIZE, SIZE], fill=(40, 43, 52))
    d.text((22, SIZE - 50), title, fill=INK, font=get_font(34))
    return img, d


def _badge(d: ImageDraw.ImageDraw, xy: tuple[int, int], overall: float, size: int = 28) -> None:
    """A rounded label with the overall score in its colour (the score card's thresholds)."""
    text = f"{overall:.2f}"
    font = get_font(size)
    w = d.textlength(text, font=font) + 20
    x, y = xy
    d.rounded_rectangle([x, y, x + w, y + size + 14], radius=10, fill=score_colour(1 + 3 * overall))
    d.text((x + 10, y + 5), text, fill=(255, 255, 255), font=font)


def _arrow(d: ImageDraw.ImageDraw, x0: int, x1: int, y: int, colour=MUTED) -> None:
    d.line([(x0, y), (x1 - 14, y)], fill=colour, width=6)
    d.polygon([(x1, y), (x1 - 18, y - 12), (x1 - 18, y + 12)], fill=colour)


def _bar(d: ImageDraw.ImageDraw, x: int, y: int, width: int, label: str, score: float | None) -> None:
    font = get_font(22)
    d.text((x, y), label, fill=INK, font=font)
    d.text((x + width - 44, y), "N/A" if score is None else f"{score:.1f}", fill=INK, font=font)
    d.rounded_rectangle([x, y + 30, x + width, y + 44], radius=7, fill=(60, 64, 72))
    if score is not None:
        d.rounded_rectangle([x, y + 30, x + int(width * score / 4), y + 44], radius=7, fill=score_colour(score))


def _framed(img: Image.Image, pic: Image.Image, xy: tuple[int, int], colour=None, width: int = 5) -> None:
    img.paste(pic, xy)
    if colour:
        ImageDraw.Draw(img).rectangle([xy[0] - width, xy[1] - width, xy[0] + pic.width + width - 1,
                                       xy[1] + pic.height + width - 1], outline=colour, width=width)


# ------------------------------------------------------------------------------------------ thumbnails
def critique_image(path: Path) -> None:
    img, d = _canvas("Critique a picture", "1-4 score per aspect, with reasons")
    _framed(img, scene(False, 220), (22, 112))
    x = 266
    _bar(d, x, 112, 224, "Prompt", 2.5)
    _bar(d, x, 176, 224, "Quality", 3.0)
    _bar(d, x, 240, 224, "Text", 1.5)
    d.text((x, 292), "overall", fill=MUTED, font=get_font(22))
    _badge(d, (x + 96, 286), 0.44)
    d.rounded_rectangle([22, 344, SIZE - 22, 438], radius=10, fill=(40, 43, 52))
    d.text((36, 352), "Refined prompt:", fill=MUTED, font=get_font(20))
    d.text((36, 378), "...a wooden sign that clearly", fill=INK, font=get_font(22))
    d.text((36, 404), "reads \"WINTER\", sharp focus", fill=INK, font=get_font(22))
    img.save(path, "JPEG", quality=88)


def _before_after(title: str, subtitle: str, path: Path, before: Image.Image, after: Image.Image,
                  scores: tuple[float, float]) -> None:
    img, d = _canvas(title, subtitle)
    _framed(img, before, (22, 130))
    _framed(img, after, (SIZE - 22 - after.width, 130), GREEN)
    _arrow(d, 22 + before.width + 8, SIZE - 22 - after.width - 10, 130 + before.height // 2)
    _badge(d, (22, 130 + before.height + 16), scores[0])
    _badge(d, (SIZE - 22 - after.width, 130 + after.height + 16), scores[1])
    img.save(path, "JPEG", quality=88)


def t2i_one_refine_step(path: Path) -> None:
    _before_after("Critique, refine once", "same seed, the critic's prompt", path, scene(False, 200),
                  scene(True, 200), (0.44, 0.89))


def _tries(title: str, subtitle: str, path: Path, pics: list[Image.Image], scores: list[float],
           stop: str) -> None:
    img, d = _canvas(title, subtitle)
    w = pics[0].width
    gap = (SIZE - 44 - len(pics) * w) // (len(pics) - 1)
    for i, (p, sc) in enumerate(zip(pics, scores)):
        x = 22 + i * (w + gap)
        _framed(img, p, (x, 140), GREEN if i == len(pics) - 1 else None)
        _badge(d, (x, 140 + w + 14), sc, 24)
        d.text((x, 120 - 6), f"try {i + 1}", fill=MUTED, font=get_font(20))
    d.text((22, 350), stop, fill=INK, font=get_font(24))
    img.save(path, "JPEG", quality=88)


def simple_loop_early_stop(path: Path) -> None:
    _tries("Refinement Loop", "stops early, keeps the best try", path,
           [scene(False, 140), scene(False, 140, sign="WINTR"), scene(True, 140)], [0.44, 0.67, 0.92],
           "all aspects >= 3: stop, best = try 3")


def simple_loop_remote(path: Path) -> None:
    img, d = _canvas("Loop, remote critic", "the critic on a vLLM server")
    _framed(img, scene(False, 150), (22, 130))
    _framed(img, scene(True, 150), (SIZE - 172, 130), GREEN)
    _arrow(d, 186, SIZE - 186, 205)
    _badge(d, (22, 296), 0.44, 24)
    _badge(d, (SIZE - 172, 296), 0.92, 24)
    d.rounded_rectangle([150, 360, SIZE - 150, 440], radius=12, fill=(40, 43, 52), outline=ACCENT, width=3)
    for k in range(3):
        d.rounded_rectangle([168, 374 + k * 20, 200, 386 + k * 20], radius=3, fill=(90, 200, 120))
    d.text((214, 384), "vLLM server", fill=INK, font=get_font(24))
    img.save(path, "JPEG", quality=88)


def graph_loop_flux_t2i(path: Path) -> None:
    img, d = _canvas("Graph Loop: Flux", "your own nodes, re-run with a refined prompt")
    boxes = [("Loop Start", ACCENT), ("your nodes", (70, 72, 80)), ("Loop End", ACCENT)]
    for i, (label, colour) in enumerate(boxes):
        x = 22 + i * 166
        d.rounded_rectangle([x, 112, x + 136, 170], radius=10, fill=colour)
        font = get_font(21)
        d.text((x + 68 - d.textlength(label, font=font) / 2, 128), label, fill=INK, font=font)
        if i < 2:
            _arrow(d, x + 138, x + 164, 141)
    d.line([(SIZE - 90, 172), (SIZE - 90, 196), (90, 196), (90, 172)], fill=GREEN, width=4)  # and back
    d.polygon([(90, 170), (80, 186), (100, 186)], fill=GREEN)
    _framed(img, scene(False, 150), (40, 226))
    _framed(img, scene(True, 150), (SIZE - 190, 226), GREEN)
    _arrow(d, 200, SIZE - 200, 301)
    _badge(d, (40, 388), 0.44, 24)
    _badge(d, (SIZE - 190, 388), 0.89, 24)
    img.save(path, "JPEG", quality=88)


def graph_loop_qwen_image_edit(path: Path) -> None:
    img, d = _canvas("Graph Loop: image edit", "\"replace the sky with a warm sunset\"")
    src, edit1, edit2 = scene(True, 140), scene(True, 140), scene(True, 140, sky="sunset")
    edit1 = Image.blend(edit1, scene(True, 140, sky="sunset"), 0.35)  # a half-done edit
    _tries_row = [(src, "source", None), (edit1, "edit 1", 0.50), (edit2, "edit 2", 0.92)]
    for i, (p, label, sc) in enumerate(_tries_row):
        x = 22 + i * 163
        _framed(img, p, (x, 140), GREEN if i == 2 else None)
        d.text((x, 114), label, fill=MUTED, font=get_font(20))
        if sc is not None:
            _badge(d, (x, 294), sc, 24)
    d.text((22, 360), "Edit critic: source kept, sky changed", fill=INK, font=get_font(22))
    img.save(path, "JPEG", quality=88)


def best_of_n(path: Path) -> None:
    img, d = _canvas("Best of N", "4 pictures, each scored on its own")
    pics = [scene(False, 140), scene(True, 140, sign="WINTR"), scene(True, 140), scene(False, 140, sign="WlNTER")]
    scores = [0.44, 0.72, 0.92, 0.58]
    for i, (p, sc) in enumerate(zip(pics, scores)):
        x, y = 40 + (i % 2) * 170, 112 + (i // 2) * 164
        _framed(img, p, (x, y), GREEN if sc == max(scores) else None)
        _badge(d, (x + 6, y + 140 - 44), sc, 22)
    d.text((386, 200), "keep", fill=INK, font=get_font(28))
    d.text((386, 236), "the", fill=INK, font=get_font(28))
    d.text((386, 272), "best", fill=GREEN, font=get_font(28))
    img.save(path, "JPEG", quality=88)


def pairwise_ab(path: Path) -> None:
    img, d = _canvas("Pairwise A/B", "which of two pictures fits the prompt")
    _framed(img, scene(False, 210), (22, 120))
    _framed(img, scene(True, 210), (SIZE - 232, 120), GREEN)
    d.text((22, 340), "A", fill=INK, font=get_font(30))
    d.text((SIZE - 232, 340), "B  wins", fill=GREEN, font=get_font(30))
    for k, (label, a, b) in enumerate((("Prompt", 2.5, 3.5), ("Quality", 3.0, 3.5))):
        y = 388 + k * 30
        d.text((22, y), f"{label}: A {a:.1f}  B {b:.1f}", fill=MUTED, font=get_font(20))
    img.save(path, "JPEG", quality=88)


THUMBNAILS: dict[str, Callable[[Path], None]] = {
    "critique_image": critique_image,
    "t2i_one_refine_step": t2i_one_refine_step,
    "simple_loop_early_stop": simple_loop_early_stop,
    "graph_loop_flux_t2i": graph_loop_flux_t2i,
    "graph_loop_qwen_image_edit": graph_loop_qwen_image_edit,
    "best_of_n": best_of_n,
    "pairwise_ab": pairwise_ab,
    "simple_loop_remote": simple_loop_remote,
}
