"""Compiled decoding (speed="compiled") on the CPU with the tiny Qwen3-VL, against the standard path.

torch.compile runs here through inductor's C++ backend (a C++ compiler is needed, as on CI). The
first compile of a shape takes tens of seconds on two cores, so these tests are marked slow; they
share two compiled shapes (batch 1 and 4, cache 2048) through the process-wide step registry.
"""
from __future__ import annotations

import logging
import time

import pytest
import torch

from rationalrewards.models.backends import compiled as compiled_mod
from rationalrewards.models.backends import local_options
from rationalrewards.models.backends.base import Callbacks, GenerationSettings
from rationalrewards.models.backends.compiled import graphs_compiled
from rationalrewards.models.backends.local import LocalCritic
from rationalrewards.models.errors import CritiqueInterrupted

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(local_options.cpp_compiler() is None, reason="torch.compile on the CPU needs g++")]

GREEDY = GenerationSettings(max_new_tokens=24, greedy=True)


@pytest.fixture(scope="module")
def compiled_critic(tiny_critic_dir):
    c = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu", speed="compiled")
    assert c.speed == "compiled" and c.options.speed_note is None
    yield c
    c.close()


@pytest.fixture
def pair(compiled_critic, tiny_critic):
    """(compiled, standard) critics with empty caches and default knobs."""
    for c in (compiled_critic, tiny_critic):
        c.cache.clear()
        c.batch_size, c.generate_kwargs = 4, {}
    yield compiled_critic, tiny_critic
    for c in (compiled_critic, tiny_critic):
        c.batch_size, c.generate_kwargs = 4, {}


def pics(*sides: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, s, s + 8 * i, 3, generator=g) for i, s in enumerate(sides)]


def raws(results) -> list[str]:
    return [r.raw for r in results]


# -- the same answers ---------------------------------------------------------------------------------
def test_greedy_equals_standard_single_and_padded_batch(pair):
    fast, std = pair
    images = pics(64, 256, 700)
    prompts = ["a cat", "a red cube on a wooden table, soft window light", "OPEN sign"]
    fast.batch_size = std.batch_size = 3  # one batch of 3, padded to the bucket of 4
    assert raws(fast.critique(images, prompts, settings=GREEDY)) == raws(std.critique(images, prompts, settings=GREEDY))
    fast.batch_size = 1
    fast.cache.clear()
    single = raws(fast.critique(images, prompts, settings=GREEDY))
    assert single == raws(std.critique(images, prompts, settings=GREEDY))
    assert len(set(single)) == 3  # the inputs matter
    assert {(1, 2048), (4, 2048)} <= set(fast.decoder.shapes)
    assert fast.decoder.recompiles == 0 and fast.decoder.broken is None


def test_sampling_is_seeded_and_follows_the_standard_path(pair):
    fast, std = pair
    s = GenerationSettings(max_new_tokens=24, temperature=0.7, seed=5)
    a = raws(fast.critique(pics(64), "a cat", settings=s))
    fast.cache.clear()
    assert raws(fast.critique(pics(64), "a cat", settings=s)) == a
    assert raws(std.critique(pics(64), "a cat", settings=s)) == a  # same processors, same random draws
    fast.cache.clear()
    assert raws(fast.critique(pics(64), "a cat", settings=GenerationSettings(max_new_tokens=24, temperature=0.7,
                                                                             seed=6))) != a


def test_min_new_tokens_and_truncation(pair):
    fast, _ = pair
    fast.generate_kwargs = {"min_new_tokens": 12}  # no EOS before the limit: exactly 12 tokens
    gen = fast._generate([[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]],
                         GenerationSettings(max_new_tokens=12, greedy=True), Callbacks())
    assert gen[0].truncated and gen[0].n_tokens == 12


