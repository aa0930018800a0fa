"""The critic backend interface, shared by the in-process (transformers) and remote (HTTP) critics.

A backend implements two primitives: ``_generate`` (answer a batch of chat requests with text) and
``identity`` (a string that changes when a different model or server would answer differently). This
base class does everything else the same way for both: image intake, prompt/source broadcasting,
request building, the bounded critique cache, parsing, and the public ``critique`` / ``compare`` /
``generate_text`` methods that nodes, the loop engine and the command line call.
"""
from __future__ import annotations

import hashlib
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

from ..format.critique import Comparison, Critique
from ..format.parser import parse_comparison, parse_critique
from ..format.requests import ChatRequest, Template, build_request, load_template
from ..errors import CritiqueInterrupted, ImageInputError
from ..images import DEFAULT_MAX_PIXELS, broadcast, image_digest, to_pil_list


@dataclass(frozen=True)
class GenerationSettings:
    """How the critic generates. Defaults follow upstream: temperature 0.1, seeded, 2048 new tokens.

    ``temperature == 0`` or ``greedy=True`` decodes greedily (deterministic, and batch results then
    equal one-at-a-time results).
    """

    max_new_tokens: int = 2048
    temperature: float = 0.1
    top_p: float = 1.0
    greedy: bool = False
    seed: int = 42
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not 1 <= int(self.max_new_tokens) <= 32768:
            raise ValueError(f"max_new_tokens must be 1-32768, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.max_pixels < 16 * 16:
            raise ValueError(f"max_pixels must be at least 256, got {self.max_pixels}")

    @property
    def do_sample(self) -> bool:
        return not self.greedy and self.temperature > 0

    def key(self) -> str:
        return repr(sorted(asdict(self).items()))


@dataclass
class Callbacks:
    """Hooks a caller passes to follow and stop generation. All optional.

    on_tokens(done, total): tokens generated so far in the current generate call / max_new_tokens.
    on_text(index, text):   the answer for item ``index`` of the call, as streamed so far.
    on_item(done, total):   items (images) finished so far.
    is_interrupted():       polled once per generated token; returning True stops generation and
                            raises CritiqueInterrupted (the model stays usable).
    on_status(text, frac):  what the backend is doing besides answering, for the user: e.g. compiling
                            its decoder (once), with ``frac`` the share of that phase done so far
                            (0-1, called every half second while it lasts) or None for a note.
    """

    on_tokens: Callable[[int, int], None] | None = None
    on_text: Callable[[int, str], None] | None = None
    on_item: Callable[[int, int], None] | None = None
    is_interrupted: Callable[[], bool] | None = None
    on_status: Callable[[str, float | None], None] | None = None

    def check_interrupt(self) -> None:
        if self.is_interrupted is not None and self.is_interrupted():
            raise CritiqueInterrupted("critique cancelled")


@dataclass(frozen=True)
class Generation:
    """The raw answer to one request."""

    text: str
    truncated: bool = False  # stopped by max_new_tokens (or the server's finish_reason "length")
    n_tokens: int = 0
    seconds: float = 0.0


class CritiqueCache:
    """A bounded LRU of parsed results keyed by image bytes + prompt + template + settings + model."""

    def __init__(self, max_items: int = 256):
        self.max_items = max(0, int(max_items))
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
            self.misses += 1
            return None

    def put(self, key: str, value: Any) -> None:
        if self.max_items == 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.max_items:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class CriticBackend(ABC):
    """Base of every critic. Subclasses implement ``_generate`` and ``identity``."""

    def __init__(self, cache_size: int = 256):
        self.cache = CritiqueCache(cache_size)

    # -- what a backend implements -----------------------------------------------------------------
    @property
    @abstractmethod
    def identity(self) -> str:
        """Changes whenever another model/server would answer differently (part of the cache key)."""

    @abstractmethod
    def _generate(
        self, messages: Sequence[list[dict[str, Any]]], settings: GenerationSettings, callbacks: Callbacks
    ) -> list[Generation]:
        """Answer each chat (list of messages; image parts hold RGB PIL images), in order."""

    def close(self) -> None:
        """Release what the backend holds (model memory, connections). Safe to call twice."""

    # -- public API --------------------------------------------------------------------------------
    def critique(
        self,
        images: Any,
        prompt: str | Sequence[str],
        *,
        sources: Any = None,
        settings: GenerationSettings | None = None,
        callbacks: Callbacks | None = None,
        template: Template | str | None = None,
    ) -> list[Critique]:
        """One Critique per image. ``prompt``: one string for all or one per image; ``sources``
        (edit critique): one source image for all or one per image."""
        settings = settings or GenerationSettings()
        pils = to_pil_list(images, "image", settings.max_pixels)
        prompts = broadcast(_as_list(prompt), len(pils), "prompt")
        kind = "t2i"
        groups = [[p] for p in pils]
        if sources is not None:
            kind = "edit"
            srcs = broadcast(to_pil_list(sources, "source_image", settings.max_pixels), len(pils), "source_image")
            groups = [[s, p] for s, p in zip(srcs, pils)]
        reqs = self._requests(kind, prompts, groups, template)
        return self._run(reqs, settings, callbacks, lambda g, k: parse_critique(g.text, k, truncated=g.truncated))

    def compare(
        self,
        images_a: Any,
        images_b: Any,
        prompt: str | Sequence[str],
        *,
        sources: Any = None,
        settings: GenerationSettings | None = None,
        callbacks: Callbacks | None = None,
        template: Template | str | None = None,
    ) -> list[Comparison]:
        """One Comparison per (A, B) pair. Batches of A and B must match (or one of them be 1)."""
        settings = settings or GenerationSettings()
        a = to_pil_list(images_a, "image_a", settings.max_pixels)
        b = to_pil_list(images_b, "image_b", settings.max_pixels)
        n = max(len(a), len(b))
        a, b = broadcast(a, n, "image_a"), broadcast(b, n, "image_b")
        prompts = broadcast(_as_list(prompt), n, "prompt", "image pairs")
        kind = "pairwise-t2i"
        groups = [[x, y] for x, y in zip(a, b)]
        if sources is not None:
            kind = "pairwise-edit"
            srcs = broadcast(to_pil_list(sources, "source_image", settings.max_pixels), n, "source_image")
            groups = [[s, x, y] for s, x, y in zip(srcs, a, b)]
        reqs = self._requests(kind, prompts, groups, template)
        return self._run(reqs, settings, callbacks, lambda g, k: parse_comparison(g.text, k, truncated=g.truncated))

    def generate_text(
        self,
        messages: list[dict[str, Any]],
        settings: GenerationSettings | None = None,
        callbacks: Callbacks | None = None,
    ) -> Generation:
        """Free generation for one chat (text-only or with images); used by the prompt rewriter."""
        settings = settings or GenerationSettings()
        callbacks = callbacks or Callbacks()
        callbacks.check_interrupt()
        return self._generate([messages], settings, callbacks)[0]

    # -- shared machinery --------------------------------------------------------------------------
    def _requests(self, kind: str, prompts: list[str], groups: list[list[Any]], template) -> list[ChatRequest]:
        if template is not None and not isinstance(template, Template):
            template = load_template(kind, template)
        out = []
        for i, (p, g) in enumerate(zip(prompts, groups)):
            if not isinstance(p, str):
                raise ImageInputError(f"prompt[{i}] must be text, got {type(p).__name__}")
            out.append(build_request(kind, p, g, template))
        return out

    def _cache_key(self, req: ChatRequest, settings: GenerationSettings) -> str:
        h = hashlib.sha256()
        h.update(self.identity.encode())
        h.update(settings.key().encode())
        h.update(repr([_strip_images(m) for m in req.messages]).encode())
        h.update(image_digest(req.images).encode())
        return h.hexdigest()

    def _run(self, reqs: list[ChatRequest], settings: GenerationSettings, callbacks: Callbacks | None, parse):
        callbacks = callbacks or Callbacks()
        callbacks.check_interrupt()
        results: list[Any] = [None] * len(reqs)
        keys = [self._cache_key(r, settings) for r in reqs]
        todo = []
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                results[i] = hit
            else:
                todo.append(i)
        done = len(reqs) - len(todo)
        if callbacks.on_item and done:
            callbacks.on_item(done, len(reqs))
        if todo:
            # Map the backend's per-call indices back to the caller's image indices.
            inner = Callbacks(
                on_tokens=callbacks.on_tokens,
                on_text=(lambda j, t: callbacks.on_text(todo[j], t)) if callbacks.on_text else None,
                on_item=(lambda d, _t: callbacks.on_item(done + d, len(reqs))) if callbacks.on_item else None,
                is_interrupted=callbacks.is_interrupted,
                on_status=callbacks.on_status,
            )
            gens = self._generate([reqs[i].messages for i in todo], settings, inner)
            for i, g in zip(todo, gens):
                results[i] = parse(g, reqs[i].kind)
                self.cache.put(keys[i], results[i])
        return results


def _as_list(prompt: Any) -> list[Any]:
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, (list, tuple)):
        if not prompt:
            raise ImageInputError("prompt is an empty list: give one prompt, or one per image")
        return list(prompt)
    raise ImageInputError(f"prompt must be text or a list of texts, got {type(prompt).__name__}")


def _strip_images(message: dict[str, Any]) -> Any:
    content = message.get("content")
    if isinstance(content, list):
        content = [{"type": "image"} if p.get("type") == "image" else p for p in content]
    return (message.get("role"), content)


def now() -> float:
    return time.perf_counter()
