"""A diffusers pipeline as the loop engine's Generator (``generate(prompt, seed) -> [PIL images]``).

``load_pipeline`` turns ``--generator DIR|HF_ID`` into a pipeline: text-to-image through
``AutoPipelineForText2Image``; with a source image through ``AutoPipelineForImage2Image``, or, when the
folder declares an editing pipeline AutoPipeline does not map (InstructPix2Pix, Qwen-Image-Edit,
Kontext, ...), through ``DiffusionPipeline`` with the class the folder's model_index.json names.
Repo ids are downloaded by diffusers on first use into ``<models folder>/diffusers`` (diffusers
fetches only the files the pipeline needs). Device auto: cuda when available, else cpu; dtype auto:
fp16 on cuda, fp32 on cpu.
"""
from __future__ import annotations

import inspect
import json
import os
from pathlib import Path
from typing import Any

from ..models.store import hub_offline, is_repo_id
from . import UsageError

#: The default ``--generator``: small (about 1.3 B parameters with its text encoder) and distilled for
#: 1-4 steps, so a first run works on a modest GPU (512x512 in well under a second) and even on a CPU.
DEFAULT_GENERATOR = "stabilityai/sd-turbo"
#: Sampler settings a model needs to give sensible images when --steps/--guidance are not given
#: (sd-turbo is distilled for few steps and no classifier-free guidance). Other models use their
#: pipeline's own defaults.
MODEL_DEFAULTS = {DEFAULT_GENERATOR: {"steps": 4, "guidance": 0.0}}


def _dtype_kwarg() -> str:
    """diffusers renamed ``torch_dtype=`` to ``dtype=`` (and warns on the old name)."""
    try:
        from diffusers.utils import deprecation_utils

        return "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
    except ImportError:
        return "torch_dtype"


def resolve_device_dtype(device: str = "auto", dtype: str = "auto") -> tuple[str, Any]:
    """("cuda"/"cpu"/..., torch dtype): auto device is cuda when available; auto dtype fp16 on cuda, fp32 on cpu."""
    import torch

    from ..models.backends.local_options import resolve_device
    from ..models.errors import OptionError

    try:
        dev = resolve_device(device)
    except OptionError as e:
        raise UsageError(f"--device: {e}") from None
    names = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
    if dtype == "auto":
        return dev, torch.float32 if dev == "cpu" else torch.float16
    if dtype not in names:
        raise UsageError(f"--generator-dtype {dtype!r}: use auto, fp16, bf16 or fp32")
    return dev, names[dtype]


def check_pipeline_folder(folder: Path) -> dict:
    """model_index.json of a diffusers pipeline folder; UsageError saying what the folder is instead."""
    index = folder / "model_index.json"
    if not index.is_file():
        cfg = folder / "config.json"
        what = "has no model_index.json"
        if cfg.is_file():
            try:
                mt = json.loads(cfg.read_text(encoding="utf-8")).get("model_type")
            except (OSError, ValueError, AttributeError):
                mt = None
            what = ("is a RationalRewards critic (Qwen3-VL), not an image generator" if mt == "qwen3_vl"
                    else "holds a single model (config.json), not a whole pipeline")
        raise UsageError(f"--generator {folder}: not a diffusers pipeline folder ({what}); give a folder "
                         f"saved with save_pretrained (model_index.json, unet/ or transformer/, vae/, ...) or a "
                         f"Hugging Face repo id such as {DEFAULT_GENERATOR}")
    try:
        return json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UsageError(f"--generator {folder}: model_index.json is not readable JSON ({e})") from None


