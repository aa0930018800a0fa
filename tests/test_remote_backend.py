"""The remote critic against a real HTTP server (tests/chat_server.py) on 127.0.0.1: message format,
key handling, every failure message, retries, ordering under concurrency and cancel."""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from chat_server import ChatServer, default_answer  # noqa: E402

from rationalrewards.models.backends.base import Callbacks, GenerationSettings
from rationalrewards.models.backends.remote import RETRY_AFTER_CAP, RemoteCritic, normalize_base_url
from rationalrewards.models.backends.remote_wire import retry_after
from rationalrewards.models.errors import CritiqueInterrupted, RemoteCriticError
from rationalrewards.models.format.critique import Comparison, Critique

KEY = "sk-test-4f9a-secret-value"


@pytest.fixture
def server():
    """A started chat server; stopped (and hanging handlers released) after the test."""
    with ChatServer() as srv:
        yield srv


def critic_for(srv: ChatServer, **kw) -> RemoteCritic:
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 10.0)
    return RemoteCritic(srv.url, srv.model, **kw)


def img(w: int = 32, h: int = 24, color=(200, 30, 30)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


# -- URL rule -------------------------------------------------------------------------------------
@pytest.mark.parametrize("given,expected", [
    ("http://h:8000", "http://h:8000/v1"),
    ("http://h:8000/", "http://h:8000/v1"),
    ("http://h:8000/v1/", "http://h:8000/v1"),
    ("h:8000", "http://h:8000/v1"),
    ("http://h:8000/v1/chat/completions", "http://h:8000/v1"),
    ("https://openrouter.ai/api/v1", "https://openrouter.ai/api/v1"),
    ("http://h/api", "http://h/api/v1"),
])
def test_base_url_rule(given, expected):
    assert normalize_base_url(given) == expected


def test_base_url_without_v1_reaches_the_server(server):
    c = RemoteCritic(server.root_url + "/", server.model)
    assert c.critique(img(), "a red square")[0].overall is not None


@pytest.mark.parametrize("bad", ["", "   ", "ftp://h/v1"])
def test_bad_base_url_is_rejected(bad):
    with pytest.raises(RemoteCriticError, match="base_url"):
        RemoteCritic(bad, "m")


# -- answers become Critique / Comparison --------------------------------------------------------
def test_critique_parses_scores_and_refinement(server):
    [c] = critic_for(server).critique(img(), "a red square on white")
    assert isinstance(c, Critique) and c.kind == "t2i"
    assert c.aspects["text_faithfulness"].score == 3.5
    assert c.aspects["physical_quality"].score == 3.0
    assert c.aspects["text_rendering"].not_applicable
    assert c.overall == pytest.approx((3.25 - 1) / 3)
    assert c.refined_request == "a red square on white, sharp focus, natural lighting"
    assert c.problems == ()


def test_edit_critique_sends_source_then_edited(server):
    [c] = critic_for(server).critique(img(40, 30), "make it blue", sources=img(50, 20))
    assert c.kind == "edit" and c.aspects["image_faithfulness"].score == 3.0
    assert [im.size for im in server.chat_requests[0].images()] == [(50, 20), (40, 30)]


def test_compare_works_for_t2i_and_edit(server):
    critic = critic_for(server)
    [cmp] = critic.compare(img(20, 20), img(30, 20), "a cat")
    assert isinstance(cmp, Comparison) and cmp.winner == "A" and cmp.problems == ()
    assert [im.size for im in server.chat_requests[-1].images()] == [(20, 20), (30, 20)]
    [cmp] = critic.compare(img(20, 20), img(30, 20), "add a hat", sources=img(40, 40))
    assert cmp.kind == "pairwise-edit" and cmp.aspects["image_faithfulness"].score_a == 3.5
    assert [im.size for im in server.chat_requests[-1].images()] == [(40, 40), (20, 20), (30, 20)]


# -- the request on the wire ---------------------------------------------------------------------
def test_message_format_and_settings(server):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    settings = GenerationSettings(max_new_tokens=777, temperature=0.7, top_p=0.9, seed=1234)
    critic_for(server).critique(Image.fromarray(pixels), "a noisy picture", settings=settings)
    body = server.chat_requests[0].body
    assert body["model"] == server.model
    assert (body["max_tokens"], body["temperature"], body["top_p"], body["seed"]) == (777, 0.7, 0.9, 1234)
    system, user = body["messages"]
    assert system["role"] == "system" and isinstance(system["content"], str)
    kinds = [p["type"] for p in user["content"]]
    assert kinds == ["text", "image_url", "text"]
    url = user["content"][1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    [decoded] = server.chat_requests[0].images()
    assert decoded.format == "PNG" and decoded.size == (40, 24)
    assert np.array_equal(np.asarray(decoded.convert("RGB")), pixels)  # lossless
    assert "a noisy picture" in server.chat_requests[0].text()


def test_greedy_sends_temperature_zero(server):
    critic_for(server).critique(img(), "x", settings=GenerationSettings(greedy=True))
    assert server.chat_requests[0].body["temperature"] == 0.0


def test_pixel_budget_applies_before_sending(server):
    critic_for(server).critique(img(400, 200), "x", settings=GenerationSettings(max_pixels=100 * 100))
    w, h = server.chat_requests[0].images()[0].size
    assert w * h <= 100 * 100 and w > h


def test_text_only_chat_is_sent_as_plain_strings(server):
    server.answer = "a better prompt"
    g = critic_for(server).generate_text([{"role": "user", "content": [{"type": "text", "text": "rewrite: cat"}]}])
    assert g.text == "a better prompt"
    assert server.chat_requests[0].body["messages"] == [{"role": "user", "content": "rewrite: cat"}]


def test_cache_avoids_a_second_request(server):
    critic = critic_for(server)
    critic.critique(img(), "a red square")
    critic.critique(img(), "a red square")
    assert len(server.chat_requests) == 1


def test_list_models(server):
    server.models = ["rationalrewards", "other"]
    assert critic_for(server).list_models() == ["rationalrewards", "other"]


# -- the API key ---------------------------------------------------------------------------------
def test_key_from_env_is_sent_as_bearer_and_kept_nowhere(monkeypatch):
    monkeypatch.setenv("RR_TEST_KEY", KEY)
    with ChatServer(api_key=KEY) as srv:
        critic = critic_for(srv, api_key_env="RR_TEST_KEY")
        critic.critique(img(), "a red square")
        assert srv.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"
        for text in (repr(critic), critic.identity, str(vars(critic))):
            assert KEY not in text
        assert "RR_TEST_KEY" in repr(critic)


def test_wrong_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("RR_TEST_KEY", "wrong")
    with ChatServer(api_key=KEY) as srv:
        with pytest.raises(RemoteCriticError, match=r"401.*RR_TEST_KEY") as e:
            critic_for(srv, api_key_env="RR_TEST_KEY").critique(img(), "x")
        assert srv.url in str(e.value) and srv.model in str(e.value)
        with pytest.raises(RemoteCriticError, match="api_key_env"):
            critic_for(srv).critique(img(), "x")  # no key configured at all


def test_unset_key_variable_fails_before_sending(server, monkeypatch):
    monkeypatch.delenv("RR_UNSET_KEY", raising=False)
    with pytest.raises(RemoteCriticError, match="RR_UNSET_KEY.*not set"):
        critic_for(server, api_key_env="RR_UNSET_KEY").critique(img(), "x")
    assert server.chat_requests == []


def test_a_pasted_key_is_refused_without_echoing_it():
    with pytest.raises(RemoteCriticError, match="NAME of an environment variable") as e:
        RemoteCritic("http://127.0.0.1:1/v1", "m", api_key_env=KEY)
    assert KEY not in str(e.value)


# -- failures: one clear message each, naming URL and model --------------------------------------
def _assert_names_server(err: BaseException, url: str, model: str) -> None:
    assert url in str(err) and model in str(err)


def test_connection_refused():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens on this port now
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(RemoteCriticError, match="connection refused") as e:
        RemoteCritic(url, "m", backoff=0.01).critique(img(), "x")
    _assert_names_server(e.value, url, "m")


def test_unknown_host():
    with pytest.raises(RemoteCriticError, match="unknown host") as e:
        RemoteCritic("http://no-such-host.invalid:8000", "m", retries=0).critique(img(), "x")
    _assert_names_server(e.value, "http://no-such-host.invalid:8000/v1", "m")


def test_unknown_model_lists_served_models(server):
    server.models = ["Qwen3-VL-8B-Instruct", "rr-edit"]
    with pytest.raises(RemoteCriticError, match=r"404.*Qwen3-VL-8B-Instruct, rr-edit") as e:
        RemoteCritic(server.url, "rationalrewards").critique(img(), "x")
    _assert_names_server(e.value, server.url, "rationalrewards")


def test_wrong_path_404_points_at_base_url(server):
    with pytest.raises(RemoteCriticError, match="check base_url"):
        RemoteCritic(server.root_url + "/api/v1", server.model).critique(img(), "x")


def test_400_shows_the_servers_message(server):
    msg = "This model's maximum context length is 40960 tokens. However, you requested 52000 tokens."
    server.inject(400, message=msg)
    with pytest.raises(RemoteCriticError, match="HTTP 400") as e:
        critic_for(server).critique(img(), "x")
    assert msg in str(e.value) and "max-model-len" in str(e.value)
    _assert_names_server(e.value, server.url, server.model)
    assert len(server.chat_requests) == 1  # a 400 is not retried


def test_timeout(server):
    server.latency = 2.0
    with pytest.raises(RemoteCriticError, match=r"timeout") as e:
        critic_for(server, timeout=0.3).critique(img(), "x")
    _assert_names_server(e.value, server.url, server.model)


@pytest.mark.parametrize("fault,match", [
    ("not_json", "not JSON"),
    ("no_choices", "without 'choices'"),
    ("empty", "empty message"),
])
def test_malformed_answers(server, fault, match):
    server.inject(fault)
    with pytest.raises(RemoteCriticError, match=match) as e:
        critic_for(server).critique(img(), "x")
    _assert_names_server(e.value, server.url, server.model)


def test_length_marks_the_critique_cut_off(server):
    [c] = critic_for(server).critique(img(), "x")
    server.inject("length")
    [cut] = critic_for(server).critique(img(), "x")  # a fresh critic: no cache hit
    assert not any(p.startswith("cut_off") for p in c.problems)
    assert any(p.startswith("cut_off") for p in cut.problems)


# -- retries -------------------------------------------------------------------------------------
def test_429_then_success(server):
    server.inject(429, message="rate limited")
    [c] = critic_for(server).critique(img(), "x")
    assert c.overall is not None and len(server.chat_requests) == 2


def test_retry_after_is_respected(server):
    server.inject(503, retry_after=0.3)
    critic_for(server, backoff=0.0).critique(img(), "x")
    first, second = server.chat_requests
    assert second.received_at - first.received_at >= 0.25


def test_retry_after_is_capped():
    assert retry_after({"Retry-After": "86400"}, 1.0) == RETRY_AFTER_CAP
    assert retry_after({"Retry-After": "soon"}, 1.5) == 1.5
    assert retry_after({}, 0.7) == 0.7


def test_5xx_exhausts_retries_with_a_clear_error(server):
    server.inject(503, times=3, message="engine overloaded")
    with pytest.raises(RemoteCriticError, match=r"503.*engine overloaded.*gave up after 3 tries") as e:
        critic_for(server, retries=2).critique(img(), "x")
    _assert_names_server(e.value, server.url, server.model)
    assert len(server.chat_requests) == 3


def test_dropped_connection_is_retried(server):
    server.inject("drop")
    [c] = critic_for(server).critique(img(), "x")
    assert c.overall is not None and len(server.chat_requests) == 2


def test_dropped_connections_exhaust(server):
    server.inject("drop", times=2)
    with pytest.raises(RemoteCriticError, match="dropped the connection 2 time"):
        critic_for(server, retries=1).critique(img(), "x")


# -- concurrency and order -----------------------------------------------------------------------
def test_batch_order_under_random_latency():
    def answer(req):
        # The score encodes which image the server saw: red channel 0,20,...
        red = req.images()[0].getpixel((0, 0))[0]
        return default_answer(req).replace("## Score: 3.5", f"## Score: {1 + red / 100:.1f}", 1)

    n = 12
    images = [img(color=(20 * i, 0, 0)) for i in range(n)]
    items, texts = [], {}
    cb = Callbacks(on_item=lambda d, t: items.append((d, t)), on_text=lambda i, t: texts.setdefault(i, t))
    with ChatServer(latency=0.01, jitter=0.15, answer=answer, seed=3) as srv:
        result = critic_for(srv, max_concurrency=4).critique(images, "a red square", callbacks=cb)
        assert 1 < srv.max_in_flight <= 4
    expected = [min(4.0, round(1 + 0.2 * i, 1)) for i in range(n)]
    assert [c.aspects["text_faithfulness"].score for c in result] == pytest.approx(expected)
    assert items == [(k, n) for k in range(1, n + 1)]
    assert sorted(texts) == list(range(n))
    assert "Score: 1.2" in texts[1]


def test_an_error_in_one_item_does_not_wait_for_the_others(server):
    server.hang_seconds = 10.0
    server.inject(400, message="bad image")
    server.inject("hang", times=2)
    t0 = time.perf_counter()
    with pytest.raises(RemoteCriticError, match="bad image"):
        critic_for(server, max_concurrency=3).critique([img(), img(w=33), img(w=34)], "x")
    assert time.perf_counter() - t0 < 5.0  # well before the 10 s hang ends


# -- cancel --------------------------------------------------------------------------------------
def test_cancel_abandons_a_hanging_server(server):
    server.hang_seconds = 10.0
    server.inject("hang", times=4)
    start = time.perf_counter()
    cb = Callbacks(is_interrupted=lambda: time.perf_counter() - start > 0.3)
    with pytest.raises(CritiqueInterrupted):
        critic_for(server, max_concurrency=4).critique([img(w=30 + i) for i in range(4)], "x", callbacks=cb)
    assert time.perf_counter() - start < 5.0  # behaviour bound: the server would hang for 10 s
    deadline = time.perf_counter() + 3.0  # the abandoned workers end soon (their sockets were shut)
    while _client_workers() and time.perf_counter() < deadline:
        time.sleep(0.05)
    assert _client_workers() == []


def _client_workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rr-remote-")]


def test_cancel_during_backoff(server):
    server.inject(503, times=5, retry_after=10)
    start = time.perf_counter()
    cb = Callbacks(is_interrupted=lambda: time.perf_counter() - start > 0.2)
    with pytest.raises(CritiqueInterrupted):
        critic_for(server).critique(img(), "x", callbacks=cb)
    assert time.perf_counter() - start < 5.0
    assert len(server.chat_requests) == 1


def test_interrupted_before_start_sends_nothing(server):
    with pytest.raises(CritiqueInterrupted):
        critic_for(server).critique(img(), "x", callbacks=Callbacks(is_interrupted=lambda: True))
    assert server.chat_requests == []


def test_critic_still_works_after_a_cancel(server):
    server.inject("hang")
    start = time.perf_counter()
    critic = critic_for(server)
    with pytest.raises(CritiqueInterrupted):
        critic.critique(img(), "x", callbacks=Callbacks(is_interrupted=lambda: time.perf_counter() - start > 0.2))
    assert critic.critique(img(), "x")[0].overall is not None
