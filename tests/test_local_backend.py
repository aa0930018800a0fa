"""LocalCritic with a tiny random Qwen3-VL loaded through the real from_pretrained path (CPU)."""
from __future__ import annotations

import shutil

import pytest
import torch
from PIL import Image

from rationalrewards.models.backends import local_options
from rationalrewards.models.backends.base import Callbacks, GenerationSettings
from rationalrewards.models.backends.local import LocalCritic
from rationalrewards.models.backends.local_options import DevicePlacement, UNQUANTIZED_MODULES, resolve_options
from rationalrewards.models.errors import CriticError, CritiqueInterrupted, ImageInputError, ModelFolderError, OptionError
from rationalrewards.models.format.critique import Comparison, Critique
from tiny_critic import build_sd_folder

GREEDY = GenerationSettings(max_new_tokens=8, greedy=True)
QUICK = GenerationSettings(max_new_tokens=2, greedy=True)  # where only the call matters


@pytest.fixture
def critic(tiny_critic):
    """The shared session critic, with an empty cache and default knobs for each test."""
    tiny_critic.cache.clear()
    tiny_critic.batch_size = 4
    tiny_critic.generate_kwargs = {}
    yield tiny_critic
    tiny_critic.batch_size = 4
    tiny_critic.generate_kwargs = {}


def images(n: int, h: int = 48, w: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, h, w, 3, generator=g)


class CountGenerate:
    """Wraps model.generate to count calls (cache tests)."""

    def __init__(self, critic, monkeypatch):
        self.calls = 0
        orig = critic.model.generate

        def counted(*a, **k):
            self.calls += 1
            return orig(*a, **k)

        monkeypatch.setattr(critic.model, "generate", counted)


# -- loading ----------------------------------------------------------------------------------------
def test_loads_through_from_pretrained(critic, tiny_critic_dir):
    assert type(critic.model).__name__ == "Qwen3VLForConditionalGeneration"
    assert critic.options.device == "cpu" and critic.options.dtype == "fp32"
    assert critic.model.dtype == torch.float32
    assert critic.model_size_bytes() == sum(p.numel() * 4 for p in critic.model.parameters()) + sum(
        b.numel() * b.element_size() for b in critic.model.buffers())
    assert critic.processor.tokenizer.padding_side == "left"
    assert str(tiny_critic_dir.resolve()) in critic.identity


def test_explicit_dtype_and_eager_attention(tiny_critic_dir):
    c = LocalCritic.from_pretrained(tiny_critic_dir, device="cpu", dtype="bf16", attention="eager", cache_size=0)
    try:
        assert c.model.dtype == torch.bfloat16 and c.options.attention == "eager"
        out = c.critique(images(1), "a cat", settings=GenerationSettings(max_new_tokens=4, greedy=True))
        assert len(out) == 1
    finally:
        c.close()
    with pytest.raises(CriticError, match="closed"):
        c.critique(images(1), "a cat")


# -- critiques --------------------------------------------------------------------------------------
def test_one_critique_per_image_without_invented_scores(critic):
    out = critic.critique(images(3), "a red cube on a table", settings=GREEDY)
    assert len(out) == 3 and all(isinstance(c, Critique) for c in out)
    for c in out:
        assert c.overall is None  # random text: nothing readable, nothing invented
        assert c.problems and c.raw


def test_batch_equals_single_under_greedy(critic):
    pics = [images(1, 48, 40, 1), images(1, 96, 32, 2), images(1, 200, 300, 3), images(1, 20, 70, 4), images(1, 64, 64, 5)]
    prompts = ["a cat", "a long prompt about a dog running across a green field under a blue sky", "x", "OPEN sign",
               "a cube"]
    critic.batch_size = 4
    s = GenerationSettings(max_new_tokens=12, greedy=True)
    batched = critic.critique(pics, prompts, settings=s)  # one batch of 4 (different lengths) + 1
    critic.cache.clear()
    critic.batch_size = 1
    single = critic.critique(pics, prompts, settings=s)
    assert [c.raw for c in batched] == [c.raw for c in single]
    assert len({c.raw for c in batched}) > 1  # the inputs matter


def test_seeded_sampling_is_reproducible(critic):
    s = GenerationSettings(max_new_tokens=16, temperature=1.0, seed=7)
    a = critic.critique(images(1), "a cat", settings=s)[0].raw
    critic.cache.clear()
    b = critic.critique(images(1), "a cat", settings=s)[0].raw
    assert a == b
    before = torch.random.get_rng_state()
    critic.cache.clear()
    critic.critique(images(1), "a cat", settings=s)
    assert torch.equal(before, torch.random.get_rng_state())  # the caller's RNG is left alone