def test_settings_only_standard_honours_decode_the_standard_way(pair, caplog):
    fast, std = pair
    fast.generate_kwargs = std.generate_kwargs = {"no_repeat_ngram_size": 2}
    statuses = []
    with caplog.at_level(logging.WARNING, logger="rationalrewards"):
        out = fast.critique(pics(64), "a dog", settings=GREEDY,
                            callbacks=Callbacks(on_status=lambda t, f: statuses.append(t)))
    assert raws(out) == raws(std.critique(pics(64), "a dog", settings=GREEDY))
    note = "compiled decoding does not apply no_repeat_ngram_size=2"
    assert any(note in t for t in statuses) and note in caplog.text
    assert fast.speed == "compiled"  # only those critiques went the standard way


# -- no recompiles --------------------------------------------------------------------------------------
def test_no_recompiles_over_20_mixed_critiques(pair):
    """Prompts of any length, images of 256-2048 px and batches of 1, 3 and 4 reuse two compiled shapes."""
    fast, std = pair
    fast.critique(pics(256), "warm", settings=GREEDY)  # warm-up: batch bucket 1 ...
    fast.critique(pics(256, 256, 256, 256), "warm", settings=GREEDY)  # ... and 4
    before, compiled_before = graphs_compiled(), dict(fast.decoder.shapes)
    sides = [256, 512, 1024, 2048, 300, 777]
    words = ["a cat", "a red cube on a wooden table", "OPEN sign over a shop door at night, neon",
             "a dog", "two people shaking hands in a sunny park"]
    n_critiques, k = 0, 0
    for batch in [1, 3, 4, 1, 4, 3, 1, 3]:
        fast.batch_size = batch
        images = [pics(sides[(k + j) % len(sides)], seed=k + j)[0] for j in range(batch)]
        prompts = [words[(k + j) % len(words)] for j in range(batch)]
        out = fast.critique(images, prompts, settings=GenerationSettings(max_new_tokens=16, greedy=True))
        assert len(out) == batch
        n_critiques += batch
        k += batch
    assert n_critiques == 20
    assert graphs_compiled() == before, "a critique compiled a new graph"
    assert fast.decoder.recompiles == 0 and fast.decoder.shapes == compiled_before


# -- callbacks: cancel, streaming, progress, cache -----------------------------------------------------
def test_cancel_stops_within_a_token(pair):
    fast, _ = pair
    polls = []

    def interrupted():
        polls.append(1)
        return len(polls) > 5  # base polls once before generating, then once per token

    seen = []
    with pytest.raises(CritiqueInterrupted, match="after 5 of 200 tokens"):
        fast.critique(pics(64, 64), "a cat", settings=GenerationSettings(max_new_tokens=200, greedy=True),
                      callbacks=Callbacks(is_interrupted=interrupted, on_tokens=lambda d, t: seen.append(d)))
    assert max(seen) == 5 and len(fast.cache) == 0
    assert len(fast.critique(pics(64, 64), "a cat", settings=GREEDY)) == 2  # still usable


def test_streaming_and_progress_match_the_standard_path(pair):
    fast, std = pair
    logs = {}
    for name, critic in (("fast", fast), ("std", std)):
        tokens, texts, items = [], {}, []
        cb = Callbacks(on_tokens=lambda d, t: tokens.append((d, t)), on_text=lambda i, t: texts.__setitem__(i, t),
                       on_item=lambda d, t: items.append((d, t)))
        critic.batch_size = 2
        out = critic.critique(pics(64, 200, 64), ["a", "b", "c"], settings=GREEDY, callbacks=cb)
        assert [texts.get(i, "") for i in range(3)] == raws(out)
        logs[name] = (tokens, items, raws(out))
    assert logs["fast"] == logs["std"]


def test_results_cache_unchanged(pair, monkeypatch):
    fast, _ = pair
    first = fast.critique(pics(64), "a cat", settings=GREEDY)
    calls = []
    monkeypatch.setattr(fast.decoder, "generate", lambda *a, **k: calls.append(1))
    assert fast.critique(pics(64), "a cat", settings=GREEDY) == first and not calls


