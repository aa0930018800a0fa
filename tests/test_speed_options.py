"""The speed and fp8 options: what each machine gets, and the one message that says why (no compiling here)."""
from __future__ import annotations

import pytest
import torch

from rationalrewards.models.backends import local_options
from rationalrewards.models.backends.base import GenerationSettings
from rationalrewards.models.backends.compiled import (BATCH_BUCKETS, CompiledDecoder, DoesNotFit, batch_bucket,
                                                      length_bucket)
from rationalrewards.models.backends.compiled_step import unsupported_settings
from rationalrewards.models.backends.local_options import UNQUANTIZED_MODULES, resolve_options
from rationalrewards.models.errors import OptionError


@pytest.fixture
def gpu(monkeypatch):
    """A stand-in CUDA machine: set ``gpu.name`` / ``gpu.cap`` / ``gpu.missing`` (packages) per test."""
    class Gpu:
        name, cap, missing = "NVIDIA GeForce RTX 4090", (8, 9), set()

    monkeypatch.setattr(local_options, "cuda_available", lambda: True)
    monkeypatch.setattr(local_options, "bf16_supported", lambda dev: True)
    monkeypatch.setattr(local_options, "gpu_info", lambda dev: (Gpu.name, Gpu.cap))
    monkeypatch.setattr(local_options, "module_available", lambda name: name not in Gpu.missing)
    return Gpu


# -- speed ---------------------------------------------------------------------------------------------
def test_auto_is_standard_on_the_cpu_without_a_note():
    o = resolve_options("cpu", speed="auto")
    assert o.speed == "standard" and o.speed_note is None


def test_explicit_compiled_on_the_cpu_compiles_where_a_compiler_is(monkeypatch):
    monkeypatch.setattr(local_options, "cpp_compiler", lambda: "g++")
    assert resolve_options("cpu", speed="compiled").speed == "compiled"
    monkeypatch.setattr(local_options, "cpp_compiler", lambda: None)
    o = resolve_options("cpu", speed="compiled")
    assert o.speed == "standard" and "C++ compiler" in o.speed_note and "speed standard" in o.speed_note


def test_auto_on_a_gpu_is_compiled_and_falls_back_with_a_reason(gpu):
    assert resolve_options("cuda", speed="auto").speed == "compiled"
    gpu.missing = {"triton"}
    o = resolve_options("cuda", speed="auto")
    assert o.speed == "standard"
    assert "Triton" in o.speed_note and "triton-windows" in o.speed_note and "standard speed" in o.speed_note
    o = resolve_options("cuda", speed="compiled")  # asked for explicitly: same fallback, says so
    assert o.speed == "standard" and o.speed_note.startswith("speed='compiled' cannot run here")


@pytest.mark.parametrize("kwargs, reason", [
    ({"attention": "flash_attention_2"}, "not flash_attention_2"),
    ({"quantization": "4bit"}, "bitsandbytes layers are not compiled"),
    ({"quantization": "8bit"}, "bitsandbytes layers are not compiled"),
])
def test_options_compiled_decoding_cannot_serve(gpu, kwargs, reason):
    o = resolve_options("cuda", speed="compiled", **kwargs)
    assert o.speed == "standard" and reason in o.speed_note


def test_old_gpu_and_old_torch_are_named(gpu, monkeypatch):
    gpu.name, gpu.cap = "Tesla P100-PCIE-16GB", (6, 0)
    o = resolve_options("cuda", speed="auto")
    assert o.speed == "standard" and "Tesla P100-PCIE-16GB has 6.0" in o.speed_note
    gpu.cap = (8, 0)
    monkeypatch.setattr(local_options, "_torch_version", lambda: (2, 4))
    assert "needs torch >= 2.5" in resolve_options("cuda", speed="auto").speed_note


