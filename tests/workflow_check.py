"""Validate UI-format (litegraph, schema 0.4) ComfyUI workflow files against node definitions.

Node definitions are ``/object_info``-shaped dicts: the core ones recorded in tests/fixtures/core_object_info.json
(tools/capture_object_info.py), the pack's own built from each node's ``define_schema()`` by :func:`pack_defs`
(run it with the ComfyUI stand-in on sys.path; ComfyUI itself is not needed).

The widget layout follows ComfyUI frontend 1.27 (the one 0.3.64 ships): widgets are the INT / FLOAT / STRING /
BOOLEAN / COMBO inputs without ``forceInput``, required then optional in ``input_order``; an input with
``control_after_generate`` (or, when the option is absent, an INT named seed / noise_seed) adds one value
("fixed", "randomize", ...) right after it; an ``image_upload`` input adds the upload button's value after the
required inputs. :func:`check_workflow` returns a list of problems (empty = valid); each names the node.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize")
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "file_upload", "animated_image_upload")
#: Nodes that live only in the browser: no /object_info entry; (number of widget values, their type).
FRONTEND_ONLY = {"Note": (1, str), "MarkdownNote": (1, str)}
#: Combo inputs of core loaders that list files of the local install: any file name is accepted (the
#: user picks their own file; the recorded list is whatever the capturing machine had).
FILE_COMBOS = {"ckpt_name", "unet_name", "clip_name", "clip_name1", "clip_name2", "vae_name", "lora_name", "image"}
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "core_object_info.json"
#: The same classes recorded from the newest ComfyUI release (0.33.0): some core nodes gained widgets since.
FIXTURE_NEWEST = Path(__file__).resolve().parent / "fixtures" / "core_object_info_0.33.json"


# ------------------------------------------------------------------------------------------ definitions
def load_core(path: Path = FIXTURE) -> dict:
    """The recorded core node definitions {class: object_info entry}."""
    return json.loads(Path(path).read_text())["nodes"]


def load_core_both() -> dict:
    """Core definitions for workflow files that load on 0.3.64 and on the newest release: a node whose newer
    version appended widgets takes the newer inputs (its files then carry the new values at the end, which
    the older frontend leaves unused); sockets and outputs stay the older version's."""
    old, new = load_core(), load_core(FIXTURE_NEWEST)
    out = {}
    for name, d in old.items():
        n = new.get(name)
        if n is not None and widget_layout(n)[: len(widget_layout(d))] == widget_layout(d):
            d = d | {"input": n["input"], "input_order": n["input_order"]}
        out[name] = d
    return out


def _input_spec(inp: Any) -> list:
    """One V3 input as an /object_info [type, options] pair (as ComfyUI 0.3.64's get_v1_info writes it)."""
    t = inp.io_type
    opts = {k: v for k, v in {
        "default": getattr(inp, "default", None), "min": getattr(inp, "min", None),
        "max": getattr(inp, "max", None), "step": getattr(inp, "step", None),
        "control_after_generate": getattr(inp, "control_after_generate", None),
        "multiline": getattr(inp, "multiline", None), "forceInput": getattr(inp, "force_input", None),
    }.items() if v is not None}
    if t == "COMBO":
        opts["options"] = list(inp.options or [])
    return [t, opts]


def schema_info(schema: Any) -> dict:
    """An /object_info-shaped entry for a V3 ``io.Schema`` (inputs split required/optional, input_order,
    outputs with their display names)."""
    req, opt = {}, {}
    for inp in schema.inputs or []:
        (opt if inp.optional else req)[inp.id] = _input_spec(inp)
    outs = schema.outputs or []
    return {
        "input": {"required": req, "optional": opt},
        "input_order": {"required": list(req), "optional": list(opt)},
        "output": [o.io_type for o in outs],
        "output_name": [o.display_name or o.io_type for o in outs],
        "output_is_list": [bool(o.is_output_list) for o in outs],
        "name": schema.node_id,
    }


def pack_defs() -> dict:
    """{node_id: entry} for every node the pack registers (nodes/extension.py NODES), from define_schema().
    Needs the ComfyUI stand-in (or ComfyUI) importable."""
    import importlib

    ext = importlib.import_module("rationalrewards.nodes.extension")
    out = {}
    for cls in ext.NODES:
        info = schema_info(cls.GET_SCHEMA())
        out[info["name"]] = info
    return out


def input_specs(nodedef: dict) -> list[tuple[str, Any, dict, str]]:
    """[(name, type, options, "required"|"optional")] in the frontend's order."""
    inp, order = nodedef.get("input") or {}, nodedef.get("input_order") or {}
    out = []
    for sec in ("required", "optional"):
        d = inp.get(sec) or {}
        listed = [n for n in order.get(sec) or [] if n in d]
        for n in listed + [n for n in d if n not in listed]:
            spec = d[n] if isinstance(d[n], (list, tuple)) else [d[n]]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((n, spec[0], opts, sec))
    return out


