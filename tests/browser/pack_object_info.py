"""The pack's own ``/object_info`` entries, generated from the current code as ComfyUI writes them.

ComfyUI (0.3.64 and 0.33.0 alike) turns a V3 node's ``define_schema()`` into its V1 ``/object_info`` entry
with ``Schema.get_v1_info`` and each input's ``as_dict()``; this module does the same from the same schema
objects, built against the ComfyUI stand-in (tests/comfy_standin) when ComfyUI itself is not importable.
So the CI guard's fake backend always describes the nodes of the code under test, and the opt-in
real-ComfyUI browser test (test_browser_real.py) checks that what it generates equals what a real server
sends for every field the frontend reads (:data:`FRONTEND_FIELDS`).

Run as a script it prints the entries as JSON.
"""
from __future__ import annotations

import importlib
import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STANDIN = ROOT / "tests" / "comfy_standin"
#: The custom node folder name ComfyUI-Manager and the Registry install the pack under.
PACK_FOLDER = "ComfyUI-RationalRewards"
#: The fields of an /object_info entry the frontend uses to build a node (compared against a real server).
FRONTEND_FIELDS = ("input", "input_order", "output", "output_is_list", "output_name", "name", "display_name",
                   "description", "category", "output_node", "deprecated", "experimental")

# Per input class, the option keys ComfyUI's as_dict() writes and the attribute each comes from.
_BASE = (("display_name", "display_name"), ("tooltip", "tooltip"), ("lazy", "lazy"))
_WIDGET = (("default", "default"), ("socketless", "socketless"), ("widgetType", "widget_type"),
           ("forceInput", "force_input"))
_BY_TYPE = {
    "BOOLEAN": (("label_on", "label_on"), ("label_off", "label_off")),
    "INT": (("min", "min"), ("max", "max"), ("step", "step"), ("control_after_generate", "control_after_generate"),
            ("display", "display_mode")),
    "FLOAT": (("min", "min"), ("max", "max"), ("step", "step"), ("round", "round"), ("display", "display_mode")),
    "STRING": (("multiline", "multiline"), ("placeholder", "placeholder"), ("dynamicPrompts", "dynamic_prompts")),
    "COMBO": (("multiselect", "multiselect"), ("options", "options"),
              ("control_after_generate", "control_after_generate")),
}


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v


def input_entry(inp: Any) -> tuple[str, dict]:
    """One V3 input as its /object_info ``[type, options]`` pair."""
    io_type = getattr(inp, "widget_type", None) or inp.io_type
    pairs = _BASE + (_WIDGET if hasattr(inp, "default") else ()) + _BY_TYPE.get(inp.io_type, ())
    opts = {}
    for key, attr in pairs:
        value = getattr(inp, attr, None)
        if key == "multiselect" and value is None:
            value = False  # ComfyUI's Combo.Input always sets it
        if key == "multiline" and value is None and inp.io_type == "STRING":
            value = False
        if value is not None:
            opts[key] = _plain(value)
    opts.update({k: v for k, v in (getattr(inp, "extra_dict", None) or {}).items() if v is not None})
    return io_type, opts


def node_entry(cls: Any) -> dict:
    """The /object_info entry of one V3 node class (Schema.get_v1_info, with the pack's module name)."""
    schema = cls.GET_SCHEMA()
    inputs: dict[str, dict] = {"required": {}}
    for inp in schema.inputs or []:
        inputs.setdefault("optional" if inp.optional else "required", {})[inp.id] = list(input_entry(inp))
    for hidden in schema.hidden or []:
        inputs.setdefault("hidden", {})[hidden.name] = [hidden.value]
    outs = schema.outputs or []
    return {
        "input": inputs,
        "input_order": {key: list(value) for key, value in inputs.items()},
        "output": [o.io_type for o in outs],
        "output_is_list": [bool(o.is_output_list) for o in outs],
        "output_name": [o.display_name or o.io_type for o in outs],
        "output_tooltips": [o.tooltip or None for o in outs],
        "name": schema.node_id,
        "display_name": schema.display_name,
        "description": schema.description,
        "python_module": f"custom_nodes.{PACK_FOLDER}",
        "category": schema.category,
        "output_node": bool(schema.is_output_node),
        "deprecated": bool(schema.is_deprecated),
        "experimental": bool(schema.is_experimental),
        "api_node": bool(schema.is_api_node),
    }


def pack_object_info() -> dict:
    """{node id: /object_info entry} for every node the pack registers."""
    try:
        importlib.import_module("comfy_api.latest")
    except ImportError:
        sys.path.insert(0, str(STANDIN))
    ext = importlib.import_module("rationalrewards.nodes.extension")
    return {e["name"]: e for e in map(node_entry, ext.NODES)}


def frontend_view(entry: dict) -> dict:
    """The fields of an entry that the frontend reads, JSON-normalised (tuples become lists)."""
    return json.loads(json.dumps({k: entry.get(k) for k in FRONTEND_FIELDS}))


if __name__ == "__main__":
    json.dump(pack_object_info(), sys.stdout, indent=1)