def test_truncation_reported(critic):
    critic.generate_kwargs = {"min_new_tokens": 8}  # no EOS possible before the limit
    out = critic.critique(images(1), "a cat", settings=GenerationSettings(max_new_tokens=8, greedy=True))
    assert any(p.startswith("cut_off") for p in out[0].problems)
    gen = critic._generate([[{"role": "user", "content": [{"type": "text", "text": "hi"}]}]],
                           GenerationSettings(max_new_tokens=8, greedy=True), Callbacks())
    assert gen[0].truncated and gen[0].n_tokens == 8


def test_edit_critique_with_source(critic):
    out = critic.critique(images(2, seed=1), "make the sky red", sources=images(1, seed=2), settings=QUICK)
    assert len(out) == 2 and all(c.kind == "edit" for c in out)


def test_compare_pairwise(critic):
    out = critic.compare(images(2, seed=1), images(2, seed=2), "a cat", settings=QUICK)
    assert len(out) == 2 and all(isinstance(c, Comparison) for c in out)
    edit = critic.compare(images(1, seed=1), images(1, seed=2), "add a hat", sources=images(1, seed=3), settings=QUICK)
    assert edit[0].kind == "pairwise-edit"


def test_pil_and_tiny_images(critic):
    """PIL input works; a 16x16 image is not rejected but enlarged by the processor to its minimum
    (65,536 pixels with transformers 5 and this folder's config; 4.57 reads the minimum differently)."""
    pil = Image.new("RGBA", (16, 16), (255, 0, 0, 128))
    out = critic.critique(pil, "a red square", settings=QUICK)
    assert len(out) == 1
    chat = [{"role": "user", "content": [{"type": "image", "image": pil.convert("RGB")}, {"type": "text", "text": "x"}]}]
    enc = critic.encode([chat])
    grid = enc["image_grid_thw"].tolist()
    if _transformers_major() >= 5:
        assert grid == [[1, 16, 16]]  # 256x256 pixels -> 16x16 patches -> 64 tokens
    else:
        assert grid[0][0] == 1 and grid[0][1] >= 4 and grid[0][2] >= 4  # enlarged, never 1x1


def test_nan_image_rejected(critic):
    bad = images(2)
    bad[1, 3, 3, 0] = float("nan")
    with pytest.raises(ImageInputError, match=r"image\[1\] contains NaN"):
        critic.critique(bad, "a cat", settings=GREEDY)


def test_generate_text_without_images(critic):
    g = critic.generate_text([{"role": "user", "content": [{"type": "text", "text": "rewrite: a cat"}]}], GREEDY)
    assert isinstance(g.text, str) and g.n_tokens > 0


# -- callbacks: progress, streaming, cancel ----------------------------------------------------------
def test_progress_and_streamed_text(critic):
    tokens, texts, items = [], {}, []
    cb = Callbacks(on_tokens=lambda d, t: tokens.append((d, t)), on_text=lambda i, t: texts.__setitem__(i, t),
                   on_item=lambda d, t: items.append((d, t)))
    critic.batch_size = 2
    out = critic.critique(images(3), "a cat", settings=GREEDY, callbacks=cb)
    assert tokens[0] == (1, 8) and all(t == 8 for _, t in tokens)
    assert items == [(2, 3), (3, 3)]
    assert [texts.get(i, "") for i in range(3)] == [c.raw for c in out]


def test_cancel_stops_within_a_token_and_model_stays_usable(critic):
    polls = []

    def interrupted():
        polls.append(1)
        return len(polls) > 5  # base polls once before generating, then once per token

    seen = []
    cb = Callbacks(is_interrupted=interrupted, on_tokens=lambda d, t: seen.append(d))
    with pytest.raises(CritiqueInterrupted, match="after 5 of 200 tokens"):
        critic.critique(images(2), "a cat", settings=GenerationSettings(max_new_tokens=200, greedy=True), callbacks=cb)
    assert max(seen) == 5
    assert len(critic.cache) == 0  # nothing half-done was cached
    out = critic.critique(images(2), "a cat", settings=QUICK)  # still works
    assert len(out) == 2


def test_interrupt_before_start(critic):
    with pytest.raises(CritiqueInterrupted):
        critic.critique(images(1), "a cat", settings=GREEDY, callbacks=Callbacks(is_interrupted=lambda: True))


