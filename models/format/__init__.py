"""The RationalRewards critique format: request building, answer parsing and scores. Pure Python."""
from .aspects import ASPECT_TITLES, KINDS, Kind, UnknownKindError, get_kind
from .critique import (AspectScore, Comparison, Critique, CritiqueFormatError, PairAspectScore,
                       result_from_dict, result_from_json)
from .parser import parse, parse_comparison, parse_critique
from .requests import (ChatRequest, RequestError, Template, TemplateError, build_request,
                       build_text_request, load_template)
from .scoring import (DEFAULT_THRESHOLD, REFINE_RULES, needs_refinement, overall_from_scores,
                      pairwise_winner, weighted_overall)

__all__ = [n for n in dir() if not n.startswith("_")]
