"""Compiled decoding for the in-process critic (``speed="compiled"``): a static KV cache and a
``torch.compile``d decode step (CUDA graphs on a GPU) around the model's own decoder layers, in the
style of gpt-fast, driven by ``LocalCritic`` one batch at a time.

How a batch is decoded:

1. **Prefill** is the model's own ``generate`` for one token (vision tower, deepstack, 3-D rope
   positions, the first token's sampling, streaming and cancel: exactly the standard path's).
2. Its cache is copied into a **static cache** whose shape is bucketed: the batch is padded to 1, 2,
   4, 8 or 16 rows (padded rows decode a pad token and are dropped) and the length rounded up to a
   bucket (2048, 3072, 4096, 6144, 8192, ...), so every prompt, image size and batch of a session
   reuses a handful of compiled shapes. The first use of a shape compiles it, once per process
   (critics with the same architecture share the compiled steps: the weights are arguments, not
   constants); that is announced on the node and in the console, with a progress bar that keeps moving.
3. **Decode**: one compiled step per token; the next token is chosen outside the graph with
   transformers' own logits processors, so settings never recompile it.

Memory: before a batch, the cache and the prefill are sized against the free VRAM (after asking the
placement, i.e. ComfyUI, to make room); a batch that does not fit raises ``DoesNotFit`` and the caller
splits it; an out-of-memory error inside becomes ``DoesNotFit`` too.

Static caches are kept per shape, between batches and calls (a call of 5 images at batch size 4 uses
two shapes, every time): CUDA graphs read the cache at fixed addresses, and a new cache at new addresses
makes them record the step again, which torch 2.5-2.12 counts towards a limit after which it silently
stops using CUDA graphs. Past a call at most ``KEEP_CACHE_MAX`` bytes of them stay (the smallest kept);
the others go when memory is short, when ComfyUI unloads the critic (the placement's ``on_unload``:
ComfyUI's ON_DETACH callback) and when the critic is closed, so no cache outlives the weights on the GPU.

Why not transformers' ``cache_implementation="static"``: it recompiles on every new batch size and
cache length, and its cache / generate internals differ between transformers 4.57 and 5.x (see
docs/benchmarks.md for what was measured).
"""
from __future__ import annotations

import contextlib
import copy
import logging
import math
import threading
import time
import types
from typing import Any, Callable

from .compiled_step import TokenChooser, cache_keyword, decode_step, take_prefill_kv, unsupported_settings

log = logging.getLogger("rationalrewards")

BATCH_BUCKETS = (1, 2, 4, 8, 16)
#: 2048 .. 98304 tokens: powers of two and the halfway points (a cache is at most 1.5x what a call needs);
#: a critique prompt is ~1,000-2,600 tokens, so nothing shorter than 2048 is worth its own compile.
LENGTH_BUCKETS = tuple(sorted(b for k in range(11, 17) for b in (2 ** k, 3 * 2 ** (k - 1))))
#: Working memory kept free beyond the estimate (allocator slack, vision tower activations, sampling).
MEMORY_MARGIN = 512 * 2 ** 20
#: What the console and the node are told to expect for a first compile, until one was measured here.
FIRST_COMPILE_GUESS_S = {"cuda": 60.0, "cpu": 30.0}
#: Seconds between progress updates while a shape compiles.
TICK_S = 0.5
#: Bytes of static caches kept past a call (batch 1-2 of an 8B critique: 0.6-1.1 GiB each); larger ones
#: are freed when the call ends, so a big batch's cache never sits beside a diffusion model.
KEEP_CACHE_MAX = 2 * 2 ** 30

Status = Callable[[str, "float | None"], None]

#: Compiled decode steps of this process, per shape and architecture: [function, compile seconds or None
#: while not yet compiled]. Bounded by the buckets (5 batch x 12 length per architecture and mode).
_COMPILED: dict[tuple, list] = {}


class DoesNotFit(Exception):
    """The batch does not fit the free memory in compiled mode: split it (or, for one row, decode it
    the standard way)."""


class CompileFailed(Exception):
    """Compiling or running the decode step failed; the decoder is off for good (``broken`` says why)."""


