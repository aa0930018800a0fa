"""Presentation of critiques: score cards (PIL images), critique JSON in PNG metadata, HTML reports.

No ComfyUI imports; PIL and numpy only (torch never needed here).
"""
from .html import write_html_report
from .pngmeta import (PNG_KEY, CritiqueMetadataError, add_critique_to_pnginfo, read_critique_from_png,
                      save_png_with_critique)
from .scorecard import aspect_rows, render_scorecard, scorecards_batch

__all__ = [
    "PNG_KEY",
    "CritiqueMetadataError",
    "add_critique_to_pnginfo",
    "aspect_rows",
    "read_critique_from_png",
    "render_scorecard",
    "save_png_with_critique",
    "scorecards_batch",
    "write_html_report",
]
