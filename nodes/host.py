"""The few ComfyUI services the nodes use, in one place: interrupt, progress, streamed text, the model
folder, and the memory manager placement for the local critic. All ComfyUI imports are lazy."""
from __future__ import annotations

import os
import weakref
from typing import Any, Callable

import torch

from ..models.backends.base import Callbacks
from ..models.backends.local_options import DevicePlacement
from ..models.errors import CritiqueInterrupted

FOLDER_NAME = "rationalrewards"
#: Stream the critique onto the node at most every this many tokens (each message is a websocket send).
STREAM_EVERY_TOKENS = 8


def register_model_folder() -> list[str]:
    """Add ``models/rationalrewards`` to ComfyUI's folder registry, merging with whatever
    extra_model_paths.yaml already declared for that name (never overwriting it). Returns the roots."""
    import folder_paths

    default = os.path.join(folder_paths.models_dir, FOLDER_NAME)
    if FOLDER_NAME in folder_paths.folder_names_and_paths:
        paths = folder_paths.folder_names_and_paths[FOLDER_NAME][0]
        if default not in paths:
            folder_paths.add_model_folder_path(FOLDER_NAME, default)
    else:
        folder_paths.folder_names_and_paths[FOLDER_NAME] = ([default], set())
    return folder_paths.get_folder_paths(FOLDER_NAME)


def model_roots() -> list[str]:
    """Every folder registered as ``rationalrewards`` (registering the default first)."""
    return register_model_folder()


def is_interrupted() -> bool:
    import comfy.model_management as mm

    return bool(mm.processing_interrupted())


def raise_interrupt() -> None:
    """Turn our CritiqueInterrupted into ComfyUI's own clean interrupt."""
    import comfy.model_management as mm

    mm.throw_exception_if_processing_interrupted()
    raise mm.InterruptProcessingException()


def send_text(node_id: str | None, text: str) -> None:
    """Show text on the node (PromptServer.send_progress_text); silently skipped without a server."""
    if not node_id:
        return
    try:
        from server import PromptServer

        if PromptServer.instance is not None:
            PromptServer.instance.send_progress_text(text, node_id)
    except Exception:  # a UI message must never fail the critique
        pass


def show_text(node_id: str | None, text: str):
    """Leave ``text`` on the node when it finishes, and in the run's history.

    The frontend shows a node's last progress text on the node itself; a ``ui`` text is stored in the
    history but drawn only by nodes with their own frontend code (core Preview Any), so both are sent."""
    from comfy_api.latest import ui

    send_text(node_id, text)
    return ui.PreviewText(text)


def status_callback(node_id: str | None, bar: Any = None, total: int = 1,
                    done: Callable[[], float] = lambda: 0) -> Callable[[str, float | None], None]:
    """A critic's ``on_status`` for a node: each new message on the node once (the critic logs it to the
    console itself), and the bar moving through the phase (``done()`` items before it, of ``total``)."""
    shown = {"text": None}

    def on_status(text: str, fraction: float | None) -> None:
        if text != shown["text"]:
            shown["text"] = text
            send_text(node_id, text)
        if bar is not None and fraction is not None:
            import comfy.model_management as mm

            try:
                bar.update_absolute(done() + min(max(fraction, 0.0), 0.99), total)
            except mm.InterruptProcessingException:
                # ComfyUI's progress hook raises on Cancel and clears the flag; this may run on the critic's
                # progress thread, so set it again for the critique to stop at its next token
                mm.interrupt_current_processing(True)

    return on_status


def node_callbacks(node_id: str | None, n_items: int, header: Callable[[int], str] | None = None) -> Callbacks:
    """Callbacks that move the node's progress bar, stream the answer onto the node, poll Cancel and
    show the critic's status (e.g. its one-time compile) with the bar moving meanwhile."""
    import comfy.utils

    bar = comfy.utils.ProgressBar(max(1, n_items), node_id=node_id)
    last = {"tokens": -STREAM_EVERY_TOKENS, "items": 0}

    def on_text(i: int, text: str) -> None:
        n = len(text)
        if n - last["tokens"] < STREAM_EVERY_TOKENS * 3:
            return
        last["tokens"] = n
        prefix = header(i) if header else (f"image {i + 1}/{n_items}\n" if n_items > 1 else "")
        send_text(node_id, prefix + text)

    def on_item(done: int, total: int) -> None:
        last["tokens"] = -STREAM_EVERY_TOKENS
        last["items"] = done
        bar.update_absolute(done, total)

    return Callbacks(on_text=on_text, on_item=on_item, is_interrupted=is_interrupted,
                     on_status=status_callback(node_id, bar, max(1, n_items), lambda: last["items"]))


