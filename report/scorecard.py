"""Score card: a picture beside a panel of per-aspect score bars, the overall score and short reasons.

Used by the Score Card node (its IMAGE output goes to Preview/Save) and shared with the HTML report
(``aspect_rows``, ``score_colour``, ``short_reason``) so both show the same numbers the same way.

Legibility rule: the card is at least 512 px tall and every font is sized from the card height
(never under 14 px), so a 512 px card reads at 100 % zoom. Fonts: Pillow's built-in scalable font
(Pillow >= 10.1), else DejaVu Sans, else the fixed bitmap font. The built-in font only covers
ASCII and a few symbols, so text is folded to what it can draw (``é`` -> ``e``) instead of boxes.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Sequence

from PIL import Image, ImageDraw, ImageFont

from ..models.format.aspects import ASPECT_TITLES, KINDS, SCORE_MAX
from ..models.format.critique import Comparison, Critique

MIN_HEIGHT, MAX_HEIGHT = 512, 1024
MAX_ASPECT = 4  # widest picture area, in card heights
MIN_FONT_PX = 14

BG, PANEL_BG, TEXT, MUTED, RULE = "#ffffff", "#f7f8fa", "#1d232b", "#5f6b7a", "#d5dae1"
TRACK, NA_GREY, WARN = "#e3e7ec", "#b4bac2", "#b45309"
RED, ORANGE, GREEN = "#d64545", "#e8912d", "#2f9e55"

_KIND_TITLES = {"t2i": "Text-to-image critique", "edit": "Edit critique",
                "pairwise-t2i": "Pairwise comparison", "pairwise-edit": "Pairwise edit comparison"}


# -- shared with the HTML report ------------------------------------------------------------------

def score_colour(score: float | None) -> str:
    """Bar colour of a 1-4 score: red below 2, orange below 3, green from 3; grey when None."""
    if score is None:
        return NA_GREY
    return RED if score < 2.0 else ORANGE if score < 3.0 else GREEN


def overall_colour(overall: float | None) -> str:
    """Colour of a 0-1 overall score, by the same thresholds mapped back onto the 1-4 scale."""
    return score_colour(None if overall is None else 1.0 + 3.0 * overall)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def short_reason(text: str | None, max_chars: int = 180) -> str | None:
    """The first sentence of a justification (whitespace collapsed, cut at ``max_chars``)."""
    if not text:
        return None
    flat = " ".join(text.split())
    first = _SENTENCE_END.split(flat, maxsplit=1)[0]
    if len(first) > max_chars:
        first = first[: max_chars - 1].rsplit(" ", 1)[0] + "…"
    return first or None


@dataclass(frozen=True)
class AspectRow:
    """One aspect as presented: per side a score and a state ("ok", "na" or "missing")."""

    key: str
    title: str
    scores: tuple[float | None, ...]  # one entry (pointwise) or two (A, B)
    states: tuple[str, ...]
    winner: str | None
    reason: str | None


def aspect_rows(result: Critique | Comparison) -> list[AspectRow]:
    """The aspects to show, in the trained order: every aspect of the kind (missing ones marked
    "missing"), plus any extra aspect the answer scored (an N/A extra is left out as noise)."""
    kind = KINDS.get(result.kind)
    names = list(kind.aspects) if kind else []
    names += [n for n in result.aspects if n not in names]
    pair = isinstance(result, Comparison)
    rows = []
    for name in names:
        a = result.aspects.get(name)
        if a is None:
            n = 2 if pair else 1
            rows.append(AspectRow(name, ASPECT_TITLES[name], (None,) * n, ("missing",) * n, None, None))
            continue
        if kind and name not in kind.aspects and a.not_applicable:
            continue
        scores = (a.score_a, a.score_b) if pair else (a.score,)
        states = tuple("na" if a.not_applicable else "missing" if s is None else "ok" for s in scores)
        rows.append(AspectRow(name, ASPECT_TITLES[name], scores, states,
                              getattr(a, "winner", None), short_reason(a.justification)))
    return rows


def format_score(score: float | None, state: str) -> str:
    """A 1-4 score as shown: "3.5", "N/A" or "?"."""
    if state == "na":
        return "N/A"
    if state == "missing" or score is None:
        return "?"
    return f"{score:.1f}"


def format_overall(overall: float | None) -> str:
    """A 0-1 overall as shown: "0.72 (72%)" or "? (unreadable)"."""
    return "? (unreadable)" if overall is None else f"{overall:.2f} ({overall * 100:.0f}%)"


def problems_line(problems: Sequence[str]) -> str | None:
    """A one-line warning summarising parse problems, or None when there are none."""
    if not problems:
        return None
    codes = ", ".join(dict.fromkeys(p.split(":", 1)[0].strip() for p in problems))
    n = len(problems)
    return f"{n} parsing problem{'s' if n != 1 else ''}: {codes}"


# -- fonts and text --------------------------------------------------------------------------------

_FOLD = {"\u2014": "-", "\u2013": "-", "\u2012": "-", "\u2212": "-", "\u00d7": "x", "\u2265": ">=",
         "\u2264": "<=", "\u2022": "·", "\u00a0": " ", "\u2026": "…"}
_DRAWABLE = set(map(chr, range(32, 127))) | set("©«°±´·»‘’“”…‹›⁄")


def fold_text(text: str) -> str:
    """Replace characters the built-in font cannot draw by the nearest ASCII (else "?")."""
    out = []
    for ch in text:
        if ch in _DRAWABLE:
            out.append(ch)
        elif ch in _FOLD:
            out.append(_FOLD[ch])
        elif ch in "\n\t\r":
            out.append(" ")
        else:
            base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            out.append(base or "?")
    return "".join(out)


@lru_cache(maxsize=32)
def get_font(size: int) -> ImageFont.ImageFont:
    """A scalable font of ``size`` px: Pillow's built-in one, else DejaVu Sans, else bitmap."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, AttributeError, OSError):  # Pillow < 10.1 or no FreeType
        try:
            return ImageFont.truetype("DejaVuSans.ttf", size)
        except OSError:
            return ImageFont.load_default()


