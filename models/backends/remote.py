"""The remote critic: RationalRewards behind an OpenAI-compatible chat-completions server.

Upstream serves the model with vLLM (``vllm serve ... --port 6868``); SGLang, LM Studio and Ollama
speak the same protocol. This backend sends the same messages the local backend builds (images as
base64 PNG data URLs, in the same order and within the same pixel budget) and gets text back; the
base class parses it. Only the standard library is used (http.client + threads): no new dependency.

URL rule (see remote_wire.normalize_base_url): ``http://host:8000``, ``http://host:8000/`` and
``http://host:8000/v1`` all mean ``http://host:8000/v1``; a trailing ``/chat/completions`` is
dropped. Proxy environment variables are not used (local servers behind a corporate
``HTTP_PROXY`` would otherwise break).

Concurrency: one daemon thread per in-flight request, at most ``max_concurrency`` at a time, results
back in input order. Callbacks are called from the caller's thread only. Cancel (``is_interrupted``
polled every 0.1 s) shuts the sockets of outstanding requests and returns at once; daemon threads
mean a hung server can neither block the caller nor interpreter exit.
"""
from __future__ import annotations

import http.client
import json
import os
import queue
import random
import re
import socket
import ssl
import threading
import time
from typing import Any, Sequence
from urllib.parse import urlsplit

from ..errors import RemoteCriticError
from .base import Callbacks, CriticBackend, Generation, GenerationSettings
from .remote_wire import (NOT_IMPLEMENTED, RETRY_AFTER_CAP, normalize_base_url, png_base64, retry_after, retryable,
                          server_message, snippet, to_openai_messages)

__all__ = ["RemoteCritic", "normalize_base_url", "to_openai_messages", "png_base64", "RETRY_AFTER_CAP"]

#: How often the caller's thread checks the interrupt callback while requests are in flight.
POLL_SECONDS = 0.1
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Cancelled(Exception):
    """Internal: a worker noticed the call was abandoned."""


