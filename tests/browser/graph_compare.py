"""Compare a workflow file with what the frontend made of it (its ``graph.serialize()`` after a drop).

Pure Python, no browser: the browser tests call :func:`compare_graphs` on the serialization they read back
from the page; tests/browser/test_graph_compare.py checks that it really reports each kind of change.

What counts as a change the user would suffer: a node lost, added or of another type, another mode
(muted/bypassed), a link lost, added or re-wired (its slots now carry other input/output names), a
widget value changed or a widget count changed, a group lost, a subgraph definition lost, or the
workflow's ``id`` replaced. Positions, sizes, ``order``, unlinked input slots the frontend adds for
widgets, and properties it fills in are not compared: they change on every load without harm.
"""
from __future__ import annotations

import math
from typing import Any


def _same_value(a: Any, b: Any) -> bool:
    """Widget values equal; floats within 1e-6 relative (the frontend keeps JavaScript numbers)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_value(a[k], b[k]) for k in a)
    return a == b


def _links(graph: dict) -> dict[int, tuple]:
    """{link id: (origin id, origin slot, target id, target slot, type)} for list- or dict-shaped links."""
    out = {}
    for lk in graph.get("links") or []:
        if isinstance(lk, dict):
            lk = [lk.get("id"), lk.get("origin_id"), lk.get("origin_slot"), lk.get("target_id"),
                  lk.get("target_slot"), lk.get("type")]
        out[lk[0]] = (str(lk[1]), lk[2], str(lk[3]), lk[4], lk[5])
    return out


def _slot_name(node: dict, kind: str, slot: int) -> str | None:
    slots = node.get(kind) or []
    return slots[slot].get("name") if 0 <= slot < len(slots) else None


def compare_graphs(original: dict, loaded: dict, where: str = "", newer_widgets: dict | None = None) -> list[str]:
    """Problems (empty: the frontend kept everything that matters) between a workflow file and the
    frontend's serialization of it. ``where`` prefixes each message (e.g. the subgraph's name).

    ``newer_widgets`` ({node type: number of widget values} in the newest ComfyUI the files target): a
    file may carry values for widgets a newer ComfyUI added to a core node; an older frontend drops those
    trailing values, which is allowed when the file has exactly the newer count and every kept value is
    unchanged (the older node has no such input, so nothing is lost)."""
    p = f"{where}: " if where else ""
    newer_widgets = newer_widgets or {}
    problems = []
    if "id" in original and original.get("id") != loaded.get("id"):
        problems.append(f"{p}workflow id {original.get('id')!r} became {loaded.get('id')!r}")
    a = {str(n["id"]): n for n in original.get("nodes") or []}
    b = {str(n["id"]): n for n in loaded.get("nodes") or []}
    for nid in sorted(a.keys() - b.keys(), key=str):
        problems.append(f"{p}node {nid} ({a[nid].get('type')}) is missing after loading")
    for nid in sorted(b.keys() - a.keys(), key=str):
        problems.append(f"{p}node {nid} ({b[nid].get('type')}) appeared after loading")
    for nid in sorted(a.keys() & b.keys(), key=str):
        na, nb = a[nid], b[nid]
        label = f"{p}node {nid} ({na.get('type')})"
        if na.get("type") != nb.get("type"):
            problems.append(f"{label} became type {nb.get('type')!r}")
            continue
        if na.get("mode", 0) != nb.get("mode", 0):
            problems.append(f"{label} mode {na.get('mode', 0)} became {nb.get('mode', 0)}")
        wa, wb = na.get("widgets_values"), nb.get("widgets_values")
        if (isinstance(wa, list) and isinstance(wb, list) and len(wb) < len(wa)
                and newer_widgets.get(na.get("type")) == len(wa) and _same_value(wa[:len(wb)], wb)):
            wa = wa[:len(wb)]  # values of widgets this (older) version does not have yet
        if isinstance(wa, list) and isinstance(wb, list) and len(wa) != len(wb):
            problems.append(f"{label} has {len(wb)} widget values after loading, the file has {len(wa)}: "
                            f"{wa!r} -> {wb!r}")
        elif (wa or wb) and not _same_value(wa if wa is not None else [], wb if wb is not None else []):
            if isinstance(wa, list) and isinstance(wb, list):
                changed = [f"#{i}: {x!r} -> {y!r}" for i, (x, y) in enumerate(zip(wa, wb)) if not _same_value(x, y)]
                problems.append(f"{label} widget values changed: {'; '.join(changed)}")
            else:
                problems.append(f"{label} widget values changed: {wa!r} -> {wb!r}")
    la, lb = _links(original), _links(loaded)
    for lid in sorted(la.keys() - lb.keys()):
        problems.append(f"{p}link {lid} {la[lid]} was dropped")
    for lid in sorted(lb.keys() - la.keys()):
        problems.append(f"{p}link {lid} {lb[lid]} appeared")
    for lid in sorted(la.keys() & lb.keys()):
        if la[lid] != lb[lid]:
            problems.append(f"{p}link {lid} {la[lid]} became {lb[lid]}")
            continue
        origin, oslot, target, tslot, _ = la[lid]
        if origin in a and origin in b:
            x, y = _slot_name(a[origin], "outputs", oslot), _slot_name(b[origin], "outputs", oslot)
            if x is not None and x != y:
                problems.append(f"{p}link {lid}: output slot {oslot} of node {origin} is {y!r} after loading, "
                                f"the file has {x!r}")
        if target in a and target in b:
            x, y = _slot_name(a[target], "inputs", tslot), _slot_name(b[target], "inputs", tslot)
            if x is not None and x != y:
                problems.append(f"{p}link {lid}: input slot {tslot} of node {target} is {y!r} after loading, "
                                f"the file has {x!r}")
    ga = [g.get("title") for g in original.get("groups") or []]
    gb = [g.get("title") for g in loaded.get("groups") or []]
    if sorted(map(str, ga)) != sorted(map(str, gb)):
        problems.append(f"{p}groups {ga} became {gb}")
    sa = {s.get("id"): s for s in (original.get("definitions") or {}).get("subgraphs") or []}
    sb = {s.get("id"): s for s in (loaded.get("definitions") or {}).get("subgraphs") or []}
    for sid, sub in sa.items():
        if sid not in sb:
            problems.append(f"{p}subgraph {sub.get('name') or sid} is missing after loading")
        else:
            problems += compare_graphs({k: v for k, v in sub.items() if k != "id"}, sb[sid],
                                       where=f"{p}subgraph {sub.get('name') or sid}".rstrip(": "),
                                       newer_widgets=newer_widgets)
    return problems
