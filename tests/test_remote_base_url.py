"""Remote critic mistakes in base_url, against real local servers: each error names base_url (or the
URL) and the likely cause, never a raw stdlib exception or crash advice that points the wrong way."""
from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from chat_server import ChatServer  # noqa: E402

from rationalrewards.models.backends.remote import RemoteCritic
from rationalrewards.models.errors import RemoteCriticError


@pytest.fixture
def server():
    with ChatServer() as srv:
        yield srv


def img() -> Image.Image:
    return Image.new("RGB", (32, 24), (200, 30, 30))


def names_server(err: RemoteCriticError, url: str, model: str) -> None:
    assert url in str(err) and repr(model) in str(err), str(err)


@pytest.mark.parametrize("bad,why", [
    ("not a url", "spaces or control characters"),
    ("http://127.0.0.1:8000/v1\n", None),  # a trailing newline is only whitespace around the address: fine
    ("http://127.0.0.1:8000/v\x01", "spaces or control characters"),
    ("http://host name:8000/v1", "spaces or control characters"),
    ("http://127.0.0.1:80x0/v1", "invalid port"),
    ("http://127.0.0.1:99999/v1", "invalid port"),
    ("http://:8000/v1", "not an http"),
])
def test_malformed_base_url_names_base_url(bad, why):
    if why is None:
        assert RemoteCritic(bad, "m").base_url == "http://127.0.0.1:8000/v1"
        return
    with pytest.raises(RemoteCriticError) as e:
        RemoteCritic(bad, "m").critique(img(), "x")
    msg = str(e.value)
    assert msg.startswith("base_url") and why in msg and "http://127.0.0.1:8000/v1" in msg, msg
    assert "InvalidURL" not in msg


def test_405_says_base_url_is_not_an_openai_api(server):
    server.inject(405, message="Method Not Allowed")
    with pytest.raises(RemoteCriticError) as e:
        RemoteCritic(server.url, server.model, retries=0).critique(img(), "x")
    msg = str(e.value)
    assert "HTTP 405" in msg and "OpenAI-compatible" in msg and "check base_url" in msg
    names_server(e.value, server.url, server.model)


def test_a_plain_web_server_is_not_taken_for_a_crash(tmp_path):
    """base_url pointing at an ordinary web server (here the standard library's file server, which
    answers POST with 501): the error says to check base_url, not to look for a crash."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        with pytest.raises(RemoteCriticError) as e:
            RemoteCritic(url, "m", retries=0).critique(img(), "x")
    finally:
        httpd.shutdown()
        httpd.server_close()
    msg = str(e.value)
    assert "OpenAI-compatible" in msg and "check base_url" in msg and "out of memory" not in msg, msg


def test_https_against_a_plain_http_server_suggests_http(server):
    url = server.url.replace("http://", "https://")
    with pytest.raises(RemoteCriticError) as e:
        RemoteCritic(url, server.model, retries=2, backoff=0.01).critique(img(), "x")
    msg = str(e.value)
    assert "https" in msg and "try http://" in msg and url in msg, msg
    assert "out of memory" not in msg and "crashed" not in msg
    assert not server.chat_requests  # no request got through, and the handshake was not retried as a crash


def test_a_redirect_names_where_it_points(server):
    server.inject(301, message="moved")
    with pytest.raises(RemoteCriticError) as e:
        RemoteCritic(server.url, server.model, retries=0).critique(img(), "x")
    assert "HTTP 301" in str(e.value) and "base_url" in str(e.value)
