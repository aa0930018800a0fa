"""A small stdlib stand-in for the ComfyUI server, enough for its real web frontend to start and load workflows.

CI has no ComfyUI, but it can install the frontend package from PyPI (``comfyui-frontend-package``). This
server gives that frontend what a real ComfyUI of the recorded version gives it at start:

* the frontend's static files (``--frontend``: the package's ``static`` folder), and the pack's web folder
  under /extensions/ComfyUI-RationalRewards/ when it has one,
* the answers recorded from the real server (tests/browser/recorded/comfyui-<version>.json.gz, written by
  tools/record_browser_backend.py): system_stats, the start-up endpoints with their status codes, the core
  node definitions,
* the pack's node definitions generated from the current code (pack_object_info.py), with the sampler and
  scheduler lists of the recorded KSampler (the stand-in has short ones),
* what depends on the pack's files: /workflow_templates, /global_subgraphs (ComfyUI >= 0.3.67 serves
  ``subgraphs/*.json`` blueprints there), the /extensions list,
* in-memory settings and user files, a grey picture for every /view, and the /ws websocket (the status
  message and the feature-flag answer a real server sends).

Queueing a prompt is not supported: this server is for loading workflows, not running them.

    python tests/browser/fake_comfy.py --frontend DIR --recorded FILE [--port N]   # prints READY <url>
"""
from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import mimetypes
import re
import struct
import sys
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_object_info import PACK_FOLDER, ROOT, pack_object_info  # noqa: E402

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: Pack combo inputs whose options ComfyUI fills from its own lists: (core class, input) they mirror.
MIRRORED_COMBOS = {"sampler_name": ("KSampler", "sampler_name"), "scheduler": ("KSampler", "scheduler")}
mimetypes.add_type("application/javascript", ".js")
mimetypes.add_type("application/javascript", ".mjs")
mimetypes.add_type("font/woff2", ".woff2")