def type_name(t: Any) -> str:
    """The socket type of an input: a list of options is a COMBO."""
    return "COMBO" if isinstance(t, (list, tuple)) else str(t)


def combo_options(t: Any, opts: dict) -> list | None:
    if isinstance(t, (list, tuple)):
        return list(t)
    return list(opts.get("options") or []) if t == "COMBO" else None


def is_widget(t: Any, opts: dict) -> bool:
    return not opts.get("forceInput") and type_name(t) in WIDGET_TYPES


def widget_layout(nodedef: dict) -> list[tuple[str | None, str]]:
    """The slots of widgets_values: [(input name | None, "value" | "control" | "upload")]."""
    layout, upload = [], False
    for name, t, opts, sec in input_specs(nodedef):
        if sec == "optional" and upload:
            layout.append((None, "upload"))
            upload = False
        if not is_widget(t, opts):
            continue
        layout.append((name, "value"))
        if opts.get("control_after_generate", t == "INT" and name in ("seed", "noise_seed")):
            layout.append((name, "control"))
        upload = upload or any(opts.get(k) for k in UPLOAD_OPTIONS)
    if upload:
        layout.append((None, "upload"))
    return layout


# ------------------------------------------------------------------------------------------------ checks
def check_value(name: str, t: Any, opts: dict, value: Any, file_combo: bool) -> str | None:
    """Why ``value`` does not fit the widget, or None."""
    tn = type_name(t)
    if tn in ("INT", "FLOAT"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name}: {value!r} is not a number"
        if tn == "INT" and not float(value).is_integer():
            return f"{name}: {value!r} is not an integer"
        lo, hi = opts.get("min"), opts.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            return f"{name}: {value!r} is outside [{lo}, {hi}]"
        return None
    if tn == "BOOLEAN":
        return None if isinstance(value, bool) else f"{name}: {value!r} is not a boolean"
    if tn == "STRING":
        return None if isinstance(value, str) else f"{name}: {value!r} is not a string"
    options = combo_options(t, opts)
    if file_combo:
        return None if isinstance(value, str) and value else f"{name}: {value!r} is not a file name"
    if value not in (options or []):
        return f"{name}: {value!r} is not one of {options}"
    return None


def _check_widgets(node: dict, nodedef: dict, core: bool, where: str, skew: str | None) -> list[str]:
    layout = widget_layout(nodedef)
    values = node.get("widgets_values") or []
    if not isinstance(values, list):
        return [f"{where}: widgets_values must be a list"]
    if skew == "file_newer" and len(values) > len(layout):
        values = values[: len(layout)]  # widgets a newer ComfyUI added; this version leaves them unused
    if len(values) != len(layout):
        names = [n if k == "value" else f"({k})" for n, k in layout]
        return [f"{where}: {len(values)} widget values for {len(layout)} widgets {names}"]
    specs = {n: (t, o) for n, t, o, _ in input_specs(nodedef)}
    problems = []
    for (name, kind), value in zip(layout, values):
        if kind == "control":
            bad = None if value in CONTROL_VALUES else f"{name} control_after_generate: {value!r} not in {CONTROL_VALUES}"
        elif kind == "upload":
            bad = None
        else:
            t, o = specs[name]
            bad = check_value(name, t, o, value, core and name in FILE_COMBOS)
        if bad:
            problems.append(f"{where}: {bad}")
    return problems


def _check_slots(node: dict, nodedef: dict, where: str, skew: str | None) -> list[str]:
    """inputs[] / outputs[] entries agree with the definition; required sockets are connected."""
    problems = []
    specs = {n: (type_name(t), o, sec) for n, t, o, sec in input_specs(nodedef)}
    seen = set()
    for slot in node.get("inputs") or []:
        name = slot.get("name")
        if name not in specs and skew == "file_newer" and "widget" in slot:
            continue  # a widget a newer ComfyUI added
        if name not in specs:
            problems.append(f"{where}: input '{name}' is not an input of {node['type']}")
            continue
        seen.add(name)
        t, o, _ = specs[name]
        if slot.get("type") != t:
            problems.append(f"{where}: input '{name}' has type {slot.get('type')!r}, the node says {t!r}")
        if ("widget" in slot) != is_widget(t, o):
            problems.append(f"{where}: input '{name}' widget marker does not match the definition")
    for name, (t, o, sec) in specs.items():
        if sec == "required" and not is_widget(t, o):
            slot = next((s for s in node.get("inputs") or [] if s.get("name") == name), None)
            if name not in seen or slot.get("link") is None:
                problems.append(f"{where}: required input '{name}' ({t}) is not connected")
    outs, names = nodedef.get("output") or [], nodedef.get("output_name") or []
    got = node.get("outputs") or []
    if skew == "file_older" and len(got) < len(outs):
        outs, names = outs[: len(got)], names[: len(got)]  # outputs a newer ComfyUI added (e.g. SaveImage's)
    if len(got) != len(outs):
        problems.append(f"{where}: {len(got)} outputs, the node has {len(outs)}")
    for i, (slot, t) in enumerate(zip(got, outs)):
        if slot.get("type") != t:
            problems.append(f"{where}: output {i} has type {slot.get('type')!r}, the node says {t!r}")
        if names and slot.get("name") != names[i]:
            problems.append(f"{where}: output {i} is named {slot.get('name')!r}, the node says {names[i]!r}")
    return problems


