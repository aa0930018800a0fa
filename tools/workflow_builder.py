"""Build UI-format (litegraph 0.4) ComfyUI workflows from node definitions, and draw their thumbnails.

Used by tools/build_workflows.py. Nodes are laid out the way ComfyUI frontend 1.27 saves them: socket inputs
first, then one input per widget (``"widget": {"name": ...}``), ``widgets_values`` in the frontend's widget
order (tests/workflow_check.py's ``widget_layout``), links as [id, from, from_slot, to, to_slot, type].
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from workflow_check import FRONTEND_ONLY, input_specs, is_widget, type_name, widget_layout  # noqa: E402

PACK_COLOUR = ("#223", "#335")  # (color, bgcolor) of the pack's nodes, like a user would tint them
COL_W, GAP_Y = 400, 40


class Node:
    """One node being built; ``id`` is its litegraph id."""

    def __init__(self, nid: int, ntype: str, title: str | None):
        self.id, self.type, self.title = nid, ntype, title
        self.inputs: list[dict] = []
        self.outputs: list[dict] = []
        self.widgets_values: list = []
        self.multiline = 0


class Graph:
    """A workflow under construction: add nodes with widget values by name, link outputs to inputs."""

    def __init__(self, defs: dict):
        self.defs = defs
        self.nodes: list[Node] = []
        self.links: list[list] = []
        self.groups: list[tuple[str, list[Node], str]] = []
        self.columns: dict[int, int] = {}

    def add(self, ntype: str, widgets: dict | None = None, title: str | None = None, col: int | None = None) -> Node:
        """Add a node; ``widgets`` by input name (missing ones take the definition's default); a seed's
        control value is ``widgets["<name>:control"]`` (default "fixed")."""
        widgets = dict(widgets or {})
        node = Node(len(self.nodes) + 1, ntype, title)
        node.col = col
        if ntype in FRONTEND_ONLY:
            node.widgets_values = [widgets.pop("text")]
            node.multiline = 4
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
        self.nodes.append(node)
        return node

    def link(self, src: Node, out: str | int, dst: Node, inp: str) -> None:
        """Connect ``src``'s output (name or index) to ``dst``'s input ``inp``."""
        oi = out if isinstance(out, int) else next(i for i, o in enumerate(src.outputs) if o["name"] == out)
        ii = next(i for i, s in enumerate(dst.inputs) if s["name"] == inp)
        lid = len(self.links) + 1
        otype = src.outputs[oi]["type"]
        self.links.append([lid, src.id, oi, dst.id, ii, otype])
        src.outputs[oi]["links"].append(lid)
        dst.inputs[ii]["link"] = lid

    def group(self, title: str, nodes: list[Node], colour: str = "#3f789e") -> None:
        self.groups.append((title, nodes, colour))

    # ------------------------------------------------------------------------------------------ layout
    def _depths(self) -> dict[int, int]:
        parents: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for _, src, _, dst, _, _ in self.links:
            parents[dst].append(src)
        depth: dict[int, int] = {}

        def walk(nid: int) -> int:
            if nid not in depth:
                depth[nid] = 1 + max((walk(p) for p in parents[nid]), default=-1)
            return depth[nid]
        for n in self.nodes:
            walk(n.id)
        return depth

    @staticmethod
    def _size(n: Node) -> list[int]:
        sockets = max(sum("widget" not in s for s in n.inputs), len(n.outputs))
        height = 30 + 22 * sockets + 26 * len(n.widgets_values) + 70 * n.multiline
        return [340, max(height, 60)]

    def to_json(self) -> dict:
        """The workflow dict (schema 0.4)."""
        depth = self._depths()
        for n in self.nodes:
            if n.col is not None:
                depth[n.id] = n.col
        order = sorted(self.nodes, key=lambda n: (depth[n.id], n.id))
        y_at: dict[int, int] = {}
        out_nodes = []
        for rank, n in enumerate(sorted(self.nodes, key=lambda n: (depth[n.id], n.id))):
            n.order = rank
        grouped = {m.id for _, members, _ in self.groups for m in members}
        for n in order:  # ungrouped nodes first, stacked per column
            if n.id not in grouped:
                c, n.size = depth[n.id], self._size(n)
                n.pos = [c * COL_W, y_at.get(c, 0)]
                y_at[c] = n.pos[1] + n.size[1] + GAP_Y
        for _, members, _ in self.groups:  # then each group in a band of its own below them
            band = max(y_at.get(depth[m.id], 0) for m in members) + 60
            for m in sorted(members, key=lambda m: (depth[m.id], m.id)):
                c, m.size = depth[m.id], self._size(m)
                m.pos = [c * COL_W, max(band, y_at.get(c, 0))]
                y_at[c] = m.pos[1] + m.size[1] + GAP_Y
        for n in self.nodes:
            pack = n.type.startswith("RationalRewards")
            d = {"id": n.id, "type": n.type, "pos": n.pos, "size": n.size, "flags": {}, "order": n.order,
                 "mode": 0, "inputs": n.inputs, "outputs": n.outputs,
                 "properties": {} if n.type in FRONTEND_ONLY else {"Node name for S&R": n.type},
                 "widgets_values": n.widgets_values}
            if n.title:
                d["title"] = n.title
            if pack:
                d["color"], d["bgcolor"] = PACK_COLOUR
            out_nodes.append(d)
        groups = []
        for title, members, colour in self.groups:
            x0 = min(m.pos[0] for m in members) - 20
            y0 = min(m.pos[1] for m in members) - 60
            x1 = max(m.pos[0] + m.size[0] for m in members) + 20
            y1 = max(m.pos[1] + m.size[1] for m in members) + 20
            groups.append({"id": len(groups) + 1, "title": title, "bounding": [x0, y0, x1 - x0, y1 - y0],
                           "color": colour, "font_size": 24, "flags": {}})
        return {"revision": 0, "last_node_id": len(self.nodes), "last_link_id": len(self.links),
                "nodes": out_nodes, "links": self.links, "groups": groups, "config": {},
                "extra": {"ds": {"scale": 0.7, "offset": [40, 80]}}, "version": 0.4}


def thumbnail(wf: dict, title: str, path: Path, size: tuple[int, int] = (512, 384)) -> None:
    """Draw a small picture of the graph (boxes at the nodes' places, links as lines) as a JPEG."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", size, (32, 33, 38))
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 11)
        big = ImageFont.truetype("DejaVuSans-Bold.ttf", 20)
    except OSError:
        font = big = ImageFont.load_default()
    nodes = {n["id"]: n for n in wf["nodes"]}
    x0 = min(n["pos"][0] for n in nodes.values())
    y0 = min(n["pos"][1] for n in nodes.values())
    x1 = max(n["pos"][0] + n["size"][0] for n in nodes.values())
    y1 = max(n["pos"][1] + n["size"][1] for n in nodes.values())
    top = 44
    scale = min((size[0] - 24) / (x1 - x0), (size[1] - top - 12) / (y1 - y0))

    def box(n: dict) -> tuple[float, float, float, float]:
        return (12 + (n["pos"][0] - x0) * scale, top + (n["pos"][1] - y0) * scale,
                12 + (n["pos"][0] + n["size"][0] - x0) * scale, top + (n["pos"][1] + n["size"][1] - y0) * scale)
    for g in wf.get("groups") or []:
        gx, gy, gw, gh = g["bounding"]
        draw.rectangle((12 + (gx - x0) * scale, top + (gy - y0) * scale, 12 + (gx + gw - x0) * scale,
                        top + (gy + gh - y0) * scale), outline=(90, 140, 190), width=2)
    for _, src, _, dst, _, _ in wf["links"]:
        a, b = box(nodes[src]), box(nodes[dst])
        draw.line(((a[2], (a[1] + a[3]) / 2), (b[0], (b[1] + b[3]) / 2)), fill=(150, 150, 160), width=2)
    for n in nodes.values():
        pack = n["type"].startswith("RationalRewards")
        fill = (70, 60, 140) if pack else (70, 72, 80)
        if n["type"] in FRONTEND_ONLY:
            fill = (90, 85, 50)
        b = box(n)
        draw.rounded_rectangle(b, radius=4, fill=fill, outline=(200, 200, 210))
        label = (n.get("title") or n["type"]).replace("RationalRewards", "RR ")
        draw.text((b[0] + 3, b[1] + 2), label[: max(4, int((b[2] - b[0]) / 6.5))], fill=(240, 240, 240), font=font)
    draw.text((12, 10), title, fill=(250, 250, 250), font=big)
    img.save(path, "JPEG", quality=85)