# -- weights moving ---------------------------------------------------------------------------------------
def test_moved_or_replaced_weights_give_the_same_answer_without_recompiling(pair):
    fast, _ = pair
    before = raws(fast.critique(pics(64), "a moving model", settings=GREEDY))
    graphs = graphs_compiled()
    for p in fast.model.parameters():  # new storage at new addresses, as after a move to the GPU and back
        p.data = p.data.clone()
    fast.cache.clear()
    assert raws(fast.critique(pics(64), "a moving model", settings=GREEDY)) == before
    for name, p in list(fast.model.named_parameters()):  # new Parameter objects, as ComfyUI's set_attr_param
        owner, attr = name.rsplit(".", 1)
        setattr(fast.model.get_submodule(owner), attr, torch.nn.Parameter(p.detach().clone(), requires_grad=False))
    fast.cache.clear()
    assert raws(fast.critique(pics(64), "a moving model", settings=GREEDY)) == before
    assert graphs_compiled() == graphs and fast.decoder.recompiles == 0


def test_critics_of_one_architecture_share_compiled_shapes(pair, tiny_critic_dir):
    """A second critic (say the Edit model beside the T2I one) reuses the shapes the first compiled."""
    fast, _ = pair
    fast.critique(pics(64), "first critic", settings=GREEDY)
    graphs = graphs_compiled()
    other = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu", speed="compiled", cache_size=0)
    try:
        assert raws(other.critique(pics(64), "second critic", settings=GREEDY)) == raws(
            fast.critique(pics(64), "second critic", settings=GREEDY))
        assert other.decoder.shapes == {(1, 2048): 0.0} and graphs_compiled() == graphs
    finally:
        other.close()


def test_comfyui_evicts_and_reloads_the_critic(comfy, standin_log, tiny_critic_dir, tiny_critic):
    """Critique, let ComfyUI unload everything (for a diffusion model), critique again: same answer, the
    model loaded again through load_models_gpu, no graph compiled."""
    from rationalrewards.nodes import host

    import comfy.model_management as mm

    placement = host.ComfyPlacement(keep_resident=True)
    c = LocalCritic.from_pretrained(tiny_critic_dir, memory=placement, speed="compiled", cache_size=0)
    try:
        first = raws(c.critique(pics(64), "a cat", settings=GREEDY))
        graphs = graphs_compiled()
        placement._unload()  # ComfyUI frees the critic for a diffusion model (model_unload -> offload device)
        mm.unload_all_models()
        assert ("detach", {}) in standin_log.calls
        for p in c.model.parameters():  # on a GPU the round trip lands the weights at new addresses
            p.data = p.data.clone()
        again = raws(c.critique(pics(64), "a cat", settings=GREEDY))
        loads = [d for name, d in standin_log.calls if name == "load_models_gpu"]
        assert again == first and len(loads) == 2
        assert graphs_compiled() == graphs and c.decoder.recompiles == 0
        assert first == raws(tiny_critic.critique(pics(64), "a cat", settings=GREEDY))
    finally:
        c.close()


def cache_ptrs_per_batch(critic, monkeypatch) -> list[int]:
    """The address of the static cache each batch decodes with (first layer's keys)."""
    seen = []
    real = critic.decoder._decode

    def watched(seqs, unfinished, next_pos, keys, *rest):
        seen.append(keys[0].data_ptr())
        return real(seqs, unfinished, next_pos, keys, *rest)

    monkeypatch.setattr(critic.decoder, "_decode", watched)
    return seen