def test_mps_falls_back(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_options("mps", speed="auto").speed_note is None  # the default off CUDA: no note
    o = resolve_options("mps", speed="compiled")
    assert o.speed == "standard" and "Apple MPS" in o.speed_note


def test_bad_speed_is_an_error():
    with pytest.raises(OptionError, match="speed='turbo' is not a choice; use auto, compiled, standard"):
        resolve_options("cpu", speed="turbo")


# -- fp8 -----------------------------------------------------------------------------------------------
def test_fp8_needs_a_gpu(monkeypatch):
    monkeypatch.setattr(local_options, "cuda_available", lambda: False)
    with pytest.raises(OptionError, match=r"quantization='fp8' needs an NVIDIA GPU with fp8 support .*device is "
                                          r"cpu; use quantization none"):
        resolve_options("cpu", quantization="fp8")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    with pytest.raises(OptionError, match="device is mps"):
        resolve_options("mps", quantization="fp8")


def test_fp8_names_a_gpu_without_fp8(gpu):
    gpu.name, gpu.cap = "NVIDIA GeForce RTX 3090", (8, 6)
    with pytest.raises(OptionError, match=r"NVIDIA GeForce RTX 3090 has compute capability 8\.6: use quantization "
                                          r"4bit \(bitsandbytes\) or none"):
        resolve_options("cuda", quantization="fp8")


def test_fp8_needs_torchao_and_bf16(gpu):
    gpu.missing = {"torchao"}
    with pytest.raises(OptionError, match=r"needs the torchao package.*pip install torchao"):
        resolve_options("cuda", quantization="fp8")
    gpu.missing = set()
    with pytest.raises(OptionError, match=r"computes in bf16 .*; set dtype auto or bf16"):
        resolve_options("cuda", quantization="fp8", dtype="fp16")
    o = resolve_options("cuda", quantization="fp8", speed="auto")
    assert (o.quantization, o.dtype, o.speed) == ("fp8", "bf16", "compiled")  # fp8 layers are compiled too


def test_fp8_config_keeps_vision_tower_and_head_16bit(gpu):
    pytest.importorskip("torchao")
    cfg = local_options.quantization_config(resolve_options("cuda", quantization="fp8"))
    assert type(cfg).__name__ == "TorchAoConfig" and cfg.modules_to_not_convert == UNQUANTIZED_MODULES
    assert type(cfg.quant_type).__name__ == "Float8DynamicActivationFloat8WeightConfig"
    assert cfg.quant_type.set_inductor_config is False  # ComfyUI's process-wide compiler settings stay as they are


def test_unquantized_names_cover_the_vision_tower(tiny_critic):
    """transformers 5 matches skip names from the start of a module's name: "model.visual" protects every
    vision module (a bare "visual" would protect none); 4.57 matches substrings, which this also passes."""
    names = [n for n, m in tiny_critic.model.named_modules() if isinstance(m, torch.nn.Linear)]
    try:
        from transformers.quantizers.quantizers_utils import should_convert_module
    except ImportError:  # transformers 4.x
        def should_convert_module(name, patterns):
            return not any(p in name for p in patterns)
    vision = [n for n in names if n.startswith("model.visual.")]
    text = [n for n in names if n.startswith("model.language_model.")]
    assert vision and text
    assert not any(should_convert_module(n, UNQUANTIZED_MODULES) for n in vision + ["lm_head"])
    assert all(should_convert_module(n, UNQUANTIZED_MODULES) for n in text)


# -- buckets, memory, settings ---------------------------------------------------------------------------
def test_buckets():
    assert [batch_bucket(n) for n in (1, 2, 3, 4, 5, 9, 16)] == [1, 2, 4, 4, 8, 16, 16]
    with pytest.raises(ValueError):
        batch_bucket(17)
    assert [length_bucket(t) for t in (1, 2048, 2049, 3100, 4000, 20000)] == [2048, 2048, 3072, 4096, 4096, 24576]
    assert length_bucket(10 ** 6) is None
    assert BATCH_BUCKETS == (1, 2, 4, 8, 16)


def test_memory_check_splits_what_does_not_fit(tiny_critic):
    d = CompiledDecoder(tiny_critic.model, free_bytes=lambda dev: 10 ** 12)
    assert d.need_bytes(4, 1900, 100) > d.need_bytes(1, 1900, 100) > d.kv_bytes(1, 2048)
    assert d.kv_bytes(4, 2048) == 2 * 2 * 4 * 2 * 2048 * 16 * 4  # keys+values, 2 layers, 2 kv heads, dim 16, fp32
    d.check_fits(4, 1900, 100, "cpu")
    d.free_bytes = lambda dev: d.need_bytes(2, 1900, 100)
    d.check_fits(2, 1900, 100, "cpu")
    with pytest.raises(DoesNotFit, match=r"needs about .* GiB for 4 row\(s\)"):
        d.check_fits(4, 1900, 100, "cpu")
    with pytest.raises(DoesNotFit, match="more than 16"):
        d.check_fits(17, 100, 100, "cpu")
    with pytest.raises(DoesNotFit, match="exceed the longest cache bucket"):
        d.check_fits(1, 90000, 32768, "cpu")


def test_make_room_is_asked_first(tiny_critic):
    asked = []
    d = CompiledDecoder(tiny_critic.model, make_room=lambda n, dev: asked.append((n, dev)) or 1000)
    with pytest.raises(DoesNotFit, match="0.0 GiB free"):
        d.check_fits(1, 1000, 100, "cuda")
    assert asked == [(d.need_bytes(1, 1000, 100), "cuda")]


def test_settings_only_standard_honours(tiny_critic):
    gc = tiny_critic.generation_config(GenerationSettings())
    assert unsupported_settings(gc, {"use_model_defaults": False}) == []
    gc.update(no_repeat_ngram_size=3, repetition_penalty=1.1, min_new_tokens=5)
    assert unsupported_settings(gc, {"logits_processor": []}) == ["no_repeat_ngram_size=3", "logits_processor=..."]
