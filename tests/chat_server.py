"""A real OpenAI-compatible chat-completions server for tests and benchmarks (standard library only).

It listens on 127.0.0.1 (a free port), answers like a vLLM server serving RationalRewards, and can
be told to misbehave. Not a mock: clients talk real HTTP to it.

Import it from a test (pytest runs with --import-mode=importlib, so add the tests folder first)::

    import sys, pathlib
    sys.path.insert(0, str(pathlib.Path(__file__).parent))
    from chat_server import ChatServer

    with ChatServer(latency=0.05) as srv:
        critic = RemoteCritic(srv.url, srv.model)       # srv.url == "http://127.0.0.1:PORT/v1"
        ...
        srv.chat_requests[0].images()                   # decoded PIL images of the first request

API
---
``ChatServer(*, model="rationalrewards", models=None, latency=0.0, jitter=0.0, answer=None,
api_key=None, hang_seconds=10.0, seed=0)``
    ``latency``: seconds every chat request waits before answering; ``jitter``: plus a uniform
    random 0..jitter more (seeded by ``seed``). ``models``: the ids GET /v1/models lists and POST
    accepts (default ``[model]``; another model gets a vLLM-style 404). ``api_key``: when set, the
    server demands ``Authorization: Bearer <api_key>`` (else 401). ``answer``: a string, or a
    callable ``(ChatRequestRecord) -> str``, replacing the default answer.
``start()`` / ``stop()``, or use it as a context manager. ``url`` (with /v1), ``root_url`` (without).
``inject(fault, times=1, *, message=None, retry_after=None)``: the next ``times`` chat requests get
    ``fault``, in the order injected. ``fault`` is an HTTP status (int; ``message`` is the error
    text, ``retry_after`` sets a Retry-After header) or one of: ``"drop"`` (close the connection
    without an answer), ``"hang"`` (wait ``hang_seconds`` or until stop(), then answer),
    ``"not_json"`` (200 with an HTML body), ``"no_choices"`` (200 with JSON lacking "choices"),
    ``"empty"`` (200 with empty content), ``"length"`` (a half answer, finish_reason "length").
``requests``: every request received (``ChatRequestRecord``); ``chat_requests``: only the POSTs to
    /v1/chat/completions. ``max_in_flight``: the most chat requests handled at the same time.
``ChatRequestRecord``: ``method``, ``path``, ``headers`` (dict, lower-case names), ``body`` (parsed
    JSON or None), ``images()`` (decoded PIL images in message order), ``image_urls()``, ``text()``
    (all text parts joined), ``kind()`` (what the default answer judged: "t2i", "edit",
    "pairwise-t2i" or "pairwise-edit").

Default answers: a pointwise critique for 1 image (t2i) or 2 images (edit); a pairwise comparison
when the request text mentions "Image A" (2 images: pairwise-t2i, 3: pairwise-edit). Scores are
3.5 / 3.0 (t2i) and the refined request is the instruction plus ", sharp focus, natural lighting".

Run it by hand: ``python tests/chat_server.py --port 8000 --latency 0.5`` (the first line printed is
the URL; ``--port 0`` picks a free port).
"""
from __future__ import annotations

import base64
import io
import json
import random
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

STRING_FAULTS = ("drop", "hang", "not_json", "no_choices", "empty", "length")


@dataclass
class ChatRequestRecord:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any = None
    received_at: float = field(default_factory=time.perf_counter)

    def _parts(self) -> list[dict[str, Any]]:
        out = []
        for m in (self.body or {}).get("messages", []):
            c = m.get("content")
            out.extend(c if isinstance(c, list) else [{"type": "text", "text": c or ""}])
        return out

    def image_urls(self) -> list[str]:
        """The image_url strings in message order."""
        return [p["image_url"]["url"] for p in self._parts() if p.get("type") == "image_url"]

    def images(self) -> list[Any]:
        """The images as PIL images, decoded from their base64 data URLs (in message order)."""
        from PIL import Image

        out = []
        for url in self.image_urls():
            header, _, data = url.partition(",")
            if not header.startswith("data:image/") or ";base64" not in header:
                raise ValueError(f"not a base64 image data URL: {url[:40]}")
            im = Image.open(io.BytesIO(base64.b64decode(data)))
            im.load()
            out.append(im)
        return out

    def text(self) -> str:
        """All text parts of all messages, joined."""
        return "\n".join(p.get("text", "") for p in self._parts() if p.get("type") == "text")

    def kind(self) -> str:
        """The critique kind the request asks for, judged from its images and text."""
        n = len(self.image_urls())
        if "Image A" in self.text():
            return "pairwise-edit" if n >= 3 else "pairwise-t2i"
        return "edit" if n >= 2 else "t2i"