def font_sizes(height: int) -> tuple[int, int, int]:
    """(body, small, title) font sizes in px for a card ``height`` px tall; none under 14 px."""
    body = max(MIN_FONT_PX, round(height / 32))
    return body, max(MIN_FONT_PX, round(body * 0.875)), max(MIN_FONT_PX, round(body * 1.3))


def wrap(text: str, font: Any, max_width: float, max_lines: int | None = None) -> list[str]:
    """Greedy word wrap measured with ``font``; over ``max_lines`` the last line ends with "…"."""
    words, lines, cur = fold_text(text).split(), [], ""
    for w in words:
        while font.getlength(w) > max_width and len(w) > 1:  # break a word wider than the line
            cut = len(w) - 1
            while cut > 1 and font.getlength(w[:cut]) > max_width:
                cut -= 1
            if cur:
                lines.append(cur)
                cur = ""
            lines.append(w[:cut])
            w = w[cut:]
        trial = f"{cur} {w}" if cur else w
        if font.getlength(trial) <= max_width:
            cur = trial
        else:
            lines.append(cur)
            cur = w
    if cur:
        lines.append(cur)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        if lines:
            last = lines[-1]
            while last and font.getlength(last + "…") > max_width:
                last = last[:-1]
            lines[-1] = last.rstrip() + "…"
    return lines


# -- drawing ---------------------------------------------------------------------------------------

