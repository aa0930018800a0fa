"""Load options of the in-process critic and the device-placement hook, checked before any weight is read.

Every option a machine cannot honour is an OptionError naming the option and the fix, raised by
``resolve_options`` before loading starts: a crash 17 GB into a load, or a CUDA error at the first
generate, is what users of other packs report.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

from ..errors import OptionError

DTYPES = {"auto": "auto", "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
          "half": "fp16", "fp32": "fp32", "float32": "fp32", "float": "fp32"}
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
QUANTIZATIONS = {"none": "none", "": "none", "8bit": "8bit", "8-bit": "8bit", "int8": "8bit",
                 "4bit": "4bit", "4-bit": "4bit", "nf4": "4bit"}
#: Module names kept in 16-bit when quantizing: the whole vision tower (patch embedding, blocks, merger,
#: deepstack mergers all live under ``visual``) and the output head. Quantizing a SigLIP-style tower breaks it.
UNQUANTIZED_MODULES = ["visual", "lm_head"]


def _torch():
    import torch

    return torch


def cuda_available() -> bool:
    """Whether CUDA (or ROCm) can run here. A function so tests can stand in for a GPU machine."""
    return _torch().cuda.is_available()


def bf16_supported(device: Any) -> bool:
    """Whether ``device`` computes in bfloat16 at full speed (CPU: yes, correct if slow; CUDA: Ampere+)."""
    torch = _torch()
    dev = torch.device(device)
    if dev.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return dev.type in ("cpu", "mps", "xpu")


def module_available(name: str) -> bool:
    """Whether an optional package (bitsandbytes, flash_attn) is importable, without importing it."""
    return importlib.util.find_spec(name) is not None


@dataclass(frozen=True)
class LoadOptions:
    """Options after checking: explicit values only (no "auto")."""

    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "bf16" | "fp16" | "fp32"
    attention: str
    quantization: str  # "none" | "8bit" | "4bit"

    @property
    def torch_dtype(self):
        torch = _torch()
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype]

    def describe(self) -> str:
        return f"{self.dtype}/{self.attention}/{self.quantization}@{self.device}"


def resolve_device(device: str | None) -> str:
    """"auto" -> "cuda" when CUDA runs here, else "cpu"; explicit devices are checked."""
    d = (device or "auto").strip().lower()
    if d == "auto":
        return "cuda" if cuda_available() else "cpu"
    if d == "gpu":
        d = "cuda"
    if d.startswith("cuda"):
        if not cuda_available():
            raise OptionError(f"device={device!r}: CUDA is not available on this machine (torch "
                              f"{_torch().__version__}); use device 'auto' or 'cpu'")
        if ":" in d:
            try:
                idx = int(d.split(":", 1)[1])
            except ValueError:
                raise OptionError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
            n = _torch().cuda.device_count()
            if idx >= n:
                raise OptionError(f"device={device!r}: this machine has {n} CUDA device(s); use cuda:0..cuda:{n - 1}")
        return d
    if d == "cpu":
        return d
    if d == "mps":
        if not _torch().backends.mps.is_available():
            raise OptionError(f"device={device!r}: Apple MPS is not available here; use 'auto' or 'cpu'")
        return d
    raise OptionError(f"device={device!r} is not a device; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")


def resolve_options(device: str = "auto", dtype: str = "auto", attention: str = "sdpa",
                    quantization: str = "none") -> LoadOptions:
    """Check every option against this machine and fill in "auto"; raise OptionError on the first bad one."""
    dev = resolve_device(device)
    dev_type = dev.split(":")[0]
    key = str(dtype).strip().lower()
    if key not in DTYPES:
        raise OptionError(f"dtype={dtype!r} is not a dtype; use auto, bf16, fp16 or fp32")
    dt = DTYPES[key]
    if dt == "auto":
        # CPU: fp32 (bf16 matmuls on CPUs without AMX are several times slower, fp16 slower still)
        dt = "fp32" if dev_type == "cpu" else ("bf16" if bf16_supported(dev) else "fp16")
    elif dt == "bf16" and not bf16_supported(dev):
        raise OptionError(f"dtype='bf16': device {dev} has no bfloat16 support (GPUs before Ampere); "
                          "use dtype fp16 or auto")
    att = str(attention).strip().lower()
    if att not in ATTENTIONS:
        raise OptionError(f"attention={attention!r} is not supported; use {', '.join(ATTENTIONS)}")
    if att == "flash_attention_2":
        if dev_type != "cuda":
            raise OptionError(f"attention='flash_attention_2' needs a CUDA GPU, but the device is {dev}; "
                              "use attention sdpa")
        if not module_available("flash_attn"):
            raise OptionError("attention='flash_attention_2' needs the flash-attn package, which is not installed; "
                              "use attention sdpa (about as fast on recent torch) or `pip install flash-attn`")
        if dt == "fp32":
            raise OptionError("attention='flash_attention_2' runs in bf16/fp16 only; set dtype bf16, fp16 or auto")
    qkey = str(quantization or "none").strip().lower()
    if qkey not in QUANTIZATIONS:
        raise OptionError(f"quantization={quantization!r} is not supported; use none, 8bit or 4bit")
    q = QUANTIZATIONS[qkey]
    if q != "none":
        if dev_type != "cuda":
            raise OptionError(f"quantization={q!r} (bitsandbytes) needs a CUDA GPU, but the device is {dev}; "
                              "use quantization none")
        if not module_available("bitsandbytes"):
            raise OptionError(f"quantization={q!r} needs the bitsandbytes package, which is not installed; "
                              "`pip install bitsandbytes` or use quantization none")
        if dt == "fp32":
            dt = "bf16" if bf16_supported(dev) else "fp16"  # compute dtype of the quantized layers
    return LoadOptions(device=dev, dtype=dt, attention=att, quantization=q)


def quantization_config(options: LoadOptions):
    """The BitsAndBytesConfig for ``options`` (None without quantization); vision tower + lm_head unquantized."""
    if options.quantization == "none":
        return None
    from transformers import BitsAndBytesConfig

    if options.quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(UNQUANTIZED_MODULES))
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=options.torch_dtype, llm_int8_skip_modules=list(UNQUANTIZED_MODULES),
    )


class DevicePlacement:
    """Where the critic's model lives and runs: the hook that lets ComfyUI's memory manager own it.

    ``LocalCritic`` calls, per critique call (or once per ``critic.resident()`` block):

    * ``prepare(model) -> torch.device`` before generating: make sure the model is on its compute
      device (load it there if it was offloaded) and return the device the inputs must go to;
    * ``release(model)`` after generating: the model may be offloaded now (or left where it is and
      freed later, when another model needs the memory);
    * ``close(model)`` when the critic is closed: forget the model for good.

    ``initial_device`` is where ``from_pretrained`` puts the weights (quantized models always load on
    the compute device, since bitsandbytes weights cannot be moved); ``device`` is the compute device
    (it decides dtype "auto" and the option checks).

    This default keeps the model on its own device for its whole life. ``nodes/`` supplies the ComfyUI
    implementation: load on the offload device, wrap the model in a ``torch.nn.Module`` holder inside a
    ``comfy.model_patcher.ModelPatcher`` on first ``prepare``, and call
    ``comfy.model_management.load_models_gpu([patcher], force_full_load=True)`` in every ``prepare``,
    so ComfyUI can free the critic for a diffusion model and bring it back. ``models/`` never imports comfy.
    """

    def __init__(self, device: str = "cpu"):
        self.device = device

    @property
    def initial_device(self) -> str:
        return self.device

    def prepare(self, model: Any):
        return _torch().device(self.device)

    def release(self, model: Any) -> None:
        return None

    def close(self, model: Any) -> None:
        if str(self.device).startswith("cuda"):
            _torch().cuda.empty_cache()
