"""The in-process critic: RationalRewards (Qwen3-VL) run with transformers on this machine.

``LocalCritic.from_pretrained(folder, ...)`` checks every option against the machine, validates the
folder (models/store.py), then loads ``Qwen3VLForConditionalGeneration`` + ``AutoProcessor`` the
standard way (``trust_remote_code`` is never set; safetensors only unless ``allow_pickle``).

Where the model lives is decided by a ``DevicePlacement`` (local_options.py): by default the model
stays on its own device; in ComfyUI, ``nodes/`` passes one that hands the model to ComfyUI's memory
manager. ``prepare`` runs before every generate, ``release`` after each critique call, or once at the
end of a ``with critic.resident():`` block (keep-resident across a loop).

Speed: ``speed="compiled"`` (the default on a CUDA GPU where it can run: ``"auto"``) decodes with a
static KV cache and a compiled step (compiled.py); everything else (prompts, streaming, cancel, cache,
parsing) is shared with the standard path, which remains the fallback for anything compiled decoding
cannot do: then one note says why, on the node and in the console.

Image sizes: base.py delivers RGB PIL images within the pixel budget (never upscaled there). The
Qwen3-VL processor then resizes each side to a multiple of 32 pixels (patch 16 x merge 2) within
``size.shortest_edge`` .. ``size.longest_edge`` total pixels: 65,536 .. 16,777,216 for Qwen3-VL-8B, so
a 64x64 image is enlarged to 256x256 (64 image tokens) by the processor itself, and an image at the
802,816-pixel budget (896x896) becomes 784 image tokens.
"""
from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
import weakref
from pathlib import Path
from typing import Any, Sequence

from ..errors import CriticError, CritiqueInterrupted, ModelFolderError, OptionError
from ..store import validate_model_dir
from .base import Callbacks, CriticBackend, Generation, GenerationSettings
from .compiled import CompileFailed, CompiledDecoder, DoesNotFit
from .local_options import DevicePlacement, LoadOptions, module_available, quantization_config, resolve_options

log = logging.getLogger("rationalrewards")