def grey_png(size: int = 64) -> bytes:
    """A plain grey RGB PNG (what /view answers for any picture, e.g. LoadImage's preview)."""
    raw = b"".join(b"\x00" + b"\x80" * (3 * size) for _ in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pack_web_dir(root: Path = ROOT) -> Path | None:
    """The pack's web folder as ComfyUI finds it: [tool.comfy] web in pyproject.toml, or WEB_DIRECTORY."""
    try:
        import tomllib

        web = tomllib.loads((root / "pyproject.toml").read_text()).get("tool", {}).get("comfy", {}).get("web")
    except (OSError, ValueError):
        web = None
    if not web:
        m = re.search(r"^WEB_DIRECTORY\s*=\s*['\"]([^'\"]+)['\"]", (root / "__init__.py").read_text(), re.M)
        web = m.group(1) if m else None
    return (root / web).resolve() if web and (root / web).is_dir() else None


class Backend:
    """The state behind the fake server: recorded answers, generated node definitions, settings."""

    def __init__(self, frontend: Path, recorded: Path, root: Path = ROOT):
        self.frontend, self.root = Path(frontend).resolve(), Path(root)
        raw = Path(recorded).read_bytes()
        self.recorded = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        self.object_info = dict(self.recorded["object_info"])
        for name, entry in pack_object_info().items():
            for sec in ("required", "optional"):
                for inp, spec in (entry["input"].get(sec) or {}).items():
                    src = MIRRORED_COMBOS.get(inp)
                    if src and src[0] in self.object_info and spec[0] == "COMBO":
                        real = self.object_info[src[0]]["input"]["required"][src[1]]
                        spec[1]["options"] = list(real[0] if isinstance(real[0], list) else real[1]["options"])
            self.object_info[name] = entry
        self.settings: dict = {"Comfy.TutorialCompleted": True}
        self.userdata: dict[str, bytes] = {}
        self.web = pack_web_dir(self.root)
        self.features = (self.recorded["routes"].get("/api/features") or {}).get("body") or {}

    def route_status(self, path: str) -> int:
        return (self.recorded["routes"].get(path) or {}).get("status", 404)

    def extensions(self) -> list[str]:
        ext = self.frontend / "extensions"
        out = ["/" + p.relative_to(self.frontend).as_posix() for p in sorted(ext.rglob("*.js"))] if ext.is_dir() else []
        if self.web:
            out += [f"/extensions/{PACK_FOLDER}/{p.relative_to(self.web).as_posix()}" for p in sorted(self.web.rglob("*.js"))]
        return out

    def subgraphs(self) -> dict[str, dict]:
        """/global_subgraphs entries (ComfyUI's SubgraphManager: id = sha256(source + path))."""
        out = {}
        for f in sorted((self.root / "subgraphs").glob("*.json")):
            path = f"custom_nodes/{PACK_FOLDER}/subgraphs/{f.name}"
            out[hashlib.sha256(f"custom_node{path}".encode()).hexdigest()] = {
                "source": "custom_node", "name": f.stem, "info": {"node_pack": f"custom_nodes.{PACK_FOLDER}"},
                "data": f.read_text()}
        return out

    def templates(self) -> dict:
        return {PACK_FOLDER: sorted(f.stem for f in (self.root / "workflows").glob("*.json"))}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    backend: Backend  # set on the subclass made by serve()

    def log_message(self, fmt, *args):  # quiet: the browser test reports failed requests itself
        pass

    # ---------------------------------------------------------------------------------------- replies
    def _send(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value, status: int = 200) -> None:
        self._send(status, json.dumps(value).encode())

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    # ---------------------------------------------------------------------------------------- routes
    def do_GET(self):  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        api = path[4:] if path.startswith("/api/") else path
        b = self.backend
        if api == "/ws" and self.headers.get("Upgrade", "").lower() == "websocket":
            return self._websocket(query.get("clientId", [""])[0])
        if api == "/object_info":
            return self._json(b.object_info)
        if api.startswith("/object_info/"):
            name = api.split("/", 2)[2]
            return self._json({name: b.object_info[name]} if name in b.object_info else {})
        if api == "/system_stats":
            return self._json(b.recorded["system_stats"])
        if api == "/extensions":
            return self._json(b.extensions())
        if api == "/settings":
            return self._json(b.settings)
        if api.startswith("/settings/"):
            return self._json(b.settings.get(api.split("/", 2)[2]))
        if api == "/userdata":
            return self._send(404, b"Directory not found", "text/plain")
        if api.startswith("/userdata/"):
            name = api.split("/", 2)[2]
            return self._send(200, b.userdata[name]) if name in b.userdata else self._send(404)
        if api == "/workflow_templates" and b.route_status("/api/workflow_templates") == 200:
            return self._json(b.templates())
        if api == "/global_subgraphs" and b.route_status("/api/global_subgraphs") == 200:
            return self._json({k: {x: y for x, y in v.items() if x != "data"} for k, v in b.subgraphs().items()})
        if api.startswith("/global_subgraphs/") and b.route_status("/api/global_subgraphs") == 200:
            return self._json(b.subgraphs().get(api.split("/", 2)[2]))
        if api == "/view":
            return self._send(200, grey_png(), "image/png")
        if path == "/templates/index.json":
            return self._json([])
        for key in (path, "/api" + api):
            if key in b.recorded["routes"]:
                rec = b.recorded["routes"][key]
                return self._json(rec["body"], rec["status"]) if rec["status"] == 200 else self._send(rec["status"])
        return self._static(path)

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        path = unquote(urlsplit(self.path).path)
        api = path[4:] if path.startswith("/api/") else path
        b, body = self.backend, self._body()
        if api == "/settings":
            b.settings.update(json.loads(body or b"{}"))
            return self._send(200, b"")
        if api.startswith("/settings/"):
            b.settings[api.split("/", 2)[2]] = json.loads(body or b"null")
            return self._send(200, b"")
        if api.startswith("/userdata/"):
            name = api.split("/", 2)[2]
            b.userdata[name] = body
            return self._json({"path": name, "size": len(body), "modified": time.time()})
        if api in ("/queue", "/history", "/interrupt", "/free"):
            return self._send(200, b"")
        return self._send(404, b"this fake server loads workflows; it does not run them", "text/plain")

    def _static(self, path: str) -> None:
        b = self.backend
        prefix = f"/extensions/{PACK_FOLDER}/"
        if path.startswith(prefix) and b.web:
            base, rel = b.web, path[len(prefix):]
        else:
            base, rel = b.frontend, ("index.html" if path in ("", "/") else path.lstrip("/"))
        target = (base / rel).resolve()
        if not target.is_file() or base not in target.parents:
            return self._send(404, b"", "text/plain")
        self._send(200, target.read_bytes(), mimetypes.guess_type(target.name)[0] or "application/octet-stream")

    # ------------------------------------------------------------------------------------- websocket
    def _websocket(self, sid: str) -> None:
        accept = base64.b64encode(hashlib.sha1((self.headers["Sec-WebSocket-Key"] + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.close_connection = True
        sid = sid or uuid.uuid4().hex
        self._ws_send({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": sid}})
        first = True
        while True:
            frame = self._ws_read()
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 8:  # close: answer it
                self.wfile.write(b"\x88\x00")
                return
            if opcode == 1 and first:
                first = False
                try:
                    msg = json.loads(payload)
                except ValueError:
                    continue
                if msg.get("type") == "feature_flags":
                    self._ws_send({"type": "feature_flags", "data": self.backend.features})

    def _ws_send(self, message: dict) -> None:
        data = json.dumps(message).encode()
        n = len(data)
        head = bytes([0x81, n]) if n < 126 else (bytes([0x81, 126]) + struct.pack(">H", n) if n < 65536
                                                 else bytes([0x81, 127]) + struct.pack(">Q", n))
        self.wfile.write(head + data)
        self.wfile.flush()

    def _ws_read(self) -> tuple[int, bytes] | None:
        head = self.rfile.read(2)
        if len(head) < 2:
            return None
        opcode, n = head[0] & 0x0F, head[1] & 0x7F
        if n == 126:
            n = struct.unpack(">H", self.rfile.read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self.rfile.read(8))[0]
        mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
        data = self.rfile.read(n)
        return opcode, bytes(c ^ mask[i % 4] for i, c in enumerate(data))


def serve(backend: Backend, port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start the server on 127.0.0.1 in a daemon thread; returns it and its URL."""
    handler = type("BoundHandler", (Handler,), {"backend": backend})
    httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frontend", type=Path, required=True, help="comfyui_frontend_package/static")
    ap.add_argument("--recorded", type=Path, required=True, help="tests/browser/recorded/comfyui-<version>.json.gz")
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args(argv)
    httpd, url = serve(Backend(a.frontend, a.recorded), a.port)
    print(f"READY {url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        httpd.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
