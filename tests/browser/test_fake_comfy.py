"""The guard's fake ComfyUI backend answers what the frontend needs (no browser needed; runs in the normal suite)."""
from __future__ import annotations

import base64
import gzip
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the helpers beside this file

from fake_comfy import Backend, grey_png, serve  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECORDED = {f.name.split("-")[1].removesuffix(".json.gz"): f
            for f in (Path(__file__).parent / "recorded").glob("comfyui-*.json.gz")}


@pytest.fixture(scope="module", params=sorted(RECORDED))
def fake(request, tmp_path_factory):
    frontend = tmp_path_factory.mktemp("frontend")
    (frontend / "index.html").write_text("<html>frontend</html>")
    (frontend / "extensions" / "core").mkdir(parents=True)
    (frontend / "extensions" / "core" / "widgetInputs.js").write_text("// core extension")
    httpd, url = serve(Backend(frontend, RECORDED[request.param]))
    yield request.param, url
    httpd.shutdown()


def _get(url: str):
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_recordings_hold_no_path_of_the_recording_machine():
    for f in RECORDED.values():
        text = gzip.decompress(f.read_bytes()).decode()
        for prefix in ('"/root', '"/home', '"/work', '"/tmp', "wt-issue"):
            assert prefix not in text, (f.name, prefix)


def test_object_info_has_the_recorded_core_and_the_generated_pack_nodes(fake):
    _, url = fake
    status, body = _get(url + "/api/object_info")
    info = json.loads(body)
    assert status == 200 and "KSampler" in info and len(info) > 400
    from pack_object_info import pack_object_info

    assert set(pack_object_info()) <= set(info)
    loop = info["RationalRewardsSimpleLoop"]["input"]["required"]
    ks = info["KSampler"]["input"]["required"]["sampler_name"]
    assert loop["sampler_name"][1]["options"] == (ks[0] if isinstance(ks[0], list) else ks[1]["options"])


def test_static_files_extensions_settings_and_view(fake):
    _, url = fake
    assert _get(url + "/") == (200, b"<html>frontend</html>")
    assert json.loads(_get(url + "/api/extensions")[1]) == ["/extensions/core/widgetInputs.js"]
    assert _get(url + "/../pyproject.toml")[0] == 404
    req = urllib.request.Request(url + "/api/settings/Comfy.X", data=b"42", method="POST")
    urllib.request.urlopen(req, timeout=30).read()
    assert json.loads(_get(url + "/api/settings")[1])["Comfy.X"] == 42
    assert _get(url + "/api/view?filename=a.png&type=input") == (200, grey_png())


def test_blueprints_are_served_only_where_the_recorded_comfyui_served_them(fake):
    version, url = fake
    status, body = _get(url + "/api/global_subgraphs")
    served = json.loads(gzip.decompress(RECORDED[version].read_bytes()))["routes"]["/api/global_subgraphs"]["status"]
    assert status == served
    if status == 200:
        entries = json.loads(body)
        files = sorted((ROOT / "subgraphs").glob("*.json"))
        assert sorted(e["name"] for e in entries.values()) == sorted(f.stem for f in files)
        for key, entry in entries.items():
            full = json.loads(_get(f"{url}/api/global_subgraphs/{key}")[1])
            assert full["data"] == (ROOT / "subgraphs" / f"{entry['name']}.json").read_text()


def test_websocket_greets_with_the_queue_status(fake):
    _, url = fake
    host, port = url.removeprefix("http://").split(":")
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall((f"GET /ws?clientId=abc HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 2:
            data += s.recv(4096)
        head, frame = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101")
        n = frame[1] & 0x7F
        while len(frame) < 2 + n:
            frame += s.recv(4096)
        msg = json.loads(frame[2:2 + n])
        assert msg == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "abc"}}