def _dtype_kwarg() -> str:
    """transformers >= 4.56 takes ``dtype=``; older releases only ``torch_dtype=``."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def _model_class():
    import transformers.utils

    if not transformers.utils.is_torch_available():  # transformers 5 switches torch off below torch 2.6
        import torch

        raise OptionError(f"transformers {transformers.__version__} cannot use this torch {torch.__version__} (it "
                          "switches PyTorch off: transformers 5 needs torch 2.6 or newer): `pip install "
                          "'transformers>=4.57,<5'` runs RationalRewards with your torch, or upgrade torch")
    try:
        from transformers import Qwen3VLForConditionalGeneration as cls
    except ImportError as e:
        raise OptionError(import_failure(e)) from e
    return cls


def import_failure(e: ImportError) -> str:
    """Why ``from transformers import Qwen3VLForConditionalGeneration`` failed, and the fix.

    Not always an old transformers: transformers 5 wraps any failure inside the model's import in "Could not
    import module ...", and it imports torchao whenever that is installed, so a torchao built for another
    torch (``pip install torchao`` takes the newest, which needs the newest torch) stops every model from
    loading. The whole chain of causes is read, and the innermost error is named."""
    import traceback

    import torch
    import transformers

    chain, seen = [], set()
    err: BaseException | None = e
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        chain.append(err)
        err = err.__cause__ or err.__context__
    files = [f.filename.replace("\\", "/") for x in chain for f in traceback.extract_tb(x.__traceback__)]
    root = chain[-1]
    if any("/torchao/" in f for f in files):
        try:
            from importlib.metadata import version

            ao = version("torchao")
        except Exception:
            ao = "(unknown version)"
        return (f"torchao {ao} fails to import beside torch {torch.__version__} ({root}), most often because it was "
                "built for another torch; transformers imports it whenever it is installed, so no model can "
                "load. Install the torchao built for your torch "
                "(torch 2.9.1: `pip install torchao==0.15.0`; torchao 0.18 needs torch 2.11+; the table: "
                "https://github.com/pytorch/ao/issues/2919) or remove it (`pip uninstall torchao`; only the "
                "fp8 quantization needs it)")
    if len(chain) == 1 and str(e).startswith("cannot import name 'Qwen3VLForConditionalGeneration'"):
        return (f"transformers {transformers.__version__} cannot run Qwen3-VL (RationalRewards); "
                "it needs transformers >= 4.57: `pip install -U 'transformers>=4.57'`")
    inner = [f for f in traceback.extract_tb(root.__traceback__) if "/transformers/" not in f.filename.replace("\\", "/")]
    where = f" in {inner[-1].filename}" if inner else ""
    return (f"transformers {transformers.__version__} could not import its Qwen3-VL model with torch "
            f"{torch.__version__}: {type(root).__name__}: {root}{where}. Reinstall the package named there so it "
            "matches this torch and transformers")


def _cache_dropper(decoder_ref: "weakref.ref[CompiledDecoder]"):
    """The placement's ``on_unload`` for a compiled critic: free the decoder's static cache when the weights
    are unloaded (a weak reference: ComfyUI's patcher, which keeps this callback, must not keep the critic)."""
    def drop() -> None:
        decoder = decoder_ref()
        if decoder is not None and decoder.kept_caches():
            decoder.drop_cache()
            log.info("RationalRewards: the critic was unloaded; its compiled decoder's cache is freed too")
    return drop


def _generate_takes_model_defaults(model: Any) -> bool:
    """Whether ``model.generate`` has the ``use_model_defaults`` switch (transformers 4.50-4.x; 5.x
    dropped both the switch and the silent replacement)."""
    import inspect

    try:
        return "use_model_defaults" in inspect.signature(model.generate).parameters
    except (TypeError, ValueError):
        return False


class LocalCritic(CriticBackend):
    """RationalRewards run in this process. Build it with ``LocalCritic.from_pretrained``.

    Attributes: ``model`` (the transformers module), ``processor``, ``options`` (LoadOptions),
    ``path``, ``batch_size`` (images per generate call), ``memory`` (the DevicePlacement),
    ``generate_kwargs`` (extra keyword arguments for ``model.generate``, e.g. ``repetition_penalty``),
    ``decoder`` (the CompiledDecoder when ``options.speed`` is compiled, else None).
    """

    def __init__(self, model: Any, processor: Any, *, path: str | os.PathLike, options: LoadOptions,
                 memory: DevicePlacement, batch_size: int = 4, cache_size: int = 256):
        super().__init__(cache_size)
        if int(batch_size) < 1:
            raise OptionError(f"batch_size={batch_size}: must be at least 1")
        self.model = model
        self.processor = processor
        self.path = Path(path)
        self.options = options
        self.memory = memory
        self.batch_size = int(batch_size)
        self.generate_kwargs: dict[str, Any] = {}
        self._resident = 0
        self._identity = self._make_identity()
        tok = processor.tokenizer
        tok.padding_side = "left"  # generation continues at the right edge of every row
        gc = model.generation_config
        eos = gc.eos_token_id if gc.eos_token_id is not None else tok.eos_token_id
        self._eos_ids = sorted({int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])} |
                               ({int(tok.eos_token_id)} if tok.eos_token_id is not None else set()))
        self._pad_id = gc.pad_token_id if gc.pad_token_id is not None else (
            tok.pad_token_id if tok.pad_token_id is not None else self._eos_ids[0])
        self.decoder = None
        if options.speed == "compiled":
            cuda = str(options.device).startswith("cuda")
            self.decoder = CompiledDecoder(model, mode="reduce-overhead" if cuda else None, make_room=memory.make_room)
            memory.on_unload = _cache_dropper(weakref.ref(self.decoder))  # the cache goes with the weights
        self._notes_shown: set[str] = set()
        self._pending_notes = [options.speed_note] if options.speed_note else []
        for note in self._pending_notes:
            log.warning("RationalRewards: %s", note)

    @classmethod
    def from_pretrained(
        cls,
        path: str | os.PathLike,
        *,
        dtype: str = "auto",
        attention: str = "sdpa",
        quantization: str = "none",
        device: str = "auto",
        speed: str = "auto",
        batch_size: int = 4,
        cache_size: int = 256,
        memory: DevicePlacement | None = None,
        allow_pickle: bool = False,
    ) -> "LocalCritic":
        """Check the options (OptionError before anything is read), validate the folder
        (ModelFolderError), then load the model and processor. ``memory`` replaces the default
        placement (keep the model on ``device``); its ``device`` then is the compute device.
        ``speed``: auto (compiled decoding on a CUDA GPU where it can run), compiled or standard."""
        if int(batch_size) < 1:
            raise OptionError(f"batch_size={batch_size}: must be at least 1")
        if int(cache_size) < 0:
            raise OptionError(f"cache_size={cache_size}: must be 0 (no cache) or more")
        if memory is not None:  # the placement knows where the model will compute
            device = getattr(memory, "device", None) or device
        options = resolve_options(device, dtype, attention, quantization, speed)
        memory = memory or DevicePlacement(options.device)
        folder = validate_model_dir(path, allow_pickle=allow_pickle)
        model_cls = _model_class()
        from transformers import AutoProcessor

        kwargs: dict[str, Any] = {_dtype_kwarg(): options.torch_dtype, "attn_implementation": options.attention,
                                  "local_files_only": True, "use_safetensors": None if allow_pickle else True}
        qcfg = quantization_config(options)
        if qcfg is not None:
            # quantized weights are made once, on the GPU (bitsandbytes' cannot be moved afterwards)
            kwargs.update(quantization_config=qcfg, device_map={"": options.device})
        elif str(memory.initial_device) != "cpu" and module_available("accelerate"):
            # straight onto the GPU: no second 17.5 GB copy in RAM, no CPU->GPU pass afterwards
            kwargs["device_map"] = {"": str(memory.initial_device)}
        try:
            model = model_cls.from_pretrained(str(folder), **kwargs)
            processor = AutoProcessor.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise ModelFolderError(f"{folder} could not be loaded as a Qwen3-VL critic: {type(e).__name__}: {e}") from e
        except (RuntimeError, AssertionError) as e:
            if options.quantization != "fp8":
                raise
            raise OptionError(f"quantization='fp8' failed while quantizing the weights ({type(e).__name__}: "
                              f"{str(e)[:300]}); use quantization none") from e
        model.eval()
        model.requires_grad_(False)  # inference only; and ComfyUI re-creates parameters without grad
        if qcfg is None:
            model.to(memory.initial_device)
        return cls(model, processor, path=folder, options=options, memory=memory,
                   batch_size=batch_size, cache_size=cache_size)

    # -- identity, size, residency -----------------------------------------------------------------
    def _make_identity(self) -> str:
        stamps = []
        for f in sorted(self.path.glob("*.safetensors")):
            st = f.stat()
            stamps.append(f"{f.name}:{st.st_size}:{int(st.st_mtime)}")
        o = self.options
        return f"local:{self.path.resolve()}:{o.dtype}:{o.attention}:{o.quantization}:{','.join(stamps)}"

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def speed(self) -> str:
        """How the next critique decodes: "compiled", or "standard" (chosen, or after a fallback)."""
        return "compiled" if self.decoder is not None and self.decoder.broken is None else "standard"

    def model_size_bytes(self) -> int:
        """Bytes of the model's parameters and buffers (what ComfyUI's memory manager must find room for)."""
        self._check_open()
        return sum(t.numel() * t.element_size() for t in list(self.model.parameters()) + list(self.model.buffers()))

    @contextlib.contextmanager
    def resident(self):
        """Keep the model loaded across every call inside the block (a loop); release it once at the end."""
        self._check_open()
        self._resident += 1
        try:
            yield self
        finally:
            self._resident -= 1
            if self._resident == 0 and self.model is not None:
                self.memory.release(self.model)
                if self.decoder is not None:
                    self.decoder.end_call()

    def close(self) -> None:
        """Hand the model back to the placement and drop it; the critic cannot be used afterwards."""
        if self.model is None:
            return
        if self.decoder is not None:
            self.decoder.drop_cache()
        self.memory.on_unload = None
        self.memory.close(self.model)
        self.model = self.decoder = None
        self.cache.clear()

    def _check_open(self) -> None:
        if self.model is None:
            raise CriticError(f"the critic {self.path.name} was closed; load it again")

    # -- generation --------------------------------------------------------------------------------
    def _generate(self, messages: Sequence[list[dict[str, Any]]], settings: GenerationSettings,
                  callbacks: Callbacks) -> list[Generation]:
        self._check_open()
        out: list[Generation] = []
        try:
            device = self.memory.prepare(self.model)
            while self._pending_notes:
                self._note(callbacks, self._pending_notes.pop(0), logged=True)
            for start in range(0, len(messages), self.batch_size):
                chunk = list(messages[start:start + self.batch_size])
                out.extend(self._generate_fitting(chunk, start, device, settings, callbacks))
                if callbacks.on_item:
                    callbacks.on_item(len(out), len(messages))
        finally:
            if not self._resident:
                self.memory.release(self.model)
                if self.decoder is not None:
                    self.decoder.end_call()
        return out

    def encode(self, chats: Sequence[list[dict[str, Any]]], device: Any = "cpu") -> Any:
        """Chat template + processor for a batch of chats (left padded), as tensors on ``device``."""
        texts = [self.processor.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
        images = [p["image"] for c in chats for m in c if isinstance(m.get("content"), list)
                  for p in m["content"] if isinstance(p, dict) and p.get("type") == "image"]
        inputs = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")
        inputs = inputs.to(device)
        if "pixel_values" in inputs and inputs["pixel_values"].is_floating_point():
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        return inputs

    def generation_config(self, settings: GenerationSettings):
        """The model's generation config with the settings applied (top_k stays the model's own)."""
        gc = copy.deepcopy(self.model.generation_config)
        gc.max_new_tokens = int(settings.max_new_tokens)
        gc.do_sample = settings.do_sample
        gc.pad_token_id = self._pad_id
        gc.eos_token_id = list(self._eos_ids)
        if settings.do_sample:
            gc.temperature, gc.top_p = float(settings.temperature), float(settings.top_p)
        else:  # greedy: neutral sampling knobs (None would be refilled from the model's own defaults
            # on transformers 5, which then warns that they are ignored)
            gc.temperature, gc.top_p, gc.top_k = 1.0, 1.0, 50
        return gc

    def _note(self, callbacks: Callbacks, text: str, logged: bool = False) -> None:
        """Say ``text`` once per critic: in the console and on the node (on_status)."""
        if text in self._notes_shown:
            return
        self._notes_shown.add(text)
        if not logged:
            log.warning("RationalRewards: %s", text)
        if callbacks.on_status:
            callbacks.on_status(text, None)

    def _generate_fitting(self, chats, offset, device, settings, callbacks) -> list[Generation]:
        """Compiled decoding splits a batch that does not fit memory (halves aligned to the batch buckets);
        a single critique that does not fit decodes the standard way."""
        try:
            return self._generate_batch(chats, offset, device, settings, callbacks)
        except DoesNotFit as e:
            reason = str(e)
        # retried outside the except block: the exception's traceback (and an out-of-memory error behind
        # it) would keep the failed attempt's frames, and the tensors they hold, alive during the retry
        if len(chats) == 1:
            self._note(callbacks, f"compiled decoding: a critique does not fit ({reason}); decoding it at standard speed")
            return self._generate_batch(chats, offset, device, settings, callbacks, compiled=False)
        head = 1 << ((len(chats) - 1).bit_length() - 1)  # the largest power of two below len(chats)
        return (self._generate_fitting(chats[:head], offset, device, settings, callbacks)
                + self._generate_fitting(chats[head:], offset + head, device, settings, callbacks))

    def _generate_batch(self, chats, offset, device, settings, callbacks, compiled=True) -> list[Generation]:
        import torch
        from transformers import StoppingCriteriaList

        t0 = time.perf_counter()
        inputs = self.encode(chats, device)
        prompt_len = inputs["input_ids"].shape[1]
        watch = _Watch(self, prompt_len, offset, len(chats), int(settings.max_new_tokens), callbacks)
        dev = torch.device(device)
        gc = self.generation_config(settings)
        extra = gc.update(**self.generate_kwargs)  # generation options go into the config, the rest to the model
        if _generate_takes_model_defaults(self.model):
            # transformers 4.5x replaces every setting equal to a library default (do_sample=False,
            # top_p=1.0, ...) with the model's own (do_sample=True, top_p=0.8): greedy would sample.
            extra.setdefault("use_model_defaults", False)
        decoder = self.decoder if compiled and self.speed == "compiled" else None
        if decoder is not None:
            unsupported = decoder.unsupported(gc, extra)
            if unsupported:
                self._note(callbacks, f"compiled decoding does not apply {', '.join(unsupported)}; "
                           "those critiques decode at standard speed")
                decoder = None
            else:
                decoder.check_fits(len(chats), prompt_len, int(settings.max_new_tokens), dev)  # DoesNotFit
        with torch.random.fork_rng(devices=[dev.index or 0] if dev.type == "cuda" else []):
            torch.manual_seed(int(settings.seed))
            with torch.inference_mode():
                seqs = None
                if decoder is not None:
                    try:
                        seqs = decoder.generate(inputs, gc, extra, self._eos_ids, self._pad_id, watch,
                                                callbacks.on_status)
                    except CompileFailed as e:
                        self._note(callbacks, f"compiled decoding failed and is off for this critic ({e}); "
                                   "decoding at standard speed")
                        watch = _Watch(self, prompt_len, offset, len(chats), int(settings.max_new_tokens), callbacks)
                        torch.manual_seed(int(settings.seed))
                if seqs is None:
                    seqs = self.model.generate(**inputs, generation_config=gc,
                                               stopping_criteria=StoppingCriteriaList([watch]), **extra)
        if watch.interrupted:
            raise CritiqueInterrupted(
                f"critique cancelled after {watch.steps} of {settings.max_new_tokens} tokens")
        seconds = (time.perf_counter() - t0) / len(chats)
        results = []
        for j, row in enumerate(seqs[:, prompt_len:].tolist()):
            ids, finished = self._cut_at_eos(row)
            text = self.processor.tokenizer.decode(ids, skip_special_tokens=True)
            if callbacks.on_text and watch.texts[j] != text:
                callbacks.on_text(offset + j, text)  # bytes held back at the end (a cut UTF-8 character)
            results.append(Generation(text=text, truncated=not finished and len(row) >= settings.max_new_tokens,
                                      n_tokens=len(ids), seconds=seconds))
        return results

    def _cut_at_eos(self, ids: list[int]) -> tuple[list[int], bool]:
        for k, t in enumerate(ids):
            if t in self._eos_ids:
                return ids[:k], True
        return ids, False


class _Watch:
    """Called by ``generate`` after every token: polls the interrupt callback (stopping the whole
    batch within one token), reports token progress and streams each item's text so far.

    Streaming decodes only the tokens since the last complete character, so its cost per token does
    not grow with the answer (a byte-level token can end inside a multi-byte character: it waits)."""

    def __init__(self, critic: LocalCritic, prompt_len: int, offset: int, n: int, max_new: int, callbacks: Callbacks):
        self.critic, self.prompt_len, self.offset, self.n, self.max_new = critic, prompt_len, offset, n, max_new
        self.cb = callbacks
        self.interrupted = False
        self.steps = 0
        self.texts = [""] * n
        self.pending: list[list[int]] = [[] for _ in range(n)]
        self.done = [False] * n

    def __call__(self, input_ids, scores=None, **kwargs):
        import torch

        stop = self.step(input_ids.shape[1] - self.prompt_len, input_ids[:, -1].tolist() if self.cb.on_text else None)
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def step(self, steps: int, last: list[int] | None) -> bool:
        """After token ``steps`` (``last``: each row's newest token): stream, report progress, poll the
        interrupt; True means stop. The compiled decoder calls this directly."""
        self.steps = steps
        if self.cb.on_text and last is not None:
            self._stream(last)
        if self.cb.on_tokens:
            self.cb.on_tokens(self.steps, self.max_new)
        stop = bool(self.cb.is_interrupted and self.cb.is_interrupted())
        self.interrupted = self.interrupted or stop
        return stop

    def _stream(self, last: list[int]) -> None:
        tok = self.critic.processor.tokenizer
        for i, t in enumerate(last):
            if self.done[i]:
                continue
            if t in self.critic._eos_ids:
                self.done[i] = True
                continue
            self.pending[i].append(t)
            piece = tok.decode(self.pending[i], skip_special_tokens=True)
            if piece.endswith("\ufffd") and len(self.pending[i]) < 8:
                continue  # an unfinished UTF-8 character: wait for its next byte
            self.texts[i] += piece
            self.pending[i] = []
            self.cb.on_text(self.offset + i, self.texts[i])