def test_static_caches_are_kept_at_the_same_addresses_per_shape(pair, monkeypatch):
    """CUDA graphs read the cache at fixed addresses: batches and calls of one shape reuse one cache (cleared:
    the same answers), so a call of 3 images at batch size 2 (shapes 2 and 1) keeps one cache per shape."""
    fast, std = pair
    fast.decoder.drop_cache()
    ptrs = cache_ptrs_per_batch(fast, monkeypatch)
    fast.batch_size = 2
    images, prompts = pics(64, 96, 64, 80, 72, seed=6), ["a", "b", "c", "d", "e"]
    assert raws(fast.critique(images, prompts, settings=GREEDY)) == raws(std.critique(images, prompts, settings=GREEDY))
    assert fast.decoder.kept_caches() == [(2, 2048, "cpu"), (1, 2048, "cpu")]
    assert len(ptrs) == 3 and ptrs[0] == ptrs[1] != ptrs[2]
    fast.cache.clear()
    assert raws(fast.critique(images[::-1], prompts, settings=GREEDY)) == raws(std.critique(images[::-1], prompts,
                                                                                            settings=GREEDY))
    assert ptrs[3:] == ptrs[:3]  # the next call: the same caches at the same addresses
    assert fast.decoder.kept_caches() == [(2, 2048, "cpu"), (1, 2048, "cpu")]


def test_kept_caches_are_bounded_and_make_way_for_a_batch(pair, monkeypatch):
    """Past a call only the smallest caches up to KEEP_CACHE_MAX stay; when memory is short for a batch, the
    caches of other shapes are freed before the batch is split."""
    fast, std = pair
    fast.decoder.drop_cache()
    one = fast.decoder.kv_bytes(1, 2048)
    monkeypatch.setattr(compiled_mod, "KEEP_CACHE_MAX", one)
    ptrs = cache_ptrs_per_batch(fast, monkeypatch)
    fast.batch_size = 2
    images = pics(64, 64, 64, seed=7)
    assert raws(fast.critique(images, ["a", "b", "c"], settings=GREEDY)) == raws(std.critique(images, ["a", "b", "c"],
                                                                                              settings=GREEDY))
    assert fast.decoder.kept_caches() == [(1, 2048, "cpu")]  # the batch-2 cache went when the call ended
    monkeypatch.setattr(compiled_mod, "KEEP_CACHE_MAX", 0)
    fast.decoder.end_call()
    assert fast.decoder.kept_caches() == []

    fast.batch_size = 1
    fast.critique(images[:1], "another prompt", settings=GREEDY)
    assert fast.decoder.kept_caches() == []  # KEEP_CACHE_MAX 0: nothing outlives a call

    monkeypatch.setattr(compiled_mod, "KEEP_CACHE_MAX", 2 ** 40)
    fast.critique(images[1:2], "new prompt", settings=GREEDY)
    assert fast.decoder.kept_caches() == [(1, 2048, "cpu")]
    need_two = fast.decoder.need_bytes(2, 1300, GREEDY.max_new_tokens)
    freed = []
    monkeypatch.setattr(fast.decoder, "free_bytes", lambda dev: need_two if not fast.decoder.kept_caches() else
                        (freed.append(1) or 0))
    fast.batch_size = 2
    assert raws(fast.critique(images[:2], ["x", "y"], settings=GREEDY)) == raws(std.critique(images[:2], ["x", "y"],
                                                                                             settings=GREEDY))
    assert freed and len(ptrs) == 5  # the batch-1 cache was freed, then the pair decoded together (one batch)
    assert fast.decoder.kept_caches() == [(2, 2048, "cpu")]


