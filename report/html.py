"""A self-contained HTML report of a refine run: one row per iteration (image, prompt, score bars,
decision). No scripts, no external assets; images are referenced by file name relative to the
report, so the output folder can be zipped or served as is. Every piece of text is escaped.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import quote

from ..models.format.aspects import SCORE_MAX
from ..models.format.critique import Comparison, Critique, result_from_dict
from .scorecard import (aspect_rows, format_overall, format_score, overall_colour, problems_line,
                        score_colour)

REPORT_NAME = "report.html"

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d232b;background:#f7f8fa}
h1{font-size:22px;margin:0 0 4px}.sub{color:#5f6b7a;margin:0 0 20px}
.it{display:flex;gap:20px;background:#fff;border:1px solid #d5dae1;border-radius:8px;padding:16px;margin:0 0 16px}
.it.best{border-color:#2f9e55;box-shadow:0 0 0 2px #2f9e5533}
.it img{max-width:384px;max-height:384px;border-radius:4px;align-self:flex-start}
.info{flex:1;min-width:280px}.head{display:flex;justify-content:space-between;align-items:baseline}
.head h2{font-size:17px;margin:0}.meta{color:#5f6b7a;font-size:13px}
.prompt{white-space:pre-wrap;background:#f2f4f7;border-radius:4px;padding:8px;margin:8px 0}
.overall{font-size:18px;font-weight:600}
.row{margin:8px 0}.row .lab{display:flex;justify-content:space-between}
.bar{height:10px;border-radius:5px;background:#e3e7ec;overflow:hidden;margin:3px 0}
.bar>span{display:block;height:100%;border-radius:5px}.bar.na{background:#b4bac2}
.bar.missing{background:repeating-linear-gradient(45deg,#fff 0 4px,#b4bac2 4px 6px);border:1px solid #b4bac2}
.why{color:#5f6b7a;font-size:13px}.warn{color:#b45309;font-size:13px}
.decision{margin-top:10px;border-top:1px solid #d5dae1;padding-top:8px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;background:#e3e7ec}
.badge.best{background:#2f9e55;color:#fff}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _src(image_file: Any, out_dir: Path) -> str:
    """The image's path relative to the report, URL-quoted and escaped for an attribute."""
    p = Path(os.fspath(image_file))
    if p.is_absolute():
        p = Path(os.path.relpath(p, out_dir))
    return _e(quote(p.as_posix()))


def _bar(fraction: float | None, colour: str, state: str) -> str:
    if state != "ok" or fraction is None:
        return f'<div class="bar {state}"></div>'
    pct = max(0.0, min(100.0, fraction * 100))
    return f'<div class="bar"><span style="width:{pct:.1f}%;background:{colour}"></span></div>'


def _critique_html(result: Critique | Comparison) -> str:
    parts = []
    if isinstance(result, Comparison):
        for side, ov in (("A", result.overall_a), ("B", result.overall_b)):
            parts.append(f'<div class="overall">{side}: {_e(format_overall(ov))}</div>'
                         + _bar(ov, overall_colour(ov), "ok" if ov is not None else "missing"))
        parts.append(f'<div>Winner: {_e(result.winner or "?")}</div>')
    else:
        ov = result.overall
        parts.append(f'<div class="overall" style="color:{overall_colour(ov)}">Overall '
                     f'{_e(format_overall(ov))}</div>'
                     + _bar(ov, overall_colour(ov), "ok" if ov is not None else "missing"))
    for row in aspect_rows(result):
        if len(row.scores) == 1:
            s, st = row.scores[0], row.states[0]
            bars = [f'<div class="lab"><span>{_e(row.title)}</span><b>{_e(format_score(s, st))}</b></div>'
                    + _bar(None if s is None else s / SCORE_MAX, score_colour(s), st)]
        else:
            won = {"A": "A better", "B": "B better", "tie": "tie"}.get(row.winner or "", "")
            bars = [f'<div class="lab"><span>{_e(row.title)}</span><span class="meta">{_e(won)}</span></div>']
            for side, s, st in zip("AB", row.scores, row.states):
                bars.append(f'<div class="lab"><span>{side}</span><b>{_e(format_score(s, st))}</b></div>'
                            + _bar(None if s is None else s / SCORE_MAX, score_colour(s), st))
        why = f'<div class="why">{_e(row.reason)}</div>' if row.reason else ""
        parts.append(f'<div class="row">{"".join(bars)}{why}</div>')
    warning = problems_line(result.problems)
    if warning:
        parts.append(f'<div class="warn">! {_e(warning)}</div>')
    return "".join(parts)