# -- cache --------------------------------------------------------------------------------------------
def test_cache_hits_and_misses(critic, monkeypatch):
    counter = CountGenerate(critic, monkeypatch)
    first = critic.critique(images(1), "a cat", settings=QUICK)
    assert counter.calls == 1
    assert critic.critique(images(1), "a cat", settings=QUICK) == first
    assert counter.calls == 1  # same bytes, prompt, settings: cached
    critic.critique(images(1), "a dog", settings=QUICK)
    assert counter.calls == 2
    critic.critique(images(1, seed=9), "a cat", settings=QUICK)
    assert counter.calls == 3
    critic.critique(images(1), "a cat", settings=GenerationSettings(max_new_tokens=2, greedy=True, seed=1))
    assert counter.calls == 4
    # a batch with one cached image generates only for the new one
    critic.critique(torch.cat([images(1), images(1, seed=11)]), "a cat", settings=QUICK)
    assert counter.calls == 5


# -- placement (the ComfyUI memory hook) -------------------------------------------------------------
class RecordingPlacement(DevicePlacement):
    def __init__(self):
        super().__init__("cpu")
        self.log = []

    def prepare(self, model):
        self.log.append("prepare")
        return super().prepare(model)

    def release(self, model):
        self.log.append("release")

    def close(self, model):
        self.log.append("close")


def test_placement_prepare_release_and_resident(tiny_critic_dir):
    mem = RecordingPlacement()
    c = LocalCritic.from_pretrained(tiny_critic_dir, memory=mem, cache_size=0)
    s = GenerationSettings(max_new_tokens=2, greedy=True)
    c.critique(images(1), "a", settings=s)
    assert mem.log == ["prepare", "release"]
    mem.log.clear()
    with c.resident():
        c.critique(images(1), "a", settings=s)
        c.critique(images(1), "b", settings=s)
    assert mem.log == ["prepare", "prepare", "release"]  # loaded before each generate, released once
    mem.log.clear()
    with pytest.raises(CritiqueInterrupted):
        c.critique(images(1), "a", settings=s, callbacks=Callbacks(is_interrupted=iter([False, True]).__next__))
    assert mem.log == ["prepare", "release"]  # released after a cancel too
    c.close()
    assert mem.log[-1] == "close" and c.model is None


# -- options and folders -----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"quantization": "4bit"}, "quantization='4bit'.*CUDA"),
    ({"quantization": "8bit"}, "quantization='8bit'.*CUDA"),
    ({"quantization": "3bit"}, "quantization='3bit' is not supported"),
    ({"attention": "flash_attention_2"}, "attention='flash_attention_2' needs a CUDA GPU"),
    ({"attention": "xformers"}, "attention='xformers' is not supported"),
    ({"dtype": "int4"}, "dtype='int4' is not a dtype"),
    ({"device": "cuda"}, "device='cuda': CUDA is not available"),
    ({"device": "tpu"}, "device='tpu' is not a device"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"cache_size": -1}, "cache_size=-1"),
])
def test_bad_options_fail_before_loading(tiny_critic_dir, monkeypatch, kwargs, match):
    monkeypatch.setattr(local_options, "cuda_available", lambda: False)
    loaded = []
    import transformers

    monkeypatch.setattr(transformers.Qwen3VLForConditionalGeneration, "from_pretrained",
                        classmethod(lambda cls, *a, **k: loaded.append(1)))
    with pytest.raises(OptionError, match=match):
        LocalCritic.from_pretrained(tiny_critic_dir, **kwargs)
    assert not loaded


def _installed(name):
    import importlib.util
    return importlib.util.find_spec(name) is not None


def _transformers_major():
    import transformers
    return int(transformers.__version__.split(".")[0])


def test_options_on_a_gpu_machine_without_packages(monkeypatch):
    """With CUDA present: missing bitsandbytes / flash-attn and missing bf16 are named errors."""
    monkeypatch.setattr(local_options, "cuda_available", lambda: True)
    monkeypatch.setattr(local_options, "module_available", lambda name: False)
    monkeypatch.setattr(local_options, "bf16_supported", lambda dev: False)
    with pytest.raises(OptionError, match="quantization='4bit' needs the bitsandbytes package"):
        resolve_options("cuda", quantization="4bit")
    with pytest.raises(OptionError, match="flash-attn package"):
        resolve_options("cuda", attention="flash_attention_2")
    with pytest.raises(OptionError, match="dtype='bf16'.*no bfloat16"):
        resolve_options("cuda", dtype="bf16")
    assert resolve_options("auto").dtype == "fp16"  # auto on an old GPU
    monkeypatch.setattr(local_options, "bf16_supported", lambda dev: True)
    assert resolve_options("auto") == local_options.LoadOptions("cuda", "bf16", "sdpa", "none")
    monkeypatch.setattr(local_options, "module_available", lambda name: True)
    with pytest.raises(OptionError, match="bf16/fp16 only"):
        resolve_options("cuda", dtype="fp32", attention="flash_attention_2")
    q = resolve_options("cuda", quantization="4bit")
    assert q.dtype == "bf16"
    if not _installed("bitsandbytes") and _transformers_major() < 5:
        return  # transformers 4.x checks the installed bitsandbytes version when the config is built
    cfg = local_options.quantization_config(q)
    assert cfg.load_in_4bit and cfg.llm_int8_skip_modules == UNQUANTIZED_MODULES
    assert local_options.quantization_config(resolve_options("cuda", quantization="8bit")).load_in_8bit