class RemoteCritic(CriticBackend):
    """A critic answered by an OpenAI-compatible server (vLLM, SGLang, LM Studio, Ollama).

    ``api_key_env`` is the NAME of the environment variable holding the key; the key is read at
    request time and kept nowhere (not in repr, identity, cache keys or workflows). ``retries`` is
    the number of retries after the first try, for HTTP 429, 5xx and dropped connections, waiting
    ``backoff * 2**n`` seconds (or the server's Retry-After, capped at 30 s). ``timeout`` bounds
    connecting and each wait for the server's answer, in seconds.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_concurrency: int = 4,
        cache_size: int = 256,
    ):
        super().__init__(cache_size)
        self.base_url = normalize_base_url(base_url)
        if not isinstance(model, str) or not model.strip():
            raise RemoteCriticError(
                f"model is empty for {self.base_url}: enter the served model name "
                "(vLLM: the --served-model-name value; the server's /v1/models lists them)"
            )
        self.model = model.strip()
        if api_key_env is not None and api_key_env.strip() == "":
            api_key_env = None
        if api_key_env is not None and not _ENV_NAME.match(api_key_env.strip()):
            # Never echo the value: a user may have pasted the key itself here.
            raise RemoteCriticError(
                "api_key_env must be the NAME of an environment variable (like RATIONALREWARDS_API_KEY), "
                "not the key itself; put the key in that variable before starting ComfyUI"
            )
        self.api_key_env = api_key_env.strip() if api_key_env else None
        if not timeout or timeout <= 0:
            raise RemoteCriticError(f"timeout must be a positive number of seconds, got {timeout}")
        if retries < 0 or backoff < 0:
            raise RemoteCriticError(f"retries and backoff must be >= 0, got {retries} and {backoff}")
        if max_concurrency < 1:
            raise RemoteCriticError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.max_concurrency = int(max_concurrency)
        parts = urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path

    @property
    def identity(self) -> str:
        """The server URL and model name (never the key)."""
        return f"remote:{self.base_url}|{self.model}"

    def __repr__(self) -> str:
        return (
            f"RemoteCritic(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
            f"max_concurrency={self.max_concurrency})"
        )

    def _where(self) -> str:
        return f"{self.base_url} (model {self.model!r})"

    # -- public helpers ----------------------------------------------------------------------------
    def list_models(self) -> list[str]:
        """The model ids the server serves (GET {base_url}/models); raises RemoteCriticError."""
        status, headers, body = self._request("GET", "/models", None, None)
        if status != 200:
            raise self._http_error(status, headers, body, "/models")
        data = self._json(body)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise RemoteCriticError(f"{self.base_url}/models answered JSON without a 'data' list of models")
        return [str(m.get("id")) for m in items if isinstance(m, dict) and m.get("id") is not None]

    # -- the backend primitive ---------------------------------------------------------------------
    def _generate(
        self, messages: Sequence[list[dict[str, Any]]], settings: GenerationSettings, callbacks: Callbacks
    ) -> list[Generation]:
        """Send one chat-completions request per chat, concurrently (bounded), in input order."""
        total = len(messages)
        if total == 0:
            return []
        headers = self._headers()  # reads the key now; fails before any request if it is unset
        cancel = threading.Event()
        done_q: queue.Queue = queue.Queue()
        next_index = iter(range(total))
        conns: set[http.client.HTTPConnection] = set()
        conns_lock = threading.Lock()

        def worker() -> None:
            for i in iter(lambda: next(next_index, None), None):
                if cancel.is_set():
                    return
                try:
                    done_q.put((i, self._complete(messages[i], settings, headers, cancel, conns, conns_lock)))
                except _Cancelled:
                    return
                except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
                    done_q.put((i, e))
                    return

        # The iterator is shared by the workers; next() on a range iterator is atomic under the GIL.
        threads = [threading.Thread(target=worker, name=f"rr-remote-{k}", daemon=True)
                   for k in range(min(self.max_concurrency, total))]
        for t in threads:
            t.start()
        results: list[Generation | None] = [None] * total
        finished = 0
        try:
            while finished < total:
                callbacks.check_interrupt()
                try:
                    i, res = done_q.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done_q.empty():
                        raise RemoteCriticError(f"{self._where()}: request workers stopped without an answer")
                    continue
                if isinstance(res, BaseException):
                    raise res
                results[i] = res
                finished += 1
                if callbacks.on_text:
                    callbacks.on_text(i, res.text)
                if callbacks.on_item:
                    callbacks.on_item(finished, total)
        except BaseException:
            # Abandon what is still in flight: no waiting on a slow or hung server.
            cancel.set()
            with conns_lock:
                for c in list(conns):
                    _shutdown(c)
            raise
        return results  # type: ignore[return-value]

    # -- one request with retries ------------------------------------------------------------------
    def _complete(self, chat, settings, headers, cancel, conns, conns_lock) -> Generation:
        payload = {
            "model": self.model,
            "messages": to_openai_messages(chat, settings.max_pixels),
            "max_tokens": int(settings.max_new_tokens),
            "temperature": float(settings.temperature) if settings.do_sample else 0.0,
            "top_p": float(settings.top_p),
            "seed": int(settings.seed),
            "stream": False,
        }
        body = json.dumps(payload).encode("utf-8")
        t0 = time.perf_counter()
        for attempt in range(self.retries + 1):
            if cancel.is_set():
                raise _Cancelled()
            last_try = attempt == self.retries
            try:
                status, rh, rb = self._request("POST", "/chat/completions", body, headers, cancel, conns, conns_lock)
            except _Dropped as e:
                if cancel.is_set():
                    raise _Cancelled() from None
                if last_try:
                    raise RemoteCriticError(
                        f"{self._where()} dropped the connection {attempt + 1} time(s) ({e}); the server may have "
                        "crashed or restarted (check its log: out of memory?)"
                    ) from None
                self._sleep(self.backoff * 2 ** attempt, cancel)
                continue
            if status == 200:
                return self._generation(rb, time.perf_counter() - t0)
            if retryable(status) and not last_try:
                self._sleep(retry_after(rh, self.backoff * 2 ** attempt), cancel)
                continue
            err = self._http_error(status, rh, rb, "/chat/completions")
            if retryable(status):
                err = RemoteCriticError(f"{err} (gave up after {attempt + 1} tries; raise retries or lower concurrency)")
            raise err
        raise AssertionError("unreachable")

    def _sleep(self, seconds: float, cancel: threading.Event) -> None:
        # A little jitter so concurrent requests told to wait do not return in lockstep.
        if cancel.wait(seconds * (1.0 + 0.25 * random.random())):
            raise _Cancelled()

    def _generation(self, body: bytes, seconds: float) -> Generation:
        data = self._json(body)
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise RemoteCriticError(
                f"{self._where()} answered JSON without 'choices' (got {snippet(body)}); "
                "is base_url an OpenAI-compatible chat-completions API?"
            )
        choice = choices[0]
        message = choice.get("message") or {}
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # some servers answer with content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        finish = choice.get("finish_reason")
        if not isinstance(content, str) or not content.strip():
            raise RemoteCriticError(
                f"{self._where()} answered an empty message (finish_reason={finish!r}); check that the model "
                "accepts images (vLLM: --limit-mm-per-prompt) and that max_new_tokens is not tiny"
            )
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        n = usage.get("completion_tokens") or 0
        return Generation(content, truncated=finish == "length", n_tokens=int(n), seconds=seconds)

    # -- HTTP --------------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env, "").strip()
            if not key:
                raise RemoteCriticError(
                    f"{self._where()}: the environment variable {self.api_key_env} (api_key_env) is not set or "
                    "empty in the process running ComfyUI; set it before starting, or clear api_key_env for a "
                    "server without a key"
                )
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout,
                                               context=ssl.create_default_context())
        return http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)

    def _request(self, method, path, body, headers, cancel=None, conns=None, conns_lock=None):
        """One HTTP exchange -> (status, headers, body). Raises _Dropped (retryable) or RemoteCriticError."""
        conn = self._connection()
        connected = False
        try:
            conn.connect()  # for https this includes the TLS handshake
            connected = True
            if conns is not None:
                # Register, then check: a cancel either sees this socket or is seen here (no gap).
                with conns_lock:
                    conns.add(conn)
                if cancel.is_set():
                    raise _Cancelled()
            conn.request(method, self._path + path, body=body, headers=headers or {"Accept": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.headers, resp.read()
        except socket.gaierror:
            raise RemoteCriticError(
                f"{self._where()}: unknown host {self._host!r}; check the spelling of base_url "
                "(and that this machine can resolve that name)"
            ) from None
        except ConnectionRefusedError:
            raise RemoteCriticError(
                f"{self._where()}: connection refused, nothing is listening there; start the server "
                "(e.g. vllm serve <model dir> --port ...) or fix the host/port in base_url"
            ) from None
        except (TimeoutError, socket.timeout):
            if cancel is not None and cancel.is_set():
                raise _Cancelled() from None
            raise RemoteCriticError(
                f"{self._where()}: no answer within {self.timeout:g} s (timeout); the server is busy or the "
                "critique is long: raise timeout, or lower max_new_tokens / max_concurrency"
            ) from None
        except ssl.SSLCertVerificationError as e:
            raise RemoteCriticError(
                f"{self._where()}: the server's TLS certificate is not trusted ({e.verify_message or e}); check "
                "the host name in base_url, or install the certificate's authority on this machine"
            ) from None
        except (http.client.HTTPException, ConnectionError, OSError) as e:
            if cancel is not None and cancel.is_set():
                raise _Cancelled() from None
            if self._https and not connected:  # the TLS handshake failed: not a crash, a wrong scheme (usually)
                raise RemoteCriticError(
                    f"{self._where()}: the TLS (https) handshake failed ({type(e).__name__}: {e}); base_url starts "
                    "with https://, but the server may speak plain http (vLLM does unless started with "
                    "--ssl-certfile): try http:// in base_url"
                ) from None
            raise _Dropped(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__) from None
        finally:
            if conns is not None:
                with conns_lock:
                    conns.discard(conn)
            conn.close()

    def _json(self, body: bytes) -> Any:
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise RemoteCriticError(
                f"{self._where()} answered something that is not JSON ({snippet(body)}); base_url must point at "
                "an OpenAI-compatible API (usually ending in /v1), not a web page or proxy login"
            ) from None

    def _http_error(self, status: int, headers, body: bytes, path: str) -> RemoteCriticError:
        said = server_message(body)
        where = self._where()
        if status in (401, 403):
            fix = (f"check the key in the environment variable {self.api_key_env}" if self.api_key_env else
                   "the server wants a key: put it in an environment variable and give that variable's name "
                   "as api_key_env")
            return RemoteCriticError(f"{where} refused the request (HTTP {status}: {said}); {fix}")
        if status == 404:
            served = self._served_models() if path != "/models" else None
            if served is not None and self.model not in served:
                return RemoteCriticError(
                    f"{where}: the server does not serve model {self.model!r} (HTTP 404); it serves: "
                    f"{', '.join(served) or 'nothing'}. Set model to one of those (vLLM: --served-model-name)"
                )
            return RemoteCriticError(
                f"{where}: HTTP 404 for {self.base_url}{path} ({said}); check base_url (the API root, usually "
                "ending in /v1)"
            )
        if status == 400:
            return RemoteCriticError(
                f"{where} rejected the request (HTTP 400): {said}. If the context is too long, lower "
                "max_new_tokens or max_pixels, or start vLLM with a larger --max-model-len"
            )
        if status == 429:
            return RemoteCriticError(f"{where} is rate limiting (HTTP 429: {said})")
        if status >= 500 and status != NOT_IMPLEMENTED:
            return RemoteCriticError(f"{where} failed with HTTP {status}: {said}; see the server's log")
        if 300 <= status < 400:
            to = headers.get("Location") if headers is not None else None
            return RemoteCriticError(
                f"{where}: {self.base_url}{path} redirects (HTTP {status}) to {to or 'another address'}; put the "
                "address the server really answers at in base_url (e.g. https:// instead of http://)"
            )
        return RemoteCriticError(
            f"{where} answered HTTP {status} to {path} ({said}); this does not look like an OpenAI-compatible API: "
            "check base_url, which must be the API root of the server (usually ending in /v1, e.g. "
            "http://127.0.0.1:8000/v1), not a web page or another service"
        )

    def _served_models(self) -> list[str] | None:
        try:
            return self.list_models()
        except RemoteCriticError:
            return None
        except _Dropped:
            return None


class _Dropped(Exception):
    """Internal: the connection broke mid-exchange (retryable)."""


def _shutdown(conn: http.client.HTTPConnection) -> None:
    # Shutting the socket down wakes a worker blocked in recv() at once.
    sock = getattr(conn, "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