def _result(critique: Any) -> Critique | Comparison | None:
    if critique is None or isinstance(critique, (Critique, Comparison)):
        return critique
    return result_from_dict(critique)


def _score(result: Critique | Comparison | None) -> float | None:
    return result.overall if isinstance(result, Critique) else None


def write_html_report(
    out_dir: str | os.PathLike,
    iterations: Sequence[Mapping[str, Any]],
    *,
    title: str = "RationalRewards refine report",
    file_name: str = REPORT_NAME,
) -> Path:
    """Write ``out_dir/report.html`` for a refine run and return its path.

    Each entry of ``iterations`` is a dict with these keys (all but ``iteration`` optional):

    - ``iteration`` (int): 0 for the first generation, then 1, 2, ...
    - ``image_file`` (str): the image's file name relative to ``out_dir`` (an absolute path is made
      relative to it)
    - ``prompt`` (str): the prompt that produced the image
    - ``seed`` (int)
    - ``critique`` (dict): the critique's ``to_dict()`` form (a Critique/Comparison object is
      accepted too), or None when critiquing failed
    - ``decision`` (dict): ``{"next_prompt": str, "changed": bool, "reason": str}``, or None after
      the last iteration
    - ``seconds`` (float): time the iteration took

    The iteration with the best overall score is marked. All text is HTML-escaped.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"report folder {out} is a file: pass a folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    rows = [(dict(it), _result(it.get("critique"))) for it in iterations]
    scored = [(s, i) for i, (_, r) in enumerate(rows) if (s := _score(r)) is not None]
    best = max(scored, key=lambda t: (t[0], -t[1]))[1] if scored else None
    body = []
    for i, (it, result) in enumerate(rows):
        n = it.get("iteration", i)
        meta = [f"seed {_e(it['seed'])}" if it.get("seed") is not None else "",
                f"{float(it['seconds']):.1f} s" if it.get("seconds") is not None else ""]
        img = (f'<img src="{_src(it["image_file"], out)}" alt="iteration {_e(n)}">'
               if it.get("image_file") else "")
        crit = _critique_html(result) if result is not None else '<div class="why">No critique.</div>'
        dec = it.get("decision") or None
        dec_html = ""
        if dec:
            changed = "prompt changed" if dec.get("changed") else "prompt kept"
            dec_html = (f'<div class="decision"><span class="badge">{_e(changed)}</span> '
                        f'{_e(dec.get("reason"))}'
                        + (f'<div class="prompt">{_e(dec.get("next_prompt"))}</div>'
                           if dec.get("changed") and dec.get("next_prompt") else "") + "</div>")
        badge = ' <span class="badge best">best</span>' if i == best else ""
        body.append(
            f'<section class="it{" best" if i == best else ""}" id="it{_e(n)}">{img}<div class="info">'
            f'<div class="head"><h2>Iteration {_e(n)}{badge}</h2>'
            f'<span class="meta">{" · ".join(m for m in meta if m)}</span></div>'
            f'<div class="prompt">{_e(it.get("prompt"))}</div>{crit}{dec_html}</div></section>'
        )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>"
        f'<h1>{_e(title)}</h1><p class="sub">{len(rows)} iteration{"s" if len(rows) != 1 else ""}'
        + (f", best: iteration {_e(rows[best][0].get('iteration', best))}" if best is not None else "")
        + "</p>" + "\n".join(body) + "</body></html>\n"
    )
    path = out / file_name
    path.write_text(page, encoding="utf-8")
    return path