def test_auto_dtype_on_cpu_is_fp32():
    assert resolve_options("cpu").dtype == "fp32"


@pytest.mark.parametrize("breakage, match", [
    ("no_config", "no config.json"),
    ("no_weights", "no weights"),
    ("truncated", "truncated"),
    ("text_llm", "text-only language model"),
])
def test_bad_folders(tiny_critic_dir, tmp_path, breakage, match):
    d = shutil.copytree(tiny_critic_dir, tmp_path / "c")
    if breakage == "no_config":
        (d / "config.json").unlink()
    elif breakage == "no_weights":
        (d / "model.safetensors").unlink()
    elif breakage == "truncated":
        w = d / "model.safetensors"
        w.write_bytes(w.read_bytes()[:-10])
    else:
        import json

        cfg = json.loads((d / "config.json").read_text())
        cfg = {**cfg["text_config"], "model_type": "qwen3"}
        (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFolderError, match=match):
        LocalCritic.from_pretrained(d)


def test_stable_diffusion_folder_rejected(tmp_path):
    with pytest.raises(ModelFolderError, match="diffusers"):
        LocalCritic.from_pretrained(build_sd_folder(tmp_path / "sd"))


# -- transformers cannot be imported: say which package is at fault --------------------------------------------
def _import_error_from(path, source: str) -> ImportError:
    """An ImportError raised by a module at ``path`` (its frames carry that file name, as a real one would)."""
    import importlib.util

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"_rr_broken_{abs(hash(str(path)))}", path)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    except ImportError as e:
        return e
    raise AssertionError("the module imported")


def test_a_torchao_built_for_another_torch_is_named_with_the_fix(tmp_path):
    """`pip install torchao` beside an older torch (torchao 0.18 with torch 2.9, as seen in a venv here) breaks
    `from transformers import Qwen3VLForConditionalGeneration` inside torchao: not an old transformers."""
    from rationalrewards.models.backends.local import import_failure

    e = _import_error_from(tmp_path / "site-packages" / "torchao" / "quantization" / "float8_tensor.py",
                           "from torch.nn.functional import NoSuchScalingType\n")
    msg = import_failure(e)
    assert msg.startswith("torchao ") and "fails to import beside torch" in msg and "NoSuchScalingType" in msg
    assert "pip install torchao==0.15.0" in msg and "pip uninstall torchao" in msg and ">= 4.57" not in msg


def test_an_old_transformers_and_other_import_failures_get_their_own_message(tmp_path):
    from rationalrewards.models.backends.local import import_failure

    old = ImportError("cannot import name 'Qwen3VLForConditionalGeneration' from 'transformers'")
    assert "it needs transformers >= 4.57" in import_failure(old)
    other = _import_error_from(tmp_path / "site-packages" / "somepkg" / "ext.py", "import _no_such_extension\n")
    msg = import_failure(other)
    assert "somepkg/ext.py" in msg and "_no_such_extension" in msg and ">= 4.57" not in msg
    # transformers 5 wraps the real failure: "Could not import module 'Qwen3VLForConditionalGeneration'"
    for inner, named in ((other, "_no_such_extension"),
                         (_import_error_from(tmp_path / "site-packages" / "torchao" / "q.py", "import _nope\n"),
                          "torchao")):
        try:
            raise ModuleNotFoundError("Could not import module 'Qwen3VLForConditionalGeneration'. Are this "
                                      "object's requirements defined correctly?") from inner
        except ModuleNotFoundError as wrapped:
            msg = import_failure(wrapped)
        assert named in msg and ">= 4.57" not in msg


def test_a_torch_too_old_for_transformers_5_names_both_fixes(tmp_path, monkeypatch, tiny_critic_dir):
    """transformers 5 switches PyTorch off below torch 2.6 (seen here: torch 2.5.1 + transformers 5.24); its own
    error comes late and says only "upgrade PyTorch", which a ComfyUI install cannot always do."""
    import transformers.utils

    monkeypatch.setattr(transformers.utils, "is_torch_available", lambda: False)
    with pytest.raises(OptionError, match=r"transformers>=4\.57,<5'` runs RationalRewards with your torch"):
        LocalCritic.from_pretrained(tiny_critic_dir, device="cpu")
