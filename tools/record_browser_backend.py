#!/usr/bin/env python3
"""Record what a real ComfyUI answers its web frontend, for the CI browser guard's fake backend.

The guard (tests/browser/test_drop_guard.py) serves the real frontend package from a small stdlib server
(tests/browser/fake_comfy.py) because CI has no ComfyUI. That server replays, per ComfyUI version, what this
script records from a running ComfyUI with the pack (a fresh base directory, no user data):

* ``system_stats`` (versions; argv, RAM and Python build replaced by fixed values),
* the answers to the other GET endpoints the frontend calls at start (``ROUTES``), with status codes, so an
  endpoint the real server lacks (e.g. /global_subgraphs before 0.3.67) is missing in the fake too,
* every core node definition (all of them: the frontend itself expects core loaders such as LoraLoader and
  fails on a subset); the script checks that every core class a file under workflows/, example_workflows/
  or subgraphs/ uses is there. Custom nodes are NOT recorded: the fake generates the pack's definitions
  from the current code (tests/browser/pack_object_info.py), and the opt-in real test checks that generator
  against the real server.

Absolute paths in the answers become /comfyui/... (nothing of this machine is committed). Re-run it when a
workflow starts using another core node (the guard says so) or for another ComfyUI version:

    ../shared/comfy/start_comfy.sh 8190 .
    python tools/record_browser_backend.py http://127.0.0.1:8190 --commit a125cd84
    # writes tests/browser/recorded/comfyui-<version>.json.gz (gzip: the core definitions are 0.5-2 MB)

Stdlib only.
"""
from __future__ import annotations

import argparse
import datetime
import gzip
import json
import re
import sys
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture_object_info import CORE_CLASSES, FRONTEND_ONLY, PACK_PREFIX  # noqa: E402

OUT_DIR = ROOT / "tests" / "browser" / "recorded"
#: GET endpoints the frontends (1.27, 1.48) call at start, as they request them; recorded as status + JSON body.
ROUTES = ["/api/features", "/api/users", "/api/i18n", "/api/queue", "/api/history", "/api/prompt", "/api/embeddings",
          "/api/models", "/api/experiment/models", "/internal/folder_paths", "/api/workflow_templates",
          "/api/global_subgraphs", "/api/node_replacements", "/api/jobs?status=in_progress,pending&limit=200&offset=0"]
#: Answered by the fake from the pack's files (only their status is recorded).
COMPUTED = {"/api/workflow_templates", "/api/global_subgraphs"}
DIRS = ("models", "output", "input", "temp", "user", "custom_nodes", "blueprints")


def get(url: str) -> tuple[int, object]:
    """(status, JSON body or None)."""
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            body = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        return e.code, None
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def scrub(value: object) -> object:
    """Absolute paths -> /comfyui/<known folder>/... (or /comfyui)."""
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        m = re.search(r"/(%s)(/|$)" % "|".join(DIRS), value)
        return "/comfyui" + value[m.start():] if m else "/comfyui"
    return value


def used_classes() -> set[str]:
    """Core node types named by the pack's workflow and blueprint files (subgraph bodies included)."""
    found: set[str] = set()
    for folder in ("workflows", "example_workflows", "subgraphs"):
        for f in sorted((ROOT / folder).glob("*.json")):
            wf = json.loads(f.read_text())
            graphs = [wf] + list((wf.get("definitions") or {}).get("subgraphs") or [])
            found.update(n.get("type") for g in graphs for n in g.get("nodes") or [])
    subgraph_ids = {s.get("id") for f in (ROOT / "subgraphs").glob("*.json")
                    for s in (json.loads(f.read_text()).get("definitions") or {}).get("subgraphs") or []}
    return {t for t in found if t and not t.startswith(PACK_PREFIX) and t not in FRONTEND_ONLY
            and t not in subgraph_ids and not re.fullmatch(r"[0-9a-f-]{36}", t)}


def record(url: str, commit: str) -> dict:
    url = url.rstrip("/")
    _, stats = get(url + "/system_stats")
    system = stats["system"]
    system.update(argv=["main.py", "--cpu"], python_version="3.11", ram_total=25_000_000_000,
                  ram_free=20_000_000_000, pytorch_version="2.14.1")
    stats["devices"] = [dict(d, vram_total=25_000_000_000, vram_free=20_000_000_000, torch_vram_total=25_000_000_000,
                             torch_vram_free=20_000_000_000) for d in stats.get("devices") or []]
    routes = {}
    for route in ROUTES:
        status, body = get(url + route)
        path = route.split("?")[0]
        routes[path] = {"status": status, "body": None if path in COMPUTED else scrub(body)}
    _, info = get(url + "/object_info")
    core = {k: v for k, v in info.items() if not str(v.get("python_module", "")).startswith("custom_nodes")}
    missing = sorted(c for c in set(CORE_CLASSES) | used_classes() if c not in core)
    if missing:
        raise SystemExit(f"the server has no core node class {missing}")
    return {
        "_note": {
            "what": "What a real ComfyUI answered its frontend (tools/record_browser_backend.py), replayed by "
                    "tests/browser/fake_comfy.py for the CI browser guard. Data only; the pack's nodes are not "
                    "here (generated from the code).",
            "comfyui_version": system["comfyui_version"], "comfyui_commit": commit,
            "frontend_version": system.get("required_frontend_version"),
            "captured": datetime.date.today().isoformat(),
        },
        "system_stats": stats,
        "routes": routes,
        "object_info": scrub(core),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="ComfyUI base URL, e.g. http://127.0.0.1:8190")
    ap.add_argument("--commit", required=True, help="ComfyUI git commit (short is fine)")
    ap.add_argument("-o", "--out", type=Path, default=None, help="default: tests/browser/recorded/comfyui-<version>.json")
    a = ap.parse_args(argv)
    data = record(a.url, a.commit)
    out = a.out or OUT_DIR / f"comfyui-{data['_note']['comfyui_version']}.json.gz"
    out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same recording gives the same bytes (no spurious diffs)
    out.write_bytes(gzip.compress((json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), mtime=0))
    print(f"wrote {out}: {len(data['object_info'])} core classes, routes "
          + ", ".join(f"{k} {v['status']}" for k, v in data["routes"].items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
