"""Load options of the in-process critic and the device-placement hook, checked before any weight is read.

Every option a machine cannot honour is an OptionError naming the option and the fix, raised by
``resolve_options`` before loading starts: a crash 17 GB into a load, or a CUDA error at the first
generate, is what users of other packs report.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import dataclass, field
from typing import Any

from ..errors import OptionError

DTYPES = {"auto": "auto", "bf16": "bf16", "bfloat16": "bf16", "fp16": "fp16", "float16": "fp16",
          "half": "fp16", "fp32": "fp32", "float32": "fp32", "float": "fp32"}
ATTENTIONS = ("sdpa", "eager", "flash_attention_2")
QUANTIZATIONS = {"none": "none", "": "none", "8bit": "8bit", "8-bit": "8bit", "int8": "8bit",
                 "4bit": "4bit", "4-bit": "4bit", "nf4": "4bit", "fp8": "fp8", "float8": "fp8"}
#: Module names kept in 16-bit when quantizing: the whole vision tower (patch embedding, blocks, merger,
#: deepstack mergers all live under ``model.visual``) and the output head. Quantizing a SigLIP-style tower
#: breaks it. The full prefix matters: transformers 5 matches these from the start of a module's name,
#: so a bare "visual" would not protect ``model.visual.*`` there (4.57 matches substrings; both work).
UNQUANTIZED_MODULES = ["model.visual", "lm_head"]
#: ``speed``: auto = compiled on a CUDA GPU where it can run, else standard.
SPEEDS = ("auto", "compiled", "standard")
#: Oldest torch whose compiler the compiled decoder is written for (nn-module inlining, static addresses).
MIN_TORCH_FOR_COMPILE = (2, 5)


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
    """Whether an optional package (bitsandbytes, flash_attn, torchao, triton) is importable, without importing it."""
    return importlib.util.find_spec(name) is not None


def gpu_info(device: Any) -> tuple[str, tuple[int, int]]:
    """(name, compute capability) of a CUDA device; a function so tests can stand in for a GPU."""
    torch = _torch()
    return torch.cuda.get_device_name(device), tuple(torch.cuda.get_device_capability(device))


def cpp_compiler() -> str | None:
    """The C++ compiler torch.compile would use on the CPU ($CXX, else g++, clang++, c++ or cl), or None."""
    for name in ([os.environ["CXX"]] if os.environ.get("CXX") else []) + ["g++", "clang++", "c++", "cl"]:
        if shutil.which(name):
            return name
    return None


def _torch_version() -> tuple[int, int]:
    major, minor = _torch().__version__.split("+")[0].split(".")[:2]
    return int(major), int(minor)


@dataclass(frozen=True)
class LoadOptions:
    """Options after checking: explicit values only (no "auto")."""

    device: str  # "cpu", "cuda", "cuda:1", "mps"
    dtype: str  # "bf16" | "fp16" | "fp32"
    attention: str
    quantization: str  # "none" | "8bit" | "4bit" | "fp8"
    speed: str = "standard"  # "compiled" | "standard" (after checking: never "auto")
    #: Why a requested compiled decoding became standard (shown once on the node and in the console).
    speed_note: str | None = field(default=None, compare=False)

    @property
    def torch_dtype(self):
        torch = _torch()
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype]

    def describe(self) -> str:
        return f"{self.dtype}/{self.attention}/{self.quantization}/{self.speed}@{self.device}"


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
                    quantization: str = "none", speed: str = "standard") -> LoadOptions:
    """Check every option against this machine and fill in "auto"; raise OptionError on the first bad one.
    A ``speed`` that cannot run here is not an error: it becomes standard, with ``speed_note`` saying why."""
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
        raise OptionError(f"quantization={quantization!r} is not supported; use none, 8bit, 4bit or fp8")
    q = QUANTIZATIONS[qkey]
    if q == "fp8":
        dt = _check_fp8(dev, dev_type, dt)
    elif q != "none":
        if dev_type != "cuda":
            raise OptionError(f"quantization={q!r} (bitsandbytes) needs a CUDA GPU, but the device is {dev}; "
                              "use quantization none")
        if not module_available("bitsandbytes"):
            raise OptionError(f"quantization={q!r} needs the bitsandbytes package, which is not installed; "
                              "`pip install bitsandbytes` or use quantization none")
        if dt == "fp32":
            dt = "bf16" if bf16_supported(dev) else "fp16"  # compute dtype of the quantized layers
    chosen, note = resolve_speed(speed, dev, att, q)
    return LoadOptions(device=dev, dtype=dt, attention=att, quantization=q, speed=chosen, speed_note=note)


def _check_fp8(dev: str, dev_type: str, dt: str) -> str:
    """fp8 weights (torchao float8, fp8 matmuls): an NVIDIA GPU of compute capability >= 8.9 and torchao."""
    cards = "compute capability 8.9 or newer: RTX 40xx/50xx, L4, L40, H100/H200"
    if dev_type != "cuda":
        raise OptionError(f"quantization='fp8' needs an NVIDIA GPU with fp8 support ({cards}), but the device is "
                          f"{dev}; use quantization none")
    name, cap = gpu_info(dev)
    if getattr(_torch().version, "hip", None):
        raise OptionError(f"quantization='fp8' is for NVIDIA GPUs here; {name} is an AMD GPU: use quantization "
                          "4bit or 8bit (bitsandbytes) or none")
    if tuple(cap) < (8, 9):
        raise OptionError(f"quantization='fp8' needs a GPU with fp8 support ({cards}); {name} has compute "
                          f"capability {cap[0]}.{cap[1]}: use quantization 4bit (bitsandbytes) or none")
    if not module_available("torchao"):
        raise OptionError("quantization='fp8' needs the torchao package, which is not installed: install the "
                          f"torchao built for your torch {_torch().__version__} (torch 2.11+: `pip install torchao`; "
                          "torch 2.9.1: `pip install torchao==0.15.0`), or use quantization none")
    if dt == "fp16":
        raise OptionError("quantization='fp8' computes in bf16 (fp8 row scales need it); set dtype auto or bf16")
    return "bf16"


def compile_blocker(dev: str, attention: str, quantization: str) -> str | None:
    """Why compiled decoding cannot run with these options on this machine; None when it can."""
    dev_type = dev.split(":")[0]
    if dev_type == "mps":
        return "torch.compile does not support Apple MPS well enough for it"
    if dev_type not in ("cuda", "cpu"):
        return f"it is not supported on {dev}"
    if _torch_version() < MIN_TORCH_FOR_COMPILE:
        return f"it needs torch >= {'.'.join(map(str, MIN_TORCH_FOR_COMPILE))} (this is torch {_torch().__version__})"
    if attention == "flash_attention_2":
        return "it runs with sdpa or eager attention, not flash_attention_2"
    if quantization in ("8bit", "4bit"):
        return "bitsandbytes layers are not compiled (fp8 weights are, on GPUs that have fp8)"
    if dev_type == "cuda":
        if not module_available("triton"):
            return ("it needs Triton, which is not installed (usual on Windows: `pip install triton-windows`; "
                    "Linux: `pip install triton`)")
        name, cap = gpu_info(dev)
        if tuple(cap) < (7, 0):
            return f"Triton needs a GPU of compute capability 7.0 or newer; {name} has {cap[0]}.{cap[1]}"
    elif cpp_compiler() is None:
        return "compiling on the CPU needs a C++ compiler (g++ or clang++), and none was found"
    return None


def resolve_speed(speed: str, dev: str, attention: str = "sdpa", quantization: str = "none") -> tuple[str, str | None]:
    """("compiled" | "standard", note). auto: compiled on a CUDA GPU where it can run, standard elsewhere
    (the default off the GPU, no note). compiled: compiled wherever it can run, the CPU included (torch's
    C++ backend); where it cannot, standard with a note naming the reason. OptionError for a bad value."""
    key = str(speed or "auto").strip().lower()
    if key not in SPEEDS:
        raise OptionError(f"speed={speed!r} is not a choice; use {', '.join(SPEEDS)}")
    if key == "standard":
        return "standard", None
    if key == "auto" and dev.split(":")[0] != "cuda":
        return "standard", None
    why = compile_blocker(dev, attention, quantization)
    if why is None:
        return "compiled", None
    if key == "auto":
        return "standard", f"compiled decoding is off: {why}; decoding at standard speed (speed standard hides this note)"
    return "standard", (f"speed='compiled' cannot run here: {why}; decoding at standard speed instead "
                        "(choose speed standard to hide this note)")


def quantization_config(options: LoadOptions):
    """The quantization config for ``options`` (None without quantization): BitsAndBytesConfig for 8bit/4bit,
    TorchAoConfig with float8 weights and activations (row scales) for fp8; vision tower + lm_head stay 16-bit."""
    if options.quantization == "none":
        return None
    if options.quantization == "fp8":
        from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow
        from transformers import TorchAoConfig

        # set_inductor_config=False: leave ComfyUI's process-wide compiler settings as they are
        fp8 = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow(), set_inductor_config=False)
        return TorchAoConfig(fp8, modules_to_not_convert=list(UNQUANTIZED_MODULES))
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

    The placement calls ``on_unload()`` (when set) whenever it takes the weights off the compute device,
    so the compiled decoder frees its static cache with them.

    ``initial_device`` is where ``from_pretrained`` puts the weights (quantized models always load on
    the compute device, since bitsandbytes weights cannot be moved); ``device`` is the compute device
    (it decides dtype "auto" and the option checks).

    This default keeps the model on its own device for its whole life. ``nodes/`` supplies the ComfyUI
    implementation: load on the offload device, wrap the model in a ``torch.nn.Module`` holder inside a
    ``comfy.model_patcher.ModelPatcher`` on first ``prepare``, and call
    ``comfy.model_management.load_models_gpu([patcher], force_full_load=True)`` in every ``prepare``,
    so ComfyUI can free the critic for a diffusion model and bring it back. ``models/`` never imports comfy.
    """

    #: Called (no arguments) when the placement unloads the model from its compute device, so what lives
    #: beside the weights (the compiled decoder's static cache) goes too. Set by ``LocalCritic``.
    on_unload: Any = None

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

    def make_room(self, nbytes: int, device: Any) -> int | None:
        """Free ``nbytes`` of working memory on ``device`` beyond the weights (the compiled decoder's
        static cache) if the owner of other models can; return the free bytes it sees, or None to let
        the caller measure. Here nothing else is managed: None."""
        return None