def batch_bucket(n: int) -> int:
    """The compiled batch size for ``n`` rows (ValueError above the largest bucket)."""
    for b in BATCH_BUCKETS:
        if n <= b:
            return b
    raise ValueError(f"{n} rows exceed the largest batch bucket {BATCH_BUCKETS[-1]}")


def length_bucket(tokens: int) -> int | None:
    """The compiled cache length for ``tokens`` (prompt + max new tokens); None when beyond every bucket."""
    return next((b for b in LENGTH_BUCKETS if tokens <= b), None)


def _fresh(fn):
    """A copy of ``fn`` with its own code object: dynamo keeps compiled graphs per code object, so each
    shape gets its own, never counted against torch's recompile limit (exceeding it silently falls back
    to uncompiled code)."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def torch_device_type(decoder: "CompiledDecoder") -> str:
    """Where the decoder's weights are now ("cuda", "cpu")."""
    return decoder.lm.embed_tokens.weight.device.type


def device_key(device: Any) -> str:
    """``device`` as a comparable name: "cuda" and "cuda:0" are the same GPU when 0 is the current one."""
    import torch

    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return str(dev)


def graphs_compiled() -> int:
    """Dynamo's counter of graphs compiled in this process (a recompile adds one)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


class CompiledDecoder:
    """Static-cache, compiled-step decoding of a loaded Qwen3-VL model (see the module docstring).

    ``mode``: torch.compile mode ("reduce-overhead" = CUDA graphs on a GPU, None on the CPU).
    ``make_room(nbytes, device)``: asks the memory owner (ComfyUI) to free that much; returns the free
    bytes it sees, or None to let torch measure. ``free_bytes(device)`` replaces the measurement (tests).
    Counters: ``shapes`` ((batch, length) buckets this decoder used, with the seconds their compile
    took, 0.0 when another critic had compiled it), ``recompiles`` (graphs compiled for a shape that was
    already compiled: 0 is the goal), ``broken`` (why compiled decoding stopped, None while it runs).
    """

    def __init__(self, model: Any, *, mode: str | None = None, make_room: Callable | None = None,
                 free_bytes: Callable | None = None):
        self.model = model
        self.lm = model.model.language_model
        self.layers = list(self.lm.layers)
        cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config.text_config
        self.kv_heads = int(cfg.num_key_value_heads)
        self.head_dim = int(getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads)
        self.hidden, self.intermediate = int(cfg.hidden_size), int(cfg.intermediate_size)
        self.vocab = int(cfg.vocab_size)
        self.additive_mask = getattr(cfg, "_attn_implementation", "sdpa") == "eager"
        self.cache_kw = cache_keyword(self.layers[0])
        self.mode = mode
        self.make_room = make_room
        self.free_bytes = free_bytes
        self.shapes: dict[tuple[int, int], float] = {}
        self.recompiles = 0
        self.broken: str | None = None
        #: kept static caches: (rows, length, device) -> (keys, values, prompt_mask)
        self._kv: dict[tuple[int, int, str], tuple] = {}
        self._arch = (mode, str(self.dtype), len(self.layers), self.kv_heads, self.head_dim, self.hidden,
                      self.vocab, self.additive_mask, self.cache_kw, type(model).__name__)

    # -- memory ------------------------------------------------------------------------------------
    @property
    def dtype(self):
        return self.lm.embed_tokens.weight.dtype

    def kv_bytes(self, rows: int, length: int) -> int:
        """Bytes of a static cache for ``rows`` x ``length`` tokens (keys + values, every layer)."""
        return 2 * len(self.layers) * rows * self.kv_heads * length * self.head_dim * self.dtype.itemsize

    def need_bytes(self, n: int, prompt_len: int, max_new: int, have_cache: bool = False) -> int:
        """Estimated peak for a batch of ``n`` rows beyond the weights: the larger of the prefill (its own
        cache and activations) and the static cache (the prefill's cache is released layer by layer while it
        is copied, so at most one of its layers sits beside the static cache), plus the logits of a step and
        a margin. ``have_cache``: the static cache is already allocated (kept from an earlier batch), so
        the prefill comes on top of it."""
        length = length_bucket(prompt_len + max_new) or 0
        itemsize = self.dtype.itemsize
        prefill = n * prompt_len * (self.kv_bytes(1, 1) + (4 * self.hidden + 3 * self.intermediate) * itemsize)
        static = self.kv_bytes(batch_bucket(n), length) + self.kv_bytes(n, prompt_len) // len(self.layers)
        peak = prefill if have_cache else max(prefill, static)
        return peak + 4 * batch_bucket(n) * self.vocab * 4 + MEMORY_MARGIN

    def kept_caches(self) -> list[tuple[int, int, str]]:
        """(rows, length, device) of the static caches kept for later batches, oldest first."""
        return list(self._kv)

    def drop_cache(self, keep: tuple | None = None) -> None:
        """Free the kept static caches (all but ``keep``): ComfyUI unloads the critic, memory is short, the
        critic closes."""
        self._kv = {k: v for k, v in self._kv.items() if k == keep}

    def end_call(self) -> None:
        """A critique call is over: keep the smallest static caches, up to ``KEEP_CACHE_MAX`` bytes in all,
        for the next one (the weights' own unload frees them in any case: ``drop_cache``)."""
        kept, total = {}, 0
        for key in sorted(self._kv, key=lambda k: self.kv_bytes(k[0], k[1])):
            size = self.kv_bytes(key[0], key[1])
            if total + size <= KEEP_CACHE_MAX:
                kept[key], total = self._kv[key], total + size
        self._kv = {k: v for k, v in self._kv.items() if k in kept}

    def _free(self, device: Any, need: int, ask_owner: bool = True) -> int | None:
        """Free bytes on ``device`` for ``need`` more; ``ask_owner``: let the memory owner (ComfyUI) unload
        other models first. None where it is not measured (system memory)."""
        if ask_owner and self.make_room is not None:
            free = self.make_room(need, device)
            if free is not None and self.free_bytes is None:
                return int(free)
        if self.free_bytes is not None:
            return int(self.free_bytes(device))
        import torch

        dev = torch.device(device)
        if dev.type != "cuda":
            return None  # system memory: not sized here
        free, _total = torch.cuda.mem_get_info(dev)
        return int(free + torch.cuda.memory_reserved(dev) - torch.cuda.memory_allocated(dev))

    def check_fits(self, n: int, prompt_len: int, max_new: int, device: Any) -> None:
        """Raise DoesNotFit (with the reason) unless a batch of ``n`` rows can be decoded compiled."""
        if n > BATCH_BUCKETS[-1]:
            raise DoesNotFit(f"{n} rows: more than {BATCH_BUCKETS[-1]} per compiled batch")
        if length_bucket(prompt_len + max_new) is None:
            raise DoesNotFit(f"{prompt_len} prompt + {max_new} new tokens exceed the longest cache bucket")
        want = (batch_bucket(n), length_bucket(prompt_len + max_new), device_key(device))
        need = self.need_bytes(n, prompt_len, max_new, have_cache=want in self._kv)
        if set(self._kv) - {want}:  # caches of other shapes are the first memory to go (cheaper to make
            free = self._free(device, need, ask_owner=False)  # again than a model ComfyUI would unload)
            if free is not None and need > free:
                self.drop_cache(keep=want)
        free = self._free(device, need)
        if free is not None and need > free and set(self._kv) - {want}:
            self.drop_cache(keep=want)
            free = self._free(device, need)
        if free is not None and need > free:
            raise DoesNotFit(f"needs about {need / 2**30:.1f} GiB for {n} row(s), {free / 2**30:.1f} GiB free")

    # -- decoding ----------------------------------------------------------------------------------
    def generate(self, inputs: Any, gc: Any, extra: dict[str, Any], eos_ids: list[int], pad_id: int,
                 watch: Any, status: Status | None = None) -> Any:
        """Decode one batch; returns the sequences (prompt + answer) like ``model.generate``.

        ``gc`` / ``extra``: the generation config and generate() keywords of the standard path (a call
        with settings only the standard path honours never gets here: see ``unsupported``); ``watch``:
        the per-token hook (a StoppingCriteria whose ``step(steps, last_tokens)`` returns True to stop).
        Raises DoesNotFit on out-of-memory and CompileFailed when compiling or running the step fails.
        """
        import torch
        from transformers import StoppingCriteriaList

        n, prompt_len = inputs["input_ids"].shape
        device = inputs["input_ids"].device
        max_new = int(gc.max_new_tokens)
        positions_seen: list[Any] = []
        hook = self.lm.rotary_emb.register_forward_pre_hook(
            lambda _m, args, kwargs: positions_seen.append(args[1] if len(args) > 1 else kwargs["position_ids"]),
            with_kwargs=True)
        first_gc = copy.deepcopy(gc)
        first_gc.max_new_tokens = 1
        if first_gc.min_new_tokens:  # only whether the first token may be EOS matters here
            first_gc.min_new_tokens = 1
        first_gc.return_dict_in_generate = True
        try:
            out = self.model.generate(**inputs, generation_config=first_gc,
                                      stopping_criteria=StoppingCriteriaList([watch]), **extra)
        except torch.OutOfMemoryError as e:
            self.drop_cache()
            raise DoesNotFit(f"out of memory in the prefill ({e})") from None
        finally:
            hook.remove()
        seqs = out.sequences
        first = seqs[:, prompt_len]
        unfinished = ~torch.isin(first, torch.tensor(eos_ids, device=device))
        if watch.interrupted or max_new <= 1 or not bool(unfinished.any()):
            return seqs
        # next rope position of each row: one past the largest the prefill used (4.57 and 5.x agree)
        next_pos = positions_seen[0][-3:].amax(dim=(0, 2)).to(device) + 1
        length = length_bucket(prompt_len + max_new)
        rows = batch_bucket(n)
        try:
            keys, values, prompt_mask = self._cache(rows, length, device, take_prefill_kv(out), inputs["attention_mask"])
            del out
            return self._decode(seqs, unfinished, next_pos, keys, values, prompt_mask, rows, length, gc, inputs,
                                eos_ids, pad_id, watch, status)
        except torch.OutOfMemoryError as e:
            self.drop_cache()
            raise DoesNotFit(f"out of memory while decoding ({e})") from None

    def _cache(self, rows: int, length: int, device: Any, prefill: Any, attention_mask: Any):
        """The static cache (keys, values per layer, and the prompt slots each row may attend to), filled
        from the prefill's cache one layer at a time: ``prefill`` releases each layer once it is copied,
        so the two caches never sit in memory whole side by side. A kept cache of this shape is reused
        (cleared, at the same addresses); otherwise a new one is made and kept."""
        import torch

        n, prompt_len = attention_mask.shape
        keep = attention_mask.bool()[:, None, :, None]
        key = (rows, length, device_key(device))
        kept = self._kv.get(key)
        reuse = kept is not None
        shape = (rows, self.kv_heads, length, self.head_dim)
        keys, values = [], []
        for k, v in prefill:  # (not enumerate: its result tuple would keep the previous layer alive)
            for src, out, slot in ((k, keys, 0), (v, values, 1)):
                if reuse:
                    t = kept[slot][len(out)]
                    t.zero_()
                else:
                    t = torch.zeros(shape, dtype=self.dtype, device=device)
                t[:n, :, :prompt_len].copy_(torch.where(keep, src, torch.zeros((), dtype=src.dtype, device=device)))
                out.append(t)
            del k, v, src
        if len(keys) != len(self.layers):
            raise RuntimeError(f"the prefill returned {len(keys)} cache layers for {len(self.layers)} decoder layers")
        if reuse:
            prompt_mask = kept[2]
            prompt_mask.zero_()
        else:
            if torch.device(device).type == "cuda":
                for t in keys + values:  # fixed addresses for CUDA graphs (guard=False: a new cache re-records,
                    torch._dynamo.mark_static_address(t, guard=False)  # never recompiles)
            prompt_mask = torch.zeros(rows, length, dtype=torch.bool, device=device)
            self._kv[key] = (keys, values, prompt_mask)
        prompt_mask[:n, :prompt_len] = attention_mask.bool()
        return keys, values, prompt_mask

    def _decode(self, seqs, unfinished, next_pos, keys, values, prompt_mask, rows, length, gc, inputs, eos_ids,
                pad_id, watch, status):
        import torch

        n, prompt_len = inputs["input_ids"].shape
        device = seqs.device
        max_new = int(gc.max_new_tokens)
        choose = TokenChooser(gc, prompt_len, inputs["attention_mask"], eos_ids, device)
        eos = torch.tensor(eos_ids, device=device)
        out = torch.full((n, prompt_len + max_new), pad_id, dtype=seqs.dtype, device=device)
        out[:, :prompt_len + 1] = seqs
        tokens = torch.full((rows, 1), pad_id, dtype=torch.long, device=device)
        tokens[:n, 0] = seqs[:, prompt_len]
        positions = torch.zeros(3, rows, 1, dtype=torch.long, device=device)
        positions[:, :n, 0] = next_pos
        index = torch.tensor([prompt_len], dtype=torch.long, device=device)
        gen_start = torch.tensor(prompt_len, dtype=torch.long, device=device)
        step = self._step_for(rows, length)
        done = 1
        while done < max_new:
            logits = self._run_step(step, (rows, length), status, keys, values, tokens, positions, index,
                                    prompt_mask, gen_start)
            nxt = choose(out[:, :prompt_len + done], logits[:n])
            nxt = torch.where(unfinished, nxt, torch.full_like(nxt, pad_id))
            out[:, prompt_len + done] = nxt
            done += 1
            unfinished &= ~torch.isin(nxt, eos)
            if watch.step(done, nxt.tolist()) or not bool(unfinished.any()):
                break
            tokens[:n, 0] = nxt
            positions.add_(1)
            index.add_(1)
        return out[:, :prompt_len + done]

    def _step_for(self, rows: int, length: int) -> list:
        key = (rows, length, torch_device_type(self)) + self._arch
        if key not in _COMPILED:
            import torch

            _COMPILED[key] = [torch.compile(_fresh(decode_step), fullgraph=True, dynamic=False, mode=self.mode), None]
        return _COMPILED[key]

    def _run_step(self, entry, shape, status, *tensors):
        step = entry[0]
        args = (self.lm, self.model.lm_head, self.layers, self.cache_kw, self.additive_mask) + tensors
        before = graphs_compiled()
        try:
            if entry[1] is not None:
                logits = step(*args)
                self.shapes.setdefault(shape, 0.0)
            else:
                with self._announce(shape, status) as timer:
                    logits = step(*args)
                entry[1] = self.shapes[shape] = timer()
                log.info("RationalRewards: decoder compiled for batch %d, %d tokens in %.1f s (once per shape)",
                         shape[0], shape[1], entry[1])
                before = graphs_compiled()  # the first call compiles; count only what comes after
        except Exception as e:
            import torch

            if isinstance(e, torch.OutOfMemoryError):
                raise
            self.broken = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
            self.drop_cache()  # never used again
            raise CompileFailed(self.broken) from e
        self.recompiles += graphs_compiled() - before
        return logits

    @contextlib.contextmanager
    def _announce(self, shape, status: Status | None):
        """Say that a shape compiles (console + node) and keep the progress moving while it does."""
        kind = torch_device_type(self)
        done = [e[1] for k, e in _COMPILED.items() if e[1] is not None and k[2] == kind]
        expect = max(done) if done else FIRST_COMPILE_GUESS_S.get(kind, 60.0)
        how_long = (f"the last one took {expect:.0f} s" if done
                    else f"roughly {expect:.0f} s on {'a GPU' if kind == 'cuda' else 'this device'}")
        text = (f"Compiling the critic's decoder for {shape[0]} image(s) per batch and up to {shape[1]} tokens: "
                f"once per shape, {how_long}; later critiques reuse it.")
        log.info("RationalRewards: %s", text)
        t0 = time.perf_counter()
        stop = threading.Event()

        def tell(fraction):
            if status is not None:
                try:
                    status(text, fraction)
                except Exception:  # a UI message must never fail the critique
                    pass

        def tick():
            while not stop.wait(TICK_S):
                tell(min(0.95, 1 - math.exp(-(time.perf_counter() - t0) / expect)))

        tell(0.0)
        ticker = threading.Thread(target=tick, name="rationalrewards-compile-progress", daemon=True)
        ticker.start()
        try:
            yield lambda: round(time.perf_counter() - t0, 2)
        finally:
            stop.set()
            ticker.join()
        if status is not None:  # reached only when compiling worked
            tell_done = f"Decoder compiled in {time.perf_counter() - t0:.0f} s; decoding."
            try:
                status(tell_done, None)
            except Exception:
                pass

    @staticmethod
    def unsupported(gc: Any, extra: dict[str, Any]) -> list[str]:
        """Generation settings of a call that only the standard path honours (then it decodes that way)."""
        return unsupported_settings(gc, extra)