def test_comfyui_unloading_the_critic_frees_its_cache(comfy, standin_log, tiny_critic_dir, tiny_critic, caplog):
    """ComfyUI unloads the critic (free_memory for a diffusion model, /free, keep_resident off): the ON_DETACH
    callback frees the decoder's cache with the weights; the next critique is the same and compiles nothing."""
    from rationalrewards.nodes import host

    import comfy.model_management as mm

    placement = host.ComfyPlacement(keep_resident=True)
    c = LocalCritic.from_pretrained(tiny_critic_dir, memory=placement, speed="compiled", cache_size=0)
    ptrs = cache_ptrs_per_batch(c, pytest.MonkeyPatch())
    freed = "compiled decoder's cache is freed too"
    try:
        with caplog.at_level(logging.INFO, logger="rationalrewards"):
            first = raws(c.critique(pics(64), "a cat", settings=GREEDY))
            assert raws(c.critique(pics(64), "a dog", settings=GREEDY))  # the critic stays loaded: ComfyUI's
        assert ("detach", {"unpatch_all": False}) in standin_log.calls  # load_models_gpu re-lists it (detach
        assert ptrs[0] == ptrs[1] and freed not in caplog.text  # without unpatching): the cache stays
        assert c.decoder.kept_caches() == [(1, 2048, "cpu")]
        graphs = graphs_compiled()
        with caplog.at_level(logging.INFO, logger="rationalrewards"):
            mm.unload_all_models()  # model_unload -> ModelPatcher.detach -> ON_DETACH
        assert ("detach", {}) in standin_log.calls and c.decoder.kept_caches() == []
        assert caplog.text.count(freed) == 1
        assert raws(c.critique(pics(64), "a cat", settings=GREEDY)) == first
        assert graphs_compiled() == graphs and c.decoder.kept_caches() == [(1, 2048, "cpu")]
        placement.patcher.partially_unload(torch.device("cpu"), 1000)  # ComfyUI makes room for another model
        assert c.decoder.kept_caches() == []  # by moving part of the critic out: its cache goes first
    finally:
        c.close()
    assert c.decoder is None and placement.on_unload is None

    placement = host.ComfyPlacement(keep_resident=False)  # unloaded after every call: the cache goes too
    c = LocalCritic.from_pretrained(tiny_critic_dir, memory=placement, speed="compiled", cache_size=0)
    try:
        assert raws(c.critique(pics(64), "a cat", settings=GREEDY)) == first
        assert c.decoder.kept_caches() == []
    finally:
        c.close()


def test_comfyui_callbacks_do_not_keep_a_dropped_critic_alive(comfy, standin_log, tiny_critic_dir):
    """ComfyUI's patcher keeps our ON_DETACH callback; a critic the Model Loader drops (without close) must
    still be freed by reference counting, not wait for the garbage collector with its weights listed."""
    import gc
    import weakref

    from rationalrewards.nodes import host

    import comfy.model_management as mm

    c = LocalCritic.from_pretrained(tiny_critic_dir, memory=host.ComfyPlacement(keep_resident=True), speed="compiled",
                                    cache_size=0)
    c.critique(pics(64), "a cat", settings=GREEDY)
    patcher = c.memory.patcher
    refs = [weakref.ref(c), weakref.ref(c.memory), weakref.ref(c.decoder)]
    gc.collect()
    gc.disable()
    try:
        del c
        assert [r() is None for r in refs] == [True, True, True]
        patcher.detach(True)  # ComfyUI unloading the orphaned patcher later: the callback finds nothing to do
    finally:
        gc.enable()
        mm.current_loaded_models.clear()


# -- memory ---------------------------------------------------------------------------------------------
def test_a_batch_that_does_not_fit_is_split(pair, monkeypatch):
    fast, std = pair
    images, prompts = pics(64, 64, 64, seed=3), ["x", "y", "z"]
    need_one = fast.decoder.need_bytes(1, 1300, GREEDY.max_new_tokens)
    monkeypatch.setattr(fast.decoder, "free_bytes", lambda dev: need_one)
    sizes = []
    real = fast.decoder.generate
    monkeypatch.setattr(fast.decoder, "generate", lambda inputs, *a, **k: sizes.append(len(inputs["input_ids"]))
                        or real(inputs, *a, **k))
    assert raws(fast.critique(images, prompts, settings=GREEDY)) == raws(std.critique(images, prompts, settings=GREEDY))
    assert sizes == [1, 1, 1]