class _Panel:
    """Lays out the text panel top to bottom; with ``draw=None`` it only measures."""

    def __init__(self, canvas: Image.Image | None, x: int, width: int, height: int, reason_lines: int):
        self.canvas, self.x, self.w = canvas, x, width
        self.draw = ImageDraw.Draw(canvas) if canvas is not None else None
        self.body, self.small, self.title = font_sizes(height)
        self.pad = self.body
        self.y = self.pad
        self.reason_lines = reason_lines

    def text(self, s: str, size: int, colour: str = TEXT, *, x: int | None = None, bold: bool = False,
             right: bool = False, line: int | None = None) -> None:
        """Draw ``s`` at the current y; ``line`` = the font size of the line it shares, so texts of
        different sizes on one line sit on one baseline."""
        f = get_font(size)
        xx = self.x + self.pad if x is None else x
        if self.draw is not None:
            y, v = (self.y, "a") if line is None else (self.y + get_font(line).getmetrics()[0], "s")
            # a 1 px stroke reads as bold from ~21 px; below that it smears the letters together
            self.draw.text((xx, y), fold_text(s), font=f, fill=colour, anchor=("r" if right else "l") + v,
                           stroke_width=1 if bold and size >= 21 else 0, stroke_fill=colour)

    def advance(self, size: int, factor: float = 1.3) -> None:
        self.y += round(size * factor)

    def paragraph(self, s: str, size: int, colour: str, max_lines: int | None, indent: int = 0) -> None:
        for line in wrap(s, get_font(size), self.w - 2 * self.pad - indent, max_lines):
            self.text(line, size, colour, x=self.x + self.pad + indent)
            self.advance(size, 1.25)

    def bar(self, fraction: float | None, colour: str, state: str, x0: int, x1: int) -> None:
        h = max(8, round(self.body * 0.6))
        box = (x0, self.y, x1, self.y + h)
        if self.draw is not None:
            r = h // 2
            if state == "missing":
                _hatch(self.canvas, box, r)
            else:
                self.draw.rounded_rectangle(box, r, fill=NA_GREY if state == "na" else TRACK)
                if state == "ok" and fraction is not None and fraction > 0:
                    fill_x = x0 + max(h, round((x1 - x0) * min(1.0, fraction)))
                    self.draw.rounded_rectangle((x0, self.y, fill_x, self.y + h), r, fill=colour)
        self.y += h

    def side_bar(self, side: str, value: str, value_colour: str, fraction: float | None, colour: str,
                 state: str, label_w: int, value_w: int) -> None:
        """One row "A [bar] value" of a comparison."""
        self.text(side, self.body, MUTED)
        self.text(value, self.body, value_colour, x=self.x + self.w - self.pad, right=True)
        self.y += round(self.body * 0.3)
        self.bar(fraction, colour, state, self.x + self.pad + label_w, self.x + self.w - self.pad - value_w)
        self.y += round(self.body * 0.55)

    def rule(self) -> None:
        self.y += self.pad // 2
        if self.draw is not None:
            self.draw.line((self.x + self.pad, self.y, self.x + self.w - self.pad, self.y), fill=RULE, width=1)
        self.y += self.pad // 2 + 2