def _instruction(text: str) -> str:
    m = re.search(r"User Instruction:\s*(.+)", text)
    return m.group(1).strip() if m else "the requested image"


def default_answer(req: ChatRequestRecord) -> str:
    """A well-formed RationalRewards answer of the kind ``req`` asks for."""
    kind = req.kind()
    instr = _instruction(req.text())
    if kind.startswith("pairwise"):
        aspects = ["Text Faithfulness"] + (["Image Faithfulness"] if kind == "pairwise-edit" else [])
        aspects += ["Physical and Visual Quality", "Text Rendering"]
        lines = ["# User Request Analysis", f"The request asks for: {instr}.", "# Detailed Judgement"]
        for i, name in enumerate(aspects, 1):
            na = name == "Text Rendering"
            lines += [f"{i}. {name}:", f"## Justification: Image A handles {name.lower()} better.",
                      f"## Score A: {'N/A' if na else '3.5'}", f"## Score B: {'N/A' if na else '2.5'}",
                      f"## Winner: {'N/A' if na else 'Image A'}"]
        lines += ["# Summary: Image A follows the request more closely."]
        return "\n".join(lines) + "\n"
    aspects = [("Text Faithfulness", "3.5")]
    if kind == "edit":
        aspects.append(("Image Faithfulness", "3.0"))
    aspects += [("Physical and Visual Quality", "3.0"), ("Text Rendering", "N/A")]
    lines = ["# User Request Analysis", f"The request asks for: {instr}.", "# Detailed Judgement"]
    for i, (name, score) in enumerate(aspects, 1):
        lines += [f"{i}. {name}:", f"## Justification: Judged {name.lower()} carefully.", f"## Score: {score}"]
    lines += ["# Summary: A faithful image with slightly soft lighting.", "",
              "# User Request Refinement:", "## Refinement Comments: Ask for sharper focus and natural light.",
              f"## Refined Request: {instr}, sharp focus, natural lighting"]
    return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must never block shutdown
    allow_reuse_address = True


class ChatServer:
    """A threaded chat-completions server on 127.0.0.1; see the module docstring for the API."""

    def __init__(self, *, model: str = "rationalrewards", models: list[str] | None = None,
                 latency: float = 0.0, jitter: float = 0.0,
                 answer: str | Callable[[ChatRequestRecord], str] | None = None,
                 api_key: str | None = None, hang_seconds: float = 10.0, seed: int = 0, port: int = 0):
        self.model = model
        self.models = list(models) if models is not None else [model]
        self.latency, self.jitter = latency, jitter
        self.answer = answer
        self.api_key = api_key
        self.hang_seconds = hang_seconds
        self.requests: list[ChatRequestRecord] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._faults: deque = deque()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle --
    def start(self) -> "ChatServer":
        """Start listening (idempotent)."""
        if self._httpd is None:
            self._httpd = _Server(("127.0.0.1", self._port), _make_handler(self))
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="chat-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening; hanging handlers return at once."""
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "ChatServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "server not started"
        return self._httpd.server_address[1]

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root_url + "/v1"

    # -- scripting --
    def inject(self, fault: int | str, times: int = 1, *, message: str | None = None,
               retry_after: float | str | None = None) -> None:
        """Make the next ``times`` chat requests fail with ``fault`` (see the module docstring)."""
        if not isinstance(fault, int) and fault not in STRING_FAULTS:
            raise ValueError(f"unknown fault {fault!r}: use an HTTP status or one of {STRING_FAULTS}")
        with self._lock:
            for _ in range(times):
                self._faults.append((fault, message, retry_after))

    @property
    def chat_requests(self) -> list[ChatRequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.method == "POST" and r.path.endswith("/chat/completions")]

    def _take_fault(self):
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _delay(self) -> float:
        with self._lock:
            return self.latency + (self._rng.uniform(0, self.jitter) if self.jitter else 0.0)

    def _answer_text(self, rec: ChatRequestRecord) -> str:
        if self.answer is None:
            return default_answer(rec)
        return self.answer(rec) if callable(self.answer) else self.answer


