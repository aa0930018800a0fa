"""Build UI-format (litegraph 0.4) ComfyUI workflows from node definitions.

Used by tools/build_workflows.py. Nodes are written the way the ComfyUI frontend saves them: socket inputs
first, then one input per widget (``"widget": {"name": ...}``), ``widgets_values`` in the frontend's widget
order (tests/workflow_check.py's ``widget_layout``), links as [id, from, from_slot, to, to_slot, type].

Layout follows ComfyUI's own templates: the graph reads left to right in labelled groups ("Step 1 - ..."),
each group a column of nodes; a group can sit in a second row under another to keep links short. Every
node is placed by its group (``Graph.place``); sizes are estimated from the node's sockets and widgets with
the frontend's measures (30 px title, 20 px per socket row, 24 px per widget row), generously, and image
previews get room for the picture.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from workflow_check import FRONTEND_ONLY, input_specs, is_widget, type_name, widget_layout  # noqa: E402

PACK_COLOUR = ("#223", "#335")  # (color, bgcolor) of the pack's nodes, like a user would tint them
NOTE_COLOUR = ("#432", "#653")  # ComfyUI's templates draw their notes in this brown
GROUP_COLOUR = "#3f789e"
TITLE_H = 30  # a node's title bar sits above its pos
GROUP_HEAD = 50  # a group's own title band
PAD = 20  # inside a group, around its nodes
NODE_GAP = 30  # between stacked nodes (plus the next node's title)
GROUP_GAP = 60  # between groups, across and down
#: Nodes that show a picture: (width, height) with room for it.
IMAGE_NODES = {"LoadImage": (340, 420), "PreviewImage": (440, 440), "SaveImage": (440, 460)}
#: Nodes whose face shows text while or after they run (progress text): extra height for it.
TEXT_FACE = {"RationalRewardsCritic": 130, "RationalRewardsCompare": 110, "RationalRewardsPromptRefiner": 90,
             "RationalRewardsBestOfN": 90, "RationalRewardsSimpleLoop": 110, "RationalRewardsLoopEnd": 110,
             "PreviewAny": 120}


class Node:
    """One node being built; ``id`` is its litegraph id."""

    def __init__(self, nid: int, ntype: str, title: str | None):
        self.id, self.type, self.title = nid, ntype, title
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.widgets_values: list = []
        self.multiline = 0
        self.size: list[int] | None = None
        self.pos: list[int] | None = None


class Graph:
    """A workflow under construction: add nodes with widget values by name, link outputs to inputs, then
    place every node in a group of the left-to-right layout."""

    def __init__(self, defs: dict):
        self.defs = defs
        self.nodes: list[Node] = []
        self.links: list[list] = []
        self.cells: list[tuple[int, int, str | None, list[Node]]] = []

    def add(self, ntype: str, widgets: dict | None = None, title: str | None = None,
            size: tuple[int, int] | None = None) -> Node:
        """Add a node; ``widgets`` by input name (missing ones take the definition's default); a seed's
        control value is ``widgets["<name>:control"]`` (default "fixed")."""
        widgets = dict(widgets or {})
        node = Node(len(self.nodes) + 1, ntype, title)
        if ntype in FRONTEND_ONLY:
            node.widgets_values = [widgets.pop("text")]
        else:
            d = self.defs[ntype]
            specs = input_specs(d)
            for name, t, opts, sec in specs:
                if not is_widget(t, opts):
                    node.inputs.append({"name": name, "type": type_name(t), "link": None}
                                       | ({"shape": 7} if sec == "optional" else {}))
            for name, t, opts, sec in specs:
                if is_widget(t, opts):
                    node.inputs.append({"name": name, "type": type_name(t), "widget": {"name": name}, "link": None}
                                       | ({"shape": 7} if sec == "optional" else {}))
                    node.multiline += bool(opts.get("multiline"))
            by_name = {n: (t, o) for n, t, o, _ in specs}
            for name, kind in widget_layout(d):
                if kind == "control":
                    node.widgets_values.append(widgets.pop(f"{name}:control", "fixed"))
                elif kind == "upload":
                    node.widgets_values.append("image")
                elif name in widgets:
                    node.widgets_values.append(widgets.pop(name))
                else:
                    t, o = by_name[name]
                    opts = t if isinstance(t, list) else o.get("options")
                    node.widgets_values.append(o["default"] if "default" in o else (opts or [""])[0])
            for i, (t, name) in enumerate(zip(d["output"], d["output_name"])):
                is_list = (d.get("output_is_list") or [False] * len(d["output"]))[i]
                node.outputs.append({"name": name, "type": t, "links": []} | ({"shape": 6} if is_list else {}))
        if widgets:
            raise KeyError(f"{ntype}: no widget named {sorted(widgets)}")
        node.size = list(size) if size else self._size(node)
        self.nodes.append(node)
        return node

    def note(self, text: str, title: str = "Read me", width: int = 380, height: int = 300) -> Node:
        """A Markdown note (frontend-only node) in the templates' note colours."""
        return self.add("MarkdownNote", {"text": text}, title=title, size=(width, height))

    def link(self, src: Node, out: str | int, dst: Node, inp: str) -> None:
        """Connect ``src``'s output (name or index) to ``dst``'s input ``inp``."""
        oi = out if isinstance(out, int) else next(i for i, o in enumerate(src.outputs) if o["name"] == out)
        ii = next(i for i, s in enumerate(dst.inputs) if s["name"] == inp)
        lid = len(self.links) + 1
        otype = src.outputs[oi]["type"]
        self.links.append([lid, src.id, oi, dst.id, ii, otype])
        src.outputs[oi]["links"].append(lid)
        dst.inputs[ii]["link"] = lid

    def place(self, col: int, row: int, title: str | None, nodes: list[Node]) -> None:
        """Put ``nodes`` (top to bottom) in the cell (col, row) of the layout, framed by a group called
        ``title`` (None: no frame, e.g. the note)."""
        placed = {n.id for *_, ns in self.cells for n in ns}
        again = [n.type for n in nodes if n.id in placed]
        if again:
            raise ValueError(f"placed twice: {again}")
        self.cells.append((col, row, title, list(nodes)))

    # ------------------------------------------------------------------------------------------ layout
    @staticmethod
    def _size(n: Node) -> list[int]:
        if n.type in IMAGE_NODES:
            return list(IMAGE_NODES[n.type])
        sockets = max(sum("widget" not in s for s in n.inputs), len(n.outputs))
        widgets = len(n.widgets_values)
        height = 20 * sockets + 24 * widgets + 16 + 96 * n.multiline + TEXT_FACE.get(n.type, 0)
        width = 420 if n.multiline else 360 if n.type.startswith("RationalRewards") else 320
        return [width, max(height, 60)]

    def _layout(self) -> list[dict]:
        """Positions every node; returns the groups."""
        missing = [n.type for n in self.nodes if n.id not in {m.id for *_, ns in self.cells for m in ns}]
        if missing:
            raise ValueError(f"not placed: {missing}")

        def cell_size(nodes: list[Node]) -> tuple[int, int]:
            w = max(n.size[0] for n in nodes) + 2 * PAD
            h = GROUP_HEAD + sum(TITLE_H + n.size[1] for n in nodes) + NODE_GAP * (len(nodes) - 1) + PAD
            return w, h
        widths: dict[int, int] = {}
        heights: dict[int, int] = {}
        for col, row, _, nodes in self.cells:
            w, h = cell_size(nodes)
            widths[col] = max(widths.get(col, 0), w)
            heights[row] = max(heights.get(row, 0), h)
        x_of = {c: sum(widths[k] + GROUP_GAP for k in widths if k < c) for c in widths}
        y_of = {r: sum(heights[k] + GROUP_GAP for k in heights if k < r) for r in heights}
        groups = []
        for col, row, title, nodes in self.cells:
            w, h = cell_size(nodes)
            x, y = x_of[col], y_of[row]
            cy = y + GROUP_HEAD
            for n in nodes:
                n.pos = [x + PAD, cy + TITLE_H]
                cy += TITLE_H + n.size[1] + NODE_GAP
            if title:
                groups.append({"id": len(groups) + 1, "title": title, "bounding": [x, y, widths[col], h],
                               "color": GROUP_COLOUR, "font_size": 24, "flags": {}})
        return groups

    def to_json(self, frontend_version: str) -> dict:
        """The workflow dict (schema 0.4), without its ``id`` (the caller gives each file a stable UUID)."""
        groups = self._layout()
        # execution order as the frontend computes it: by dependency depth, then id
        parents: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for _, src, _, dst, _, _ in self.links:
            parents[dst].append(src)
        depth: dict[int, int] = {}

        def walk(nid: int) -> int:
            if nid not in depth:
                depth[nid] = 1 + max((walk(p) for p in parents[nid]), default=-1)
            return depth[nid]
        order = {n.id: rank for rank, n in enumerate(sorted(self.nodes, key=lambda n: (walk(n.id), n.id)))}
        out_nodes = []
        for n in self.nodes:
            d = {"id": n.id, "type": n.type, "pos": n.pos, "size": n.size, "flags": {}, "order": order[n.id],
                 "mode": 0, "inputs": n.inputs, "outputs": n.outputs, "properties": _properties(n.type),
                 "widgets_values": n.widgets_values}
            if n.title:
                d["title"] = n.title
            if n.type.startswith("RationalRewards"):
                d["color"], d["bgcolor"] = PACK_COLOUR
            elif n.type in FRONTEND_ONLY:
                d["color"], d["bgcolor"] = NOTE_COLOUR
            out_nodes.append(d)
        return {"revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": out_nodes, "links": self.links, "groups": groups, "config": {},
                "extra": {"ds": {"scale": 0.6, "offset": [60, 40]}, "frontendVersion": frontend_version},
                "version": 0.4}


def _properties(ntype: str) -> dict:
    """What the frontend stores per node: its search name and, as the templates do, the node's source
    (``cnr_id``: the Comfy Registry id, which lets ComfyUI-Manager offer to install a missing pack)."""
    if ntype in FRONTEND_ONLY:
        return {}
    if ntype.startswith("RationalRewards"):
        from_pack = {"cnr_id": "rationalrewards", "ver": _pack_version()}
    else:
        from_pack = {"cnr_id": "comfy-core", "ver": "0.3.64"}
    return {"Node name for S&R": ntype} | from_pack


def _pack_version() -> str:
    import re

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    return re.search(r'^version\s*=\s*"([^"]+)"', text, re.M).group(1)


# ------------------------------------------------------------------------------------- subgraph blueprints
class Port:
    """One input or output of a blueprint: ``name`` outside, the inner node slots it connects to (inputs:
    any number of (node, input name); outputs: one (node, output name)), and the label shown."""

    def __init__(self, name: str, slots: list[tuple[Node, str]], label: str | None = None):
        self.name, self.slots, self.label = name, slots, label


def blueprint(g: Graph, blueprint_id: str, name: str, description: str, category: str, inputs: list[Port],
              outputs: list[Port], frontend_version: str) -> dict:
    """A subgraph blueprint (what ComfyUI 0.3.67+ serves from ``custom_nodes/<pack>/subgraphs/*.json``): one
    outer node of type ``blueprint_id`` whose definition holds ``g``'s nodes. ``inputs`` become the subgraph's
    inputs (a widget input promoted this way shows as a widget on the outer node), ``outputs`` its outputs.
    Written in the shape frontend 1.48 saves (definitions.subgraphs, links as objects, the input node -10 and
    the output node -20, every widget shown on the outer node a real subgraph input: 1.48 rewrites the older
    ``proxyWidgets`` form on load)."""
    import uuid

    g._layout()
    links = [{"id": lid, "origin_id": s, "origin_slot": so, "target_id": d, "target_slot": di, "type": t}
             for lid, s, so, d, di, t in g.links]
    next_link = len(g.links) + 1
    sub_inputs, outer_inputs, widget_values = [], [], []
    for k, port in enumerate(inputs):
        ids = []
        for node, inp in port.slots:
            slot_i = next(i for i, s in enumerate(node.inputs) if s["name"] == inp)
            slot = node.inputs[slot_i]
            if slot["link"] is not None:
                raise ValueError(f"{node.type}.{inp} is linked inside the blueprint already")
            slot["link"] = next_link
            links.append({"id": next_link, "origin_id": -10, "origin_slot": k, "target_id": node.id,
                          "target_slot": slot_i, "type": slot["type"]})
            ids.append(next_link)
            next_link += 1
        first_node, first_inp = port.slots[0]
        slot = next(s for s in first_node.inputs if s["name"] == first_inp)
        entry = {"id": str(uuid.uuid5(uuid.UUID(blueprint_id), "in:" + port.name)), "name": port.name,
                 "type": slot["type"], "linkIds": ids} | ({"label": port.label} if port.label else {})
        sub_inputs.append(entry)
        outer = {"name": port.name, "type": slot["type"], "link": None} | ({"label": port.label} if port.label else {}) \
            | ({"shape": 7} if slot.get("shape") == 7 else {})
        if "widget" in slot:
            outer["widget"] = {"name": port.name}
            widget_values.append(_widget_value(first_node, first_inp, g))
        outer_inputs.append(outer)
    sub_outputs, outer_outputs = [], []
    for k, port in enumerate(outputs):
        node, out = port.slots[0]
        oi = next(i for i, o in enumerate(node.outputs) if o["name"] == out)
        node.outputs[oi]["links"].append(next_link)
        otype = node.outputs[oi]["type"]
        links.append({"id": next_link, "origin_id": node.id, "origin_slot": oi, "target_id": -20,
                      "target_slot": k, "type": otype})
        sub_outputs.append({"id": str(uuid.uuid5(uuid.UUID(blueprint_id), "out:" + port.name)), "name": port.name,
                            "type": otype, "linkIds": [next_link]} | ({"label": port.label} if port.label else {}))
        outer_outputs.append({"name": port.name, "type": otype, "links": None}
                             | ({"label": port.label} if port.label else {}))
        next_link += 1
    inner = g.to_json(frontend_version)
    xs = [n["pos"][0] for n in inner["nodes"]]
    ys = [n["pos"][1] for n in inner["nodes"]]
    right = max(n["pos"][0] + n["size"][0] for n in inner["nodes"])
    for k, e in enumerate(sub_inputs):
        e["pos"] = [min(xs) - 200, min(ys) + 20 * k]
    for k, e in enumerate(sub_outputs):
        e["pos"] = [right + 140, min(ys) + 20 * k]
    definition = {
        "id": blueprint_id, "version": 1,
        "state": {"lastGroupId": len(inner["groups"]), "lastNodeId": len(g.nodes), "lastLinkId": next_link - 1,
                  "lastRerouteId": 0},
        "revision": 0, "config": {}, "name": name,
        "inputNode": {"id": -10, "bounding": [min(xs) - 240, min(ys) - 20, 160, 40 + 20 * len(inputs)]},
        "outputNode": {"id": -20, "bounding": [right + 120, min(ys) - 20, 160, 40 + 20 * len(outputs)]},
        "inputs": sub_inputs, "outputs": sub_outputs, "widgets": [],
        "nodes": inner["nodes"], "groups": inner["groups"], "links": links,
        "extra": {"workflowRendererVersion": "LG"}, "category": category, "description": description,
    }
    outer_id = len(g.nodes) + 1
    outer_node = {"id": outer_id, "type": blueprint_id, "pos": [0, 0], "size": [400, 60 + 24 * len(inputs)],
                  "flags": {}, "order": 0, "mode": 0, "inputs": outer_inputs, "outputs": outer_outputs,
                  "title": name, "properties": {"cnr_id": "rationalrewards", "ver": _pack_version()},
                  "widgets_values": widget_values}
    return {"revision": 0, "last_node_id": outer_id, "last_link_id": 0, "nodes": [outer_node], "links": [],
            "version": 0.4, "definitions": {"subgraphs": [definition]}, "extra": {}}


def _widget_value(node: Node, name: str, g: Graph):
    """The value ``node``'s widget ``name`` holds (its place in widgets_values by the widget layout)."""
    layout = widget_layout(g.defs[node.type])
    return node.widgets_values[layout.index((name, "value"))]