def _hatch(canvas: Image.Image, box: tuple[int, int, int, int], radius: int) -> None:
    """An outlined, diagonally hatched bar: the score is unknown (missing or unreadable)."""
    x0, y0, x1, y1 = box
    h = y1 - y0
    tile = Image.new("RGB", (x1 - x0 + 1, h + 1), BG)
    td = ImageDraw.Draw(tile)
    for x in range(-h, x1 - x0 + h, max(4, h // 2 + 2)):
        td.line((x, h, x + h, 0), fill=NA_GREY, width=max(1, h // 6))
    mask = Image.new("L", tile.size, 0)
    ImageDraw.Draw(mask).rounded_rectangle((0, 0, tile.width - 1, tile.height - 1), radius, fill=255)
    canvas.paste(tile, (x0, y0), mask)
    ImageDraw.Draw(canvas).rounded_rectangle(box, radius, outline=NA_GREY, width=1)


def _layout(p: _Panel, result: Critique | Comparison | None, title: str | None) -> int:
    """Draw (or measure) the panel contents; returns the y below the last line."""
    kind_title = _KIND_TITLES.get(getattr(result, "kind", ""), "Critique")
    p.text(title or f"RationalRewards · {kind_title}", p.title, bold=True)
    p.advance(p.title, 1.45)
    if result is None:
        p.paragraph("No critique was given for this image.", p.body, MUTED, None)
        return p.y + p.pad
    pair = isinstance(result, Comparison)
    inner_l, inner_r = p.x + p.pad, p.x + p.w - p.pad
    if pair:
        label_w = round(get_font(p.body).getlength("B ")) + 2
        won = {"A": "Image A wins", "B": "Image B wins", "tie": "Tie"}.get(result.winner or "", "Winner unknown")
        p.text("Overall", p.body, MUTED)
        p.text(won, p.body, TEXT, x=inner_r, right=True, bold=True)
        p.advance(p.body, 1.35)
        score_w = round(get_font(p.body).getlength(" 0.00 (100%)")) + 4
        for side, ov in (("A", result.overall_a), ("B", result.overall_b)):
            known = ov is not None
            p.side_bar(side, format_overall(ov) if known else "?", overall_colour(ov) if known else MUTED, ov,
                       overall_colour(ov), "ok" if known else "missing", label_w, score_w)
    else:
        p.text("Overall", p.body, MUTED, line=p.title)
        p.text(format_overall(result.overall), p.title, overall_colour(result.overall) if result.overall
               is not None else MUTED, x=inner_r, right=True, bold=True, line=p.title)
        p.advance(p.title, 1.25)
        p.bar(result.overall, overall_colour(result.overall), "ok" if result.overall is not None else "missing",
              inner_l, inner_r)
        if result.needs_refinement is not None:
            p.y += round(p.small * 0.5)
            p.text("Needs refinement: " + ("yes" if result.needs_refinement else "no"), p.small, MUTED)
            p.advance(p.small, 1.0)
    p.rule()
    for row in aspect_rows(result):
        p.text(row.title, p.body, TEXT, bold=True, line=p.body)
        if pair:
            won = {"A": "A better", "B": "B better", "tie": "tie"}.get(row.winner or "", "")
            p.text(won, p.small, MUTED, x=inner_r, right=True, line=p.body)
            p.advance(p.body, 1.3)
            sw = round(get_font(p.body).getlength("N/A ")) + 4
            for side, s, st in zip("AB", row.scores, row.states):
                p.side_bar(side, format_score(s, st), TEXT if st == "ok" else MUTED,
                           None if s is None else s / SCORE_MAX, score_colour(s), st, label_w, sw)
        else:
            st = row.states[0]
            p.text(format_score(row.scores[0], st), p.body, TEXT if st == "ok" else MUTED, x=inner_r,
                   right=True, bold=st == "ok", line=p.body)
            p.advance(p.body, 1.3)
            s = row.scores[0]
            p.bar(None if s is None else s / SCORE_MAX, score_colour(s), st, inner_l, inner_r)
            p.y += round(p.body * 0.35)
        if row.reason and p.reason_lines > 0:
            p.paragraph(row.reason, p.small, MUTED, p.reason_lines)
        p.y += round(p.body * 0.45)
    warning = problems_line(result.problems)
    if warning:
        p.rule()
        p.paragraph("! " + warning, p.small, WARN, 2)
    return p.y + p.pad // 2


def _labels(result: Critique | Comparison | None, n: int) -> list[str | None]:
    """Corner labels of the pictures: from the kind ("Source", "Edited", "A", "B"), else A, B, ..."""
    kind = KINDS.get(getattr(result, "kind", ""))
    if n == 1:
        return [None]
    if kind is None or kind.n_images != n:
        return [chr(ord("A") + i) for i in range(n)]
    return [w[-1] if w[-1] in ("A", "B") else w[0] for w in (lab.split() for lab in kind.image_labels)]


def _as_images(image: Any) -> list[Image.Image]:
    items = list(image) if isinstance(image, (list, tuple)) else [image]
    if not items or not all(isinstance(i, Image.Image) for i in items):
        raise TypeError("image must be a PIL image or a list of PIL images (A, B for a comparison)")
    return [i.convert("RGB") for i in items]


def render_scorecard(
    image: Image.Image | Sequence[Image.Image],
    critique: Critique | Comparison | None,
    *,
    width: int | None = None,
    title: str | None = None,
) -> Image.Image:
    """An RGB score card: the picture(s) at a standard height beside the score panel.

    ``image`` is one picture, or several shown side by side and labelled by the critique's kind
    (A and B for a Comparison; Source and Edited for an edit critique). The pictures are scaled to
    their own height clamped to 512-1024 px (aspect kept; pictures wider than 4 card heights in all
    are shrunk to fit and centred); ``width`` is the panel width in px
    (default: about 30 body-font widths). The panel grows taller than the pictures when its text
    needs it, after shortening the reasons to fewer lines first.
    """
    if critique is not None and not isinstance(critique, (Critique, Comparison)):
        raise TypeError(
            f"critique must be a Critique, a Comparison or None, got {type(critique).__name__}: "
            "wire the critique output of a Critic or Compare node"
        )
    pics = _as_images(image)
    height = min(MAX_HEIGHT, max(MIN_HEIGHT, max(p.height for p in pics)))
    # very wide pictures are fitted into MAX_ASPECT x height (centred) so the card stays a sane size
    total = sum(p.width / p.height for p in pics)
    pic_h = min(height, round(height * MAX_ASPECT / total))
    pics = [p.resize((max(1, round(p.width * pic_h / p.height)), max(1, pic_h)), Image.LANCZOS) for p in pics]
    body = font_sizes(height)[0]
    panel_w = int(width) if width else round(body * (34 if isinstance(critique, Comparison) else 30))
    if panel_w < body * 16:
        raise ValueError(f"width {width} is too narrow for a legible panel: use at least {body * 16} px")
    gap = max(2, height // 128)
    pics_w = sum(p.width for p in pics) + gap * (len(pics) - 1)
    for lines in (3, 2, 1, 0):  # fewer reason lines before growing the card
        needed = _layout(_Panel(None, pics_w, panel_w, height, lines), critique, title)
        if needed <= height:
            break
    card = Image.new("RGB", (pics_w + panel_w, max(height, needed)), BG)
    draw = ImageDraw.Draw(card)
    draw.rectangle((pics_w, 0, card.width, card.height), fill=PANEL_BG)
    draw.line((pics_w, 0, pics_w, card.height), fill=RULE, width=1)
    x = 0
    for pic, label in zip(pics, _labels(critique, len(pics))):
        top = (height - pic.height) // 2
        card.paste(pic, (x, top))
        if label:
            f = get_font(body)
            tw = round(f.getlength(label))
            draw.rounded_rectangle((x + body // 2, top + body // 2, x + body + tw + body // 2, top + body * 2),
                                   body // 3, fill=TEXT)
            draw.text((x + body, top + body // 2 + round(body * 0.25)), label, font=f, fill="#ffffff")
        x += pic.width + gap
    _layout(_Panel(card, pics_w, panel_w, height, lines), critique, title)
    return card


def scorecards_batch(images: Sequence[Any], critiques: Sequence[Critique | Comparison | None], *,
                     width: int | None = None, title: str | None = None) -> list[Image.Image]:
    """One card per (image, critique) pair, padded (white, right and bottom) to one common size so
    they stack into a single IMAGE batch. An image entry may itself be a list (A, B)."""
    images, critiques = list(images), list(critiques)
    if len(images) != len(critiques):
        raise ValueError(
            f"{len(images)} images but {len(critiques)} critiques: give one critique per image"
        )
    cards = [render_scorecard(i, c, width=width, title=title) for i, c in zip(images, critiques)]
    w = max(c.width for c in cards)
    h = max(c.height for c in cards)
    out = []
    for c in cards:
        if c.size != (w, h):
            padded = Image.new("RGB", (w, h), BG)
            padded.paste(c, (0, 0))
            c = padded
        out.append(c)
    return out