class _Holder(torch.nn.Module):
    """A plain module around the HF model: ModelPatcher assigns ``.device``, which HF models refuse."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model


def _unload_notifier(placement_ref: "weakref.ref[ComfyPlacement]") -> Callable[[], None]:
    """Tell the placement (if it still exists: a weak reference, so ComfyUI's patcher never keeps the
    critic alive) that its weights left the compute device."""
    def notify() -> None:
        placement = placement_ref()
        if placement is not None and placement.on_unload is not None:
            placement.on_unload()
    return notify


def _on_detach(patcher, unpatch_all=True) -> None:
    """ComfyUI's ON_DETACH callback. ``unpatch_all`` False is load_models_gpu re-listing a model that is
    already loaded (its weights stay where they are); True is an unload: the weights leave the GPU."""
    notify = getattr(patcher, "_rr_unloaded", None)  # (a clone of ours carries the callback, not the notifier)
    if unpatch_all and notify is not None:
        notify()


_PATCHER_CLASS: list = []


def _patcher_class():
    """ComfyUI's ModelPatcher, telling the placement when ComfyUI moves part of the critic off the GPU
    (``partially_unload``, which frees room for another model without a detach)."""
    if not _PATCHER_CLASS:
        from comfy.model_patcher import ModelPatcher

        class CriticPatcher(ModelPatcher):
            def partially_unload(self, *args, **kwargs):
                notify = getattr(self, "_rr_unloaded", None)
                if notify is not None:
                    notify()
                return super().partially_unload(*args, **kwargs)

        _PATCHER_CLASS.append(CriticPatcher)
    return _PATCHER_CLASS[0]


class ComfyPlacement(DevicePlacement):
    """The local critic under ComfyUI's memory manager.

    The weights load on the offload device (CPU); on every ``prepare`` the model is (re)loaded with
    ``load_models_gpu([patcher], force_full_load=True)``, so ComfyUI can move it out for a diffusion
    model and bring it back. ``keep_resident=False`` unloads it after each use; True leaves it to
    ComfyUI, which frees it only when another model needs the memory.
    """

    def __init__(self, keep_resident: bool = True, device: str = "auto"):
        import comfy.model_management as mm

        load = mm.get_torch_device() if device == "auto" else torch.device("cpu")
        super().__init__(str(load))
        self.load_device = load
        self.offload_device = mm.unet_offload_device() if device == "auto" else torch.device("cpu")
        self.keep_resident = keep_resident
        self.patcher = None

    @property
    def initial_device(self) -> str:
        return str(self.offload_device)

    def _patcher(self, model):
        if self.patcher is None:
            import comfy.model_management as mm

            holder = _Holder(model)
            self.patcher = _patcher_class()(holder, load_device=self.load_device, offload_device=self.offload_device,
                                            size=mm.module_size(holder))
            self.patcher._rr_unloaded = _unload_notifier(weakref.ref(self))
            try:  # ComfyUI unloading the critic (for a diffusion model, /free, keep_resident off) frees what
                from comfy.patcher_extension import CallbacksMP  # lives beside its weights (the decoder's cache)

                self.patcher.add_callback(CallbacksMP.ON_DETACH, _on_detach)
            except (ImportError, AttributeError):  # a ComfyUI before patcher callbacks: freed at close instead
                pass
        return self.patcher

    def prepare(self, model):
        import comfy.model_management as mm

        patcher = self._patcher(model)
        mm.load_models_gpu([patcher], force_full_load=True)
        return patcher.load_device

    def release(self, model) -> None:
        if not self.keep_resident:
            self._unload()

    def close(self, model) -> None:
        self._unload()
        self.patcher = None

    def make_room(self, nbytes: int, device) -> int | None:
        """Let ComfyUI unload other models until ``nbytes`` are free on ``device`` beside the critic (the
        compiled decoder's static cache); returns the free bytes ComfyUI then sees."""
        import comfy.model_management as mm

        if torch.device(device).type == "cpu":
            return None
        ours = [lm for lm in mm.current_loaded_models if lm.model is self.patcher]
        mm.free_memory(nbytes + mm.extra_reserved_memory(), device, keep_loaded=ours)
        return int(mm.get_free_memory(device))

    def _unload(self) -> None:
        """Take our patcher out of ComfyUI's loaded models.

        ComfyUI 0.23+ has a public per-model helper, ``unload_model_and_clones``; it frees only the
        GPU devices it knows, so a critic loaded on the CPU beside a GPU stays listed. 0.3.64 has no
        such helper. In both cases what is still listed is unloaded by hand, the way ComfyUI's own
        ``free_memory`` does it (``model_unload`` then out of ``current_loaded_models``)."""
        if self.patcher is None:
            return
        import comfy.model_management as mm

        unload = getattr(mm, "unload_model_and_clones", None)
        if unload is not None:
            unload(self.patcher, unload_additional_models=False, all_devices=True)
        if any(m is self.patcher for m in mm.loaded_models()):
            for i, loaded in enumerate(list(mm.current_loaded_models)):
                if loaded.model is self.patcher:
                    loaded.model_unload()
                    mm.current_loaded_models.pop(i)
                    break
        mm.soft_empty_cache()


def run_interruptible(fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a CritiqueInterrupted becomes ComfyUI's InterruptProcessingException."""
    try:
        return fn()
    except CritiqueInterrupted:
        raise_interrupt()