def _completion(model: str, content: str, finish: str = "stop") -> dict[str, Any]:
    return {
        "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 100, "completion_tokens": max(1, len(content) // 4),
                  "total_tokens": 100 + max(1, len(content) // 4)},
    }


def _error(status: int, message: str) -> dict[str, Any]:
    # vLLM's error body shape.
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": status}


def _make_handler(srv: ChatServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        _responded = False
        _counted = False

        def _leave(self) -> None:
            """This request stops counting as in flight. Called before the answer's bytes leave, since the
            client may send its next request the moment it has them (counting after would see one too many)."""
            if self._counted:
                self._counted = False
                with srv._lock:
                    srv._in_flight -= 1

        def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
            self._responded = True
            self._leave()
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json" if not isinstance(payload, bytes) else "text/html")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def _record(self, body: Any) -> ChatRequestRecord:
            rec = ChatRequestRecord(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            with srv._lock:
                srv.requests.append(rec)
            return rec

        def _authorized(self) -> bool:
            if srv.api_key is None:
                return True
            if self.headers.get("Authorization") == f"Bearer {srv.api_key}":
                return True
            self._send(401, {"error": {"message": "Invalid API key", "type": "invalid_request_error"}})
            return False

        def do_GET(self) -> None:
            self._record(None)
            if not self._authorized():
                return
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, {"object": "list",
                                 "data": [{"id": m, "object": "model", "owned_by": "test"} for m in srv.models]})
            else:
                self._send(404, {"detail": "Not Found"})

        def do_POST(self) -> None:
            self._responded = False
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            rec = self._record(body)
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._send(404, {"detail": "Not Found"})
                return
            if not self._authorized():
                return
            with srv._lock:
                srv._in_flight += 1
                srv.max_in_flight = max(srv.max_in_flight, srv._in_flight)
            self._counted = True
            try:
                self._chat(rec)
            finally:
                # Faults that answer nothing must end the connection, or a keep-alive client waits.
                if not self._responded:
                    self.close_connection = True
                self._leave()

        def _chat(self, rec: ChatRequestRecord) -> None:
            fault = srv._take_fault()
            delay = srv._delay()
            if delay and srv._stop.wait(delay):
                return
            if rec.body is None or not isinstance(rec.body.get("messages"), list):
                self._send(400, _error(400, "request body must be JSON with a 'messages' list"))
                return
            if rec.body.get("model") not in srv.models:
                self._send(404, _error(404, f"The model `{rec.body.get('model')}` does not exist."))
                return
            kind, message, retry_after = fault if fault else (None, None, None)
            if isinstance(kind, int):
                headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
                self._send(kind, _error(kind, message or f"injected HTTP {kind}"), headers)
                return
            if kind == "drop":
                self.close_connection = True
                return  # no response at all: the client sees the connection close
            if kind == "hang":
                if srv._stop.wait(srv.hang_seconds):
                    return
            if kind == "not_json":
                self._send(200, b"<html><body>Welcome to nginx!</body></html>")
                return
            if kind == "no_choices":
                self._send(200, {"id": "x", "object": "chat.completion", "model": srv.model})
                return
            if kind == "empty":
                self._send(200, _completion(srv.model, ""))
                return
            text = srv._answer_text(rec)
            if kind == "length":
                self._send(200, _completion(srv.model, text[: len(text) // 2], "length"))
                return
            self._send(200, _completion(srv.model, text))

    return Handler


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Run the test chat-completions server by hand.")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    ap.add_argument("--model", default="rationalrewards")
    ap.add_argument("--latency", type=float, default=0.0)
    args = ap.parse_args()
    with ChatServer(model=args.model, latency=args.latency, port=args.port) as s:
        # First line is machine-readable (benchmarks start the server in its own process).
        print(s.url, flush=True)
        print(f"serving {args.model!r} at {s.url} (Ctrl+C stops)", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