def test_one_critique_that_does_not_fit_decodes_standard_with_a_note(pair, monkeypatch):
    fast, std = pair
    monkeypatch.setattr(fast.decoder, "free_bytes", lambda dev: 1000)
    notes = []
    out = fast.critique(pics(64), "tiny memory", settings=GREEDY, callbacks=Callbacks(on_status=lambda t, f: notes.append(t)))
    assert raws(out) == raws(std.critique(pics(64), "tiny memory", settings=GREEDY))
    assert any("does not fit" in n and "standard speed" in n for n in notes)


def test_prefill_cache_is_released_layer_by_layer_while_copied(pair, monkeypatch):
    """The prefill's cache and the static cache never sit in memory whole side by side: when a layer is
    copied, every earlier prefill layer is already freed (the peak is one layer above the larger cache)."""
    import gc
    import weakref

    fast, std = pair
    real = compiled_mod.take_prefill_kv
    alive_at_copy = []

    def watched(out):
        refs = []
        for k, v in real(out):
            gc.collect()
            alive_at_copy.append(sum(r() is not None for r in refs))
            refs += [weakref.ref(k), weakref.ref(v)]
            yield k, v
            del k, v

    monkeypatch.setattr(compiled_mod, "take_prefill_kv", watched)
    images = pics(64, 96, seed=5)
    assert raws(fast.critique(images, ["p", "q"], settings=GREEDY)) == raws(std.critique(images, ["p", "q"],
                                                                                         settings=GREEDY))
    assert len(alive_at_copy) == len(fast.decoder.layers) and set(alive_at_copy) == {0}


def test_own_caches_go_before_comfyui_is_asked_to_unload_models(pair, monkeypatch):
    """Short of memory for a new shape, the decoder first frees its caches of other shapes (a re-record to make
    them again) and asks ComfyUI to unload other models (a reload of seconds) only if that is not enough."""
    fast, _ = pair
    fast.decoder.drop_cache()
    fast.batch_size = 1
    fast.critique(pics(64, seed=11), "kept", settings=GREEDY)
    assert fast.decoder.kept_caches() == [(1, 2048, "cpu")]
    need_two = fast.decoder.need_bytes(2, 1300, GREEDY.max_new_tokens)
    asked = []
    monkeypatch.setattr(fast.decoder, "make_room", lambda n, dev: asked.append(list(fast.decoder.kept_caches())))
    monkeypatch.setattr(fast.decoder, "free_bytes", lambda dev: 0 if fast.decoder.kept_caches() else need_two)
    fast.decoder.check_fits(2, 1300, GREEDY.max_new_tokens, "cpu")
    assert asked == [[]]  # by the time ComfyUI is asked, the batch-1 cache is gone


def test_out_of_memory_inside_splits_instead_of_crashing(pair, monkeypatch):
    """An out-of-memory error in the cache splits the batch; the failed attempt's tensors are freed before the
    halves run (an exception kept alive during the retry would hold its frames, and their tensors)."""
    import gc
    import weakref

    fast, std = pair
    fast.decoder.drop_cache()
    real = fast.decoder._cache
    state = {"left": 1}
    failed_attempt, alive_at_retry = [], []

    def cache_once_oom(*args):
        if state["left"]:
            state["left"] -= 1
            half_built = torch.zeros(1024)  # what the failed attempt had allocated
            failed_attempt.append(weakref.ref(half_built))
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        alive_at_retry.append(failed_attempt[0]() is not None)
        return real(*args)

    monkeypatch.setattr(fast.decoder, "_cache", cache_once_oom)
    images = pics(64, 64, seed=4)
    gc.collect()
    gc.disable()  # freed by reference counting, at once
    try:
        out = raws(fast.critique(images, ["p", "q"], settings=GREEDY))
    finally:
        gc.enable()
    assert out == raws(std.critique(images, ["p", "q"], settings=GREEDY))
    assert alive_at_retry == [False, False]  # two halves, each after the failed attempt was freed


