#!/usr/bin/env python3
"""Record the core node definitions our workflows use from a running ComfyUI's ``/object_info``.

The workflow test (tests/test_workflows.py) validates every workflow file offline: the pack's own nodes
come from their ``define_schema()`` (through the ComfyUI stand-in), the core nodes from the fixture this
script writes. Re-run it when the workflows start using another core node, or to move to a newer ComfyUI:

    ../shared/comfy/start_comfy.sh 8190 .          # any ComfyUI with this pack in custom_nodes
    python tools/capture_object_info.py http://127.0.0.1:8190 --comfyui-version 0.3.64 --commit a125cd84

Without --classes it keeps CORE_CLASSES below plus every core class a workflow file under workflows/
names (so a new workflow's core nodes are picked up). The pack's own entries (those
whose python_module is this pack's folder) are saved under ``pack_nodes`` for comparison only. Stdlib only.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "core_object_info.json"

#: Core classes the workflows use (or are likely to: the Flux / Qwen-Image bodies' usual neighbours).
CORE_CLASSES = [
    "CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "EmptySD3LatentImage", "KSampler",
    "VAEDecode", "VAEEncode", "SaveImage", "PreviewImage", "LoadImage", "UNETLoader", "DualCLIPLoader",
    "VAELoader", "CLIPLoader", "FluxGuidance", "ConditioningZeroOut", "TextEncodeQwenImageEdit",
    "ModelSamplingAuraFlow", "CFGNorm", "ImageScaleToTotalPixels", "PrimitiveString", "PrimitiveStringMultiline",
    "PrimitiveInt", "ImageBatch", "PreviewAny",
]
#: Nodes that exist only in the browser (no /object_info entry); the checker knows them itself.
FRONTEND_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
PACK_PREFIX = "RationalRewards"


def workflow_classes() -> set[str]:
    """Node types named in the repository's workflow files."""
    found: set[str] = set()
    for f in sorted((ROOT / "workflows").glob("*.json")):
        found.update(n.get("type") for n in json.loads(f.read_text()).get("nodes", []))
    return {t for t in found if t and not t.startswith(PACK_PREFIX) and t not in FRONTEND_ONLY}


def fetch(url: str) -> dict:
    """GET ``url``/object_info as a dict."""
    with urllib.request.urlopen(url.rstrip("/") + "/object_info", timeout=60) as r:
        return json.loads(r.read())


def capture(info: dict, classes: list[str], version: str, commit: str, frontend: str | None) -> dict:
    """The fixture: a note, the chosen core entries, and the pack's entries for reference."""
    missing = [c for c in classes if c not in info]
    if missing:
        raise SystemExit(f"the server has no node class {missing}: is it the ComfyUI version you meant?")
    return {
        "_note": {
            "what": "Core node definitions copied from ComfyUI's GET /object_info, used by tests/workflow_check.py "
                    "to validate the workflow files without ComfyUI. Data only; regenerate with "
                    "tools/capture_object_info.py.",
            "comfyui_version": version,
            "comfyui_commit": commit,
            "frontend_version": frontend,
            "captured": datetime.date.today().isoformat(),
        },
        "nodes": {c: info[c] for c in sorted(classes)},
        "pack_nodes": {k: v for k, v in sorted(info.items()) if k.startswith(PACK_PREFIX)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url", help="ComfyUI base URL, e.g. http://127.0.0.1:8190")
    ap.add_argument("--classes", nargs="*", help="core classes to keep (default: CORE_CLASSES + workflows')")
    ap.add_argument("--comfyui-version", required=True)
    ap.add_argument("--commit", required=True, help="ComfyUI git commit (short is fine)")
    ap.add_argument("--frontend-version", default=None)
    ap.add_argument("-o", "--out", type=Path, default=FIXTURE)
    a = ap.parse_args(argv)
    classes = a.classes or sorted(set(CORE_CLASSES) | workflow_classes())
    data = capture(fetch(a.url), classes, a.comfyui_version, a.commit, a.frontend_version)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"wrote {a.out}: {len(data['nodes'])} core classes, {len(data['pack_nodes'])} pack classes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