def load_pipeline(spec: str | None, *, edit: bool, device: str, dtype: Any, cache_dir: Path) -> Any:
    """Load the generator pipeline ``spec`` names (folder or repo id) on ``device`` in ``dtype``."""
    spec = (spec or "").strip() or DEFAULT_GENERATOR
    path = Path(spec).expanduser()
    if path.is_dir():
        source, extra = str(path), {}
        declared = str(check_pipeline_folder(path).get("_class_name", ""))
    elif path.exists():
        raise UsageError(f"--generator {spec}: a single file, not a diffusers pipeline folder; give the folder "
                         f"(model_index.json and component folders) or a repo id such as {DEFAULT_GENERATOR}")
    elif is_repo_id(spec):
        source, extra, declared = spec, {"cache_dir": str(cache_dir)}, ""
    else:
        raise UsageError(f"--generator {spec}: no such folder, and not a Hugging Face repo id (owner/name)")
    import diffusers

    kwargs = {_dtype_kwarg(): dtype, **extra}
    classes = [diffusers.AutoPipelineForImage2Image if edit else diffusers.AutoPipelineForText2Image,
               diffusers.DiffusionPipeline]
    if edit and declared and _is_edit_class(declared):
        classes = classes[::-1]  # the folder declares its own editing pipeline: use exactly that
    last: Exception | None = None
    for cls in classes:
        try:
            pipe = cls.from_pretrained(source, **kwargs)
            break
        except ValueError as e:  # AutoPipeline has no mapping for this class: try the declared one
            last = e
        except (OSError, EnvironmentError) as e:
            how = " (HF_HUB_OFFLINE=1 forbids downloading)" if hub_offline() and extra else ""
            raise UsageError(f"--generator {spec}: could not load the pipeline{how}: {e}") from None
    else:
        raise UsageError(f"--generator {spec}: not a loadable diffusers pipeline: {last}")
    if not edit and _needs_image(pipe):
        raise UsageError(f"--generator {spec}: {type(pipe).__name__} edits images; give the image to edit with --source")
    try:
        pipe.to(device)
    except RuntimeError as e:
        raise UsageError(f"--generator {spec}: cannot move the pipeline to {device}: {e}") from None
    return pipe


def _is_edit_class(name: str) -> bool:
    return any(k in name for k in ("Edit", "Kontext", "InstructPix2Pix", "Img2Img", "Inpaint"))


def _call_params(pipe: Any) -> dict[str, inspect.Parameter]:
    return dict(inspect.signature(pipe.__call__).parameters)


def _needs_image(pipe: Any) -> bool:
    p = _call_params(pipe).get("image")
    return p is not None and p.default is inspect.Parameter.empty


class DiffusersGenerator:
    """The loop engine's Generator over a loaded diffusers pipeline.

    ``generate(prompt, seed)`` returns a list with one PIL image, made with a CPU ``torch.Generator``
    seeded with ``seed`` (the same seed gives the same image on any device). ``steps``, ``guidance``,
    ``width``, ``height`` and ``strength`` are passed only when set and only when the pipeline takes
    them; ``source`` (PIL) is the image an edit pipeline edits, and tells the loop to critique edits.
    """

    def __init__(self, pipe: Any, *, name: str, steps: int | None = None, guidance: float | None = None,
                 width: int | None = None, height: int | None = None, source: Any = None,
                 strength: float | None = None, progress: bool = True):
        self.pipe = pipe
        self.name = name
        self.source = source
        self._params = _call_params(pipe)
        wanted = {"num_inference_steps": steps, "guidance_scale": guidance, "width": width, "height": height,
                  "strength": strength}
        self.call_kwargs = {k: v for k, v in wanted.items() if v is not None and k in self._params}
        if hasattr(pipe, "set_progress_bar_config"):
            pipe.set_progress_bar_config(disable=not progress, leave=False)

    def generate(self, prompt: str, seed: int) -> list[Any]:
        """One image for ``prompt`` with ``seed``."""
        import torch

        kwargs = dict(self.call_kwargs)
        if self.source is not None and "image" in self._params:
            kwargs["image"] = self.source
        out = self.pipe(prompt=prompt, generator=torch.Generator("cpu").manual_seed(int(seed)), **kwargs)
        return list(out.images)

    def token_window(self) -> tuple[int | None, Any]:
        """(token limit, counter) of a CLIP-style text encoder (77 tokens), else (None, None), so the
        refine policy can warn when a refined prompt would be cut by the text encoder."""
        tok = getattr(self.pipe, "tokenizer", None)
        limit = getattr(tok, "model_max_length", None)
        if tok is None or not isinstance(limit, int) or limit > 512:
            return None, None
        return limit, lambda text: len(tok(text).input_ids)


def describe_settings(gen: DiffusersGenerator) -> str:
    """The sampler settings in effect, for the run's first line."""
    shown = ", ".join(f"{k}={v}" for k, v in gen.call_kwargs.items()) or "pipeline defaults"
    return f"{type(gen.pipe).__name__} ({shown})"


def default_settings(spec: str | None) -> dict[str, Any]:
    """Steps/guidance the named generator needs when the user gives none."""
    return dict(MODEL_DEFAULTS.get((spec or DEFAULT_GENERATOR).strip(), {}))


def generator_cache_dir(models_root: Path) -> Path:
    """Where diffusers downloads generator repos: ``<models folder>/diffusers``."""
    return Path(os.fspath(models_root)) / "diffusers"
