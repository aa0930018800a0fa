"""The OpenAI chat-completions wire format, as the remote critic speaks it: the base URL rule,
message conversion (images as base64 PNG data URLs), error bodies and Retry-After. No I/O here.

URL rule: ``base_url`` is the API root. Trailing slashes and a trailing ``/chat/completions`` are
dropped, ``http://`` is added when no scheme is given, and ``/v1`` is appended when the last path
segment is not a version segment (``v1``, ``v2``, ...). So ``http://host:8000``,
``http://host:8000/`` and ``http://host:8000/v1`` all mean ``http://host:8000/v1``, and
``https://openrouter.ai/api/v1`` stays as it is.
"""
from __future__ import annotations

import base64
import email.utils
import io
import json
import re
import time
from typing import Any
from urllib.parse import urlsplit

from ..errors import RemoteCriticError
from ..images import to_pil

#: Longest wait a server's Retry-After header may impose on one retry (a misconfigured proxy can
#: ask for hours; the user would see a frozen queue).
RETRY_AFTER_CAP = 30.0
_VERSION_SEGMENT = re.compile(r"^v\d+$")
#: What http.client refuses in a URL (``InvalidURL: ... control characters``): whitespace and C0/DEL.
_BAD_URL_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


def normalize_base_url(base_url: str) -> str:
    """Apply the URL rule in the module docstring; raise RemoteCriticError, naming base_url and what is
    wrong, for an address that cannot be one (spaces or control characters, no host, a bad port)."""
    if not isinstance(base_url, str) or not base_url.strip():
        raise RemoteCriticError("base_url is empty: enter the server's address, e.g. http://127.0.0.1:8000/v1")
    url = base_url.strip()
    example = "use the server's address, e.g. http://127.0.0.1:8000/v1"
    if _BAD_URL_CHARS.search(url):
        raise RemoteCriticError(f"base_url {base_url!r} is not a URL: it contains spaces or control characters; "
                                f"{example}")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RemoteCriticError(f"base_url {base_url!r} is not an http(s) address; {example}")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number or out of range
    except ValueError:
        raise RemoteCriticError(f"base_url {base_url!r} has an invalid port (a number 1-65535 after the host's "
                                f"colon); {example}") from None
    path = parts.path.rstrip("/")
    if path.endswith("/chat/completions"):
        path = path[: -len("/chat/completions")]
    if not _VERSION_SEGMENT.match(path.rsplit("/", 1)[-1]):
        path += "/v1"
    return f"{parts.scheme}://{parts.netloc}{path}"


#: HTTP 501: the server does not do POST at all (a plain web server), not a passing failure.
NOT_IMPLEMENTED = 501


def retryable(status: int) -> bool:
    """Rate limiting and server failures may pass; a server that does not implement the method will not."""
    return status == 429 or (status >= 500 and status != NOT_IMPLEMENTED)


def retry_after(headers, default: float) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return default
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def server_message(body: bytes) -> str:
    """The error text of an OpenAI/vLLM/FastAPI error body, else the start of the body."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return snippet(body)
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        for key in ("message", "detail", "error"):
            if data.get(key):
                return str(data[key])
    return snippet(body)


def snippet(body: bytes, limit: int = 200) -> str:
    text = body.decode("utf-8", "replace").strip().replace("\n", " ")
    if not text:
        return "an empty body"
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


def to_openai_messages(chat: list[dict[str, Any]], max_pixels: int | None = None) -> list[dict[str, Any]]:
    """Our chat messages -> OpenAI chat format: images become base64 PNG data URLs, in order.

    Text-only contents are sent as a plain string, which every OpenAI-compatible server accepts.
    """
    out = []
    for m in chat:
        content = m.get("content")
        if isinstance(content, list):
            parts = []
            for p in content:
                if p.get("type") == "image":
                    url = "data:image/png;base64," + png_base64(to_pil(p["image"], "image", max_pixels))
                    parts.append({"type": "image_url", "image_url": {"url": url}})
                elif p.get("type") == "text":
                    parts.append({"type": "text", "text": p.get("text", "")})
                else:
                    raise RemoteCriticError(f"message part of type {p.get('type')!r} cannot be sent to a remote critic")
            if all(p["type"] == "text" for p in parts):
                content = "".join(p["text"] for p in parts)
            else:
                content = parts
        out.append({"role": m.get("role", "user"), "content": content})
    return out


def png_base64(image) -> str:
    """Base64 of a lossless PNG of an RGB PIL image (fast compression: bytes are cheap on a LAN)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return base64.b64encode(buf.getvalue()).decode("ascii")