def _check_links(wf: dict, nodes: dict, defs: dict) -> list[str]:
    problems = []
    links = {}
    for link in wf.get("links") or []:
        if not isinstance(link, list) or len(link) != 6:
            problems.append(f"link {link!r}: must be [id, from_node, from_slot, to_node, to_slot, type]")
            continue
        lid, src, sslot, dst, dslot, ltype = link
        if lid in links:
            problems.append(f"link {lid}: duplicate id")
        links[lid] = link
        if src not in nodes or dst not in nodes:
            problems.append(f"link {lid}: connects missing node {src if src not in nodes else dst}")
            continue
        s, d = nodes[src], nodes[dst]
        souts, dins = s.get("outputs") or [], d.get("inputs") or []
        if not (0 <= sslot < len(souts)) or not (0 <= dslot < len(dins)):
            problems.append(f"link {lid}: slot out of range ({s['type']}#{sslot} -> {d['type']}#{dslot})")
            continue
        if lid not in (souts[sslot].get("links") or []):
            problems.append(f"link {lid}: not listed in node {src} output {sslot}'s links")
        if dins[dslot].get("link") != lid:
            problems.append(f"link {lid}: node {dst} input '{dins[dslot].get('name')}' points at "
                            f"{dins[dslot].get('link')!r}")
        souts_def = defs.get(s["type"], {}).get("output") or []
        stype = souts_def[sslot] if sslot < len(souts_def) else souts[sslot].get("type")
        dtype = dins[dslot].get("type")
        if not ("*" in (stype, dtype) or stype == dtype):
            problems.append(f"link {lid}: {s['type']} output {sslot} ({stype}) -> {d['type']} input "
                            f"'{dins[dslot].get('name')}' ({dtype}): types differ")
        if ltype not in ("*", stype):
            problems.append(f"link {lid}: link type {ltype!r} but the output is {stype!r}")
    for nid, node in nodes.items():
        for i, slot in enumerate(node.get("inputs") or []):
            lid = slot.get("link")
            if lid is not None and (lid not in links or links[lid][3] != nid or links[lid][4] != i):
                problems.append(f"node {nid} ({node['type']}) input '{slot.get('name')}': link {lid} does not "
                                "exist or ends elsewhere")
        for i, slot in enumerate(node.get("outputs") or []):
            for lid in slot.get("links") or []:
                if lid not in links or links[lid][1] != nid or links[lid][2] != i:
                    problems.append(f"node {nid} ({node['type']}) output {i}: link {lid} does not exist or "
                                    "starts elsewhere")
    return problems


def check_workflow(wf: dict, defs: dict, skew: str | None = None) -> list[str]:
    """Every problem of a UI-format workflow against ``defs`` ({class: object_info entry}); [] when valid.

    ``skew`` says the file was written for another ComfyUI version than ``defs``: ``"file_newer"`` allows
    trailing widget values the definition lacks, ``"file_older"`` allows missing trailing outputs."""
    problems = []
    for key in ("last_node_id", "last_link_id", "nodes", "links", "version"):
        if key not in wf:
            problems.append(f"missing top-level key '{key}'")
    if problems:
        return problems
    nodes = {}
    for node in wf["nodes"]:
        if node.get("id") in nodes:
            problems.append(f"node id {node.get('id')} used twice")
        nodes[node.get("id")] = node
    if nodes and max(nodes) > wf["last_node_id"]:
        problems.append(f"last_node_id {wf['last_node_id']} < largest node id {max(nodes)}")
    if wf["links"] and max(link[0] for link in wf["links"]) > wf["last_link_id"]:
        problems.append(f"last_link_id {wf['last_link_id']} is below a link id")
    for nid, node in nodes.items():
        t = node.get("type")
        where = f"node {nid} ({t})"
        if t in FRONTEND_ONLY:
            count, kind = FRONTEND_ONLY[t]
            vals = node.get("widgets_values") or []
            if len(vals) != count or not all(isinstance(v, kind) for v in vals):
                problems.append(f"{where}: needs {count} {kind.__name__} widget value(s)")
            continue
        if t not in defs:
            problems.append(f"{where}: unknown node type (not a core node recorded in the fixture nor a "
                            "RationalRewards node)")
            continue
        if node.get("mode", 0) not in (0, 2, 4):
            problems.append(f"{where}: mode {node.get('mode')!r} is not 0 (always), 2 (muted) or 4 (bypassed)")
        if (node.get("properties") or {}).get("Node name for S&R") != t:
            problems.append(f"{where}: properties['Node name for S&R'] must be {t!r}")
        problems += _check_widgets(node, defs[t], not t.startswith("RationalRewards"), where, skew)
        problems += _check_slots(node, defs[t], where, skew)
    problems += _check_links(wf, nodes, defs)
    return problems