# -- warm-up is visible; failures fall back ---------------------------------------------------------------
def test_first_compile_is_announced_once_with_moving_progress(pair, monkeypatch, caplog, comfy, standin_log):
    fast, _ = pair
    from rationalrewards.nodes import host

    monkeypatch.setattr(compiled_mod, "_COMPILED", {})  # compile anew ...
    real_compile = torch.compile

    def slow_compile(fn, **kwargs):  # ... and take a while, as a cold compile does (warm caches make it quick)
        step, first = real_compile(fn, **kwargs), [True]

        def run(*a, **k):
            if first:
                first.clear()
                time.sleep(0.3)
            return step(*a, **k)
        return run

    monkeypatch.setattr(torch, "compile", slow_compile)
    monkeypatch.setattr(compiled_mod, "TICK_S", 0.02)
    statuses = []
    cb = host.node_callbacks("9", 1)
    node_status = cb.on_status
    cb.on_status = lambda t, f: (statuses.append((t, f)), node_status(t, f))
    with caplog.at_level(logging.INFO, logger="rationalrewards"):
        fast.critique(pics(64, seed=8), "announce", settings=GREEDY, callbacks=cb)
    texts = [t for t, _ in statuses]
    assert texts[0].startswith("Compiling the critic's decoder for 1 image(s) per batch and up to 2048 tokens")
    assert "once per shape" in texts[0] and texts[-1].startswith("Decoder compiled in")
    fractions = [f for t, f in statuses if f is not None]
    assert fractions[0] == 0.0 and len(fractions) >= 2 and fractions == sorted(fractions) and fractions[-1] < 1
    assert "Compiling the critic's decoder" in caplog.text and "decoder compiled for batch 1" in caplog.text
    on_node = [d["text"] for name, d in standin_log.calls if name == "progress_text"]
    assert on_node[0] == texts[0] and on_node.count(texts[0]) == 1  # the node shows it once
    bars = [d["value"] for name, d in standin_log.calls if name == "progress" and d["node_id"] == "9"]
    assert len(bars) >= 2 and 0 < max(bars[:-1]) < 1  # moving while it compiles, before the item completes
    statuses.clear()
    fast.critique(pics(64, seed=9), "again", settings=GREEDY, callbacks=cb)
    assert not [t for t, _ in statuses if "ompil" in t]  # the shape is compiled: nothing to announce


def test_a_failing_compile_falls_back_once(tiny_critic_dir, tiny_critic, monkeypatch, caplog):
    monkeypatch.setattr(compiled_mod, "_COMPILED", {})

    def no_compiler(fn, **kwargs):
        def fail(*a, **k):
            raise RuntimeError("InductorError: C++ compile error (simulated)\nmore lines")
        return fail

    monkeypatch.setattr(torch, "compile", no_compiler)
    c = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu", speed="compiled", cache_size=0)
    notes = []
    cb = Callbacks(on_status=lambda t, f: notes.append(t) if f is None else None)
    with caplog.at_level(logging.WARNING, logger="rationalrewards"):
        out = c.critique(pics(64, 64), ["a", "b"], settings=GREEDY, callbacks=cb)
        c.critique(pics(64), "c", settings=GREEDY, callbacks=cb)
    assert raws(out) == raws(tiny_critic.critique(pics(64, 64), ["a", "b"], settings=GREEDY))
    failed = [n for n in notes if "compiled decoding failed" in n]
    assert len(failed) == 1 and "C++ compile error (simulated)" in failed[0] and "standard speed" in failed[0]
    assert caplog.text.count("compiled decoding failed") == 1
    assert c.speed == "standard" and c.decoder.broken.startswith("RuntimeError: InductorError")
    assert c.decoder.kept_caches() == []  # nothing kept for a decoder that is off
    c.close()
